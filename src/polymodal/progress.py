"""What a long command says while it works, on stderr: stage lines, and progress over loops.

On a terminal a loop draws a live tqdm bar. With stderr redirected (nohup, SLURM, CI) a bar would be silent or fill
the log with carriage-return frames, so a loop prints plain lines instead, at most one every ``PLAIN_INTERVAL``
seconds and none in its first ``PLAIN_INTERVAL`` seconds: loops that finish quickly print nothing of their own, and
the line that follows them (an epoch summary, a stage) reports them. Stage lines (``say``) share that clock. Only
the main process of a run prints (the caller passes ``enabled``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm import tqdm

PLAIN_INTERVAL = 20.0  # seconds between plain progress lines

_last_line = 0.0  # time.monotonic() of the last plain line (or stage line)


def _stamp() -> None:
    global _last_line
    _last_line = time.monotonic()


def say(message: str, enabled: bool = True) -> None:
    """Prints one line on stderr (above a live bar on a terminal) when ``enabled``."""
    if enabled:
        tqdm.write(message, file=sys.stderr)
        _stamp()


def duration(seconds: float) -> str:
    """``12.3 s``, ``4 min 05 s`` or ``2 h 07 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


class PlainProgress:
    """The part of tqdm's interface the package uses, printing a plain line at most every ``PLAIN_INTERVAL`` s.

    A line reads ``epoch 2/10  340/938 batches (36%)  12.1 batches/s  eta 49.1 s  loss 0.4123``.
    """

    def __init__(self, iterable: Iterable[Any] | None, desc: str, total: int | None, unit: str) -> None:
        self.iterable = iterable
        self.desc, self.unit = desc, unit
        self.total = total if total is not None else getattr(iterable, "__len__", lambda: None)()
        self.n = 0
        self.postfix = ""
        self.leave = True  # tqdm's attribute; a plain line cannot be erased
        self.start = time.monotonic()

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable or ():
            yield item
            self.update()

    def update(self, n: int = 1) -> None:
        """Counts ``n`` more items done; prints a line once the loop has run ``PLAIN_INTERVAL`` seconds since it
        started or since the last line."""
        self.n += n
        if time.monotonic() - max(_last_line, self.start) >= PLAIN_INTERVAL:
            print(self.line(), file=sys.stderr, flush=True)
            _stamp()

    def set_postfix(self, **values: Any) -> None:
        """Values shown at the end of the next lines, e.g. ``loss=0.41``."""
        self.postfix = "  ".join(f"{k} {v}" for k, v in values.items())

    def line(self) -> str:
        """The progress line as it stands."""
        rate = self.n / max(time.monotonic() - self.start, 1e-9)
        units = self.unit + ("es" if self.unit.endswith(("s", "ch", "sh", "x")) else "s")
        speed = f"{rate:.0f} {units}/s" if rate >= 100 else f"{rate:.3g} {units}/s"
        parts = [self.desc]
        if self.total:
            parts += [f"{self.n}/{self.total} {units} ({100 * self.n // self.total}%)", speed]
            if rate > 0:
                parts.append(f"eta {duration((self.total - self.n) / rate)}")
        else:
            parts += [f"{self.n} {units}", speed]
        return "  ".join([*parts, self.postfix] if self.postfix else parts)

    def close(self) -> None:
        """Nothing to erase; the caller's next line (an epoch summary, a stage) closes a plain loop."""


def progress(
    iterable: Iterable[Any] | None = None,
    *,
    desc: str,
    total: int | None = None,
    unit: str = "it",
    enabled: bool = True,
    leave: bool = True,
) -> Any:
    """Wraps a loop: a tqdm bar on a terminal, plain lines when stderr is not one, silent when not ``enabled``.

    Args:
        iterable: what the loop goes over (None: call ``update`` by hand).
        desc: what the loop does, e.g. ``epoch 3/10`` or ``image alone``.
        total: number of items (default: ``len(iterable)`` when it has one).
        unit: what an item is, e.g. ``batch``.
        enabled: False for a quiet run (``trainer.progress=false``) or a process other than the main one.
        leave: keep the finished bar on a terminal (False: erase it, for a summary line to take its place).

    Returns:
        An iterable with tqdm's ``update``, ``set_postfix`` and ``close``.
    """
    if not enabled:
        return tqdm(iterable, total=total, disable=True)
    if sys.stderr.isatty():
        return tqdm(iterable, desc=desc, total=total, unit=unit, leave=leave, dynamic_ncols=True, file=sys.stderr)
    return PlainProgress(iterable, desc, total, unit)


__all__ = ["PLAIN_INTERVAL", "PlainProgress", "duration", "progress", "say"]
