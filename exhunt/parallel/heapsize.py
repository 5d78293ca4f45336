"""glibc's heap thresholds while exhunt's work runs on a Dask worker, as in any other process.

Dask's nanny starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (``distributed.nanny.
pre-spawn-environ``), to hand freed memory back to the system at once. Setting a threshold from the
environment also stops glibc from raising its mmap threshold as large blocks are freed, so every
buffer over 128 KiB (each file read whole, each engine chunk) is a fresh mmap: its pages faulted in
and zeroed by the kernel, then unmapped, file after file. The 2 GB bench scan ran 15% slower in the
pool with that variable set (4.6-4.7 against 4.0-4.1 s), and a LocalCluster's scan 5.0 s without it
against 5.6 s with it. While a unit runs, the thresholds are those glibc's own adjustment reaches
(32 MiB mmap, twice that trim); after it, the worker's own again, so other tasks on a shared
worker keep the cluster's setting. Only where the environment set them (else glibc's adjustment is
on and left alone), only on glibc (``mallopt`` is looked up; elsewhere nothing happens)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Iterator
from typing import Any

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
DEFAULT_MMAP = DEFAULT_TRIM = 128 * 1024  # glibc's starting thresholds, which the environment variables freeze
TRIM_ENV, MMAP_ENV = "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_"
WHILE_SCANNING = {M_MMAP_THRESHOLD: 32 << 20, M_TRIM_THRESHOLD: 64 << 20}

_mallopt: Any = None


def _glibc_mallopt() -> Any:
    global _mallopt
    if _mallopt is None:  # looked up once (tests put a recorder here)
        _mallopt = False
        if sys.platform.startswith("linux"):
            with contextlib.suppress(OSError, AttributeError):
                _mallopt = ctypes.CDLL(None).mallopt
    return _mallopt or None


def _environment_value(name: str, default: int) -> int:
    """The variable's value as glibc read it at start; its default when unset or not a number."""
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def worker_thresholds() -> dict[int, int]:
    """The thresholds the environment froze for this process (empty: glibc adjusts them itself)."""
    if TRIM_ENV not in os.environ and MMAP_ENV not in os.environ:
        return {}
    return {M_MMAP_THRESHOLD: _environment_value(MMAP_ENV, DEFAULT_MMAP),
            M_TRIM_THRESHOLD: _environment_value(TRIM_ENV, DEFAULT_TRIM)}


@contextlib.contextmanager
def scanning_heap() -> Iterator[bool]:
    """Raise frozen thresholds for the body, restore them after; yields whether it did."""
    frozen = worker_thresholds()
    mallopt = _glibc_mallopt() if frozen else None
    if mallopt is None:
        yield False
        return
    for option, value in WHILE_SCANNING.items():
        mallopt(option, value)
    try:
        yield True
    finally:
        for option, value in frozen.items():
            mallopt(option, value)
