"""The C heap setting of the ``polymodal`` command: keep freed memory for the next batch instead of returning it.

PyTorch allocates CPU tensors with ``malloc`` and caches none of them. glibc's ``malloc`` serves blocks above its
mmap threshold (at most 32 MiB) with fresh ``mmap`` pages and gives them back to the kernel on ``free``, and trims the
top of its heap whenever more than the trim threshold is free there. A training or evaluation loop allocates the same
large activations every batch, so each batch faults in and zeroes the same memory again: ``polymodal demo`` took
about 2.7 million page faults (evaluation batches of 256 spectrograms have 33.5 MB activations) and 1.2-1.9 s more of
its 40 s than with the setting below (0.17 million faults, bit-identical numbers, a 4 % larger peak resident size;
``benchmarks/results/speed.md``).

:func:`keep_freed_memory` turns both off (``M_MMAP_MAX=0``, ``M_TRIM_THRESHOLD`` 2 GiB), as a caching allocator
(jemalloc, tcmalloc, PyTorch's CUDA allocator) would: freed memory stays with the process for its next allocations,
so its resident size stays near its peak until it ends. The ``polymodal`` command calls it at start;
a Python program that trains with ``polymodal.train`` may call it too (it changes its whole process). It does nothing
where the C library is not glibc, where ``POLYMODAL_MALLOC=system`` is set, or where the user already chose with
glibc's own settings (``MALLOC_*_`` environment variables, ``GLIBC_TUNABLES`` naming ``glibc.malloc``).
"""

from __future__ import annotations

import ctypes
import os

# mallopt(3) parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
_GLIBC_SETTINGS = ("MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")
_MAX_INT = 2**31 - 1


def _glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (AttributeError, ValueError, OSError):  # not a GNU system
        return False


def keep_freed_memory() -> bool:
    """Makes glibc ``malloc`` keep freed memory for reuse (no ``mmap`` per large block, no heap trimming).

    Returns:
        Whether the setting was applied (False: not glibc, ``POLYMODAL_MALLOC=system``, or glibc's own malloc
        settings are given in the environment).
    """
    if os.environ.get("POLYMODAL_MALLOC", "").lower() == "system" or not _glibc():
        return False
    if any(name in os.environ for name in _GLIBC_SETTINGS) or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_TRIM_THRESHOLD, _MAX_INT)) and bool(mallopt(M_MMAP_MAX, 0))
