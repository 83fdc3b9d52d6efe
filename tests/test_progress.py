"""Progress on stderr: plain rate-limited lines when stderr is not a terminal, a tqdm bar when it is, or silence."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from tqdm import tqdm

import polymodal.progress as progress_module
from polymodal.progress import PlainProgress, duration, progress, say


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_say_where_a_loop_is(capsys, monkeypatch):
    monkeypatch.setattr(progress_module, "PLAIN_INTERVAL", 0.0)  # a line after every item
    bar = progress(range(4), desc="decoding train.csv", unit="row")
    assert isinstance(bar, PlainProgress)
    for i in bar:
        bar.set_postfix(loss=f"{i / 10:.4f}")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 4
    assert lines[1].startswith("decoding train.csv  2/4 rows (50%)  ") and "rows/s  eta " in lines[1]
    assert lines[1].endswith("loss 0.1000")  # the postfix the loop body set for this item
    assert lines[3].startswith("decoding train.csv  4/4 rows (100%)") and lines[3].endswith("loss 0.3000")


def test_plain_lines_are_rate_limited_and_a_stage_line_resets_the_clock(capsys, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(progress_module, "time", SimpleNamespace(monotonic=lambda: now[0]))
    monkeypatch.setattr(progress_module, "PLAIN_INTERVAL", 10.0)
    monkeypatch.setattr(progress_module, "_last_line", 0.0)
    bar = progress(None, desc="epoch 1/3", total=100, unit="batch")
    printed = []
    for at in (5, 11, 15, 22, "say", 30, 36):
        if at == "say":
            say("a stage line")
            continue
        now[0] = 1000.0 + at
        bar.update()
        printed.append(capsys.readouterr().err.split("  ")[1:2])
    assert capsys.readouterr().err == ""
    # Nothing in the loop's first 10 s; then at most a line every 10 s, counted from the stage line too.
    assert printed == [[], ["2/100 batches (2%)"], [], ["4/100 batches (4%)"], [], ["6/100 batches (6%)"]]


def test_quiet_prints_nothing(capsys, monkeypatch):
    monkeypatch.setattr(progress_module, "PLAIN_INTERVAL", 0.0)
    assert list(progress(range(3), desc="epoch 1/1", enabled=False)) == [0, 1, 2]
    say("training", enabled=False)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("leave", [True, False])
def test_a_terminal_gets_a_tqdm_bar(monkeypatch, leave):
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    bar = progress(range(3), desc="epoch 1/1", unit="batch", leave=leave)
    assert isinstance(bar, tqdm) and bar.leave is leave
    assert list(bar) == [0, 1, 2]
    bar.close()
    assert "epoch 1/1" in terminal.getvalue()


@pytest.mark.parametrize(("seconds", "text"), [(12.34, "12.3 s"), (245, "4 min 05 s"), (7620, "2 h 07 min")])
def test_duration(seconds, text):
    assert duration(seconds) == text
