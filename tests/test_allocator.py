"""polymodal.allocator: freed memory is kept for the next allocation of the same size (glibc only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from polymodal import allocator

# Allocates and frees a 40 MB array (above glibc's largest mmap threshold, 32 MiB, as a batch of 256 spectrograms'
# activations) 20 times and prints the page faults that took, after an optional setting.
PROBE = """
import json, resource, sys
import numpy as np
from polymodal.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
np.ones(10 * 2**20, dtype=np.float32)  # the first one faults in either way
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    np.ones(10 * 2**20, dtype=np.float32)
print(json.dumps({"applied": applied, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""

glibc_only = pytest.mark.skipif(not allocator._glibc(), reason="the setting is for glibc's malloc only")


def _probe(mode: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "POLYMODAL_MALLOC"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], env={**clean, **env}, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


@glibc_only
def test_keep_freed_memory_reuses_large_blocks() -> None:
    default, kept = _probe("default"), _probe("keep")
    assert kept["applied"] is True
    # glibc's default maps every block afresh (measured: about 10,600 faults here), the setting reuses it (0).
    assert default["faults"] > 0
    assert kept["faults"] < default["faults"] / 10


@glibc_only
def test_keep_freed_memory_leaves_the_users_choice() -> None:
    assert _probe("keep", POLYMODAL_MALLOC="system")["applied"] is False
    assert _probe("keep", MALLOC_MMAP_MAX_="65536")["applied"] is False
    assert _probe("keep", GLIBC_TUNABLES="glibc.malloc.trim_threshold=1")["applied"] is False
