"""The command line's processes allocate Arrow buffers from jemalloc on Linux, not from pyarrow's
default mimalloc pool, whose fresh huge pages cost 12% of a web-root scan's CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from exhunt.arrowpool import BLAS_THREADS, VARIABLE, prefer_jemalloc, single_thread_blas

# the command line runs (a verify that finds no case), then pyarrow loads in the same process
PROBE = ("import sys; from exhunt.cli import main; main(['verify', sys.argv[1]]); "
         "import pyarrow as pa; print(pa.default_memory_pool().backend_name)")


def _pool(folder: Path, **chosen: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != VARIABLE} | chosen
    out = subprocess.run([sys.executable, "-c", PROBE, str(folder)], capture_output=True, text=True, env=env,
                         check=True)
    return out.stdout.split()[-1]


@pytest.mark.skipif(sys.platform != "linux", reason="jemalloc is chosen on Linux only")
def test_the_command_line_chooses_jemalloc_unless_the_user_chose(tmp_path: Path) -> None:
    assert _pool(tmp_path) == "jemalloc"
    assert _pool(tmp_path, **{VARIABLE: "system"}) == "system"


def test_nothing_is_chosen_once_pyarrow_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow  # noqa: F401 - loaded: too late to choose

    monkeypatch.delenv(VARIABLE, raising=False)
    assert prefer_jemalloc() is False and VARIABLE not in os.environ


BLAS_PROBE = ("import os, sys; from exhunt.cli import main; main(['verify', sys.argv[1]]); "
              "import pyarrow, numpy; print(os.environ.get('OPENBLAS_NUM_THREADS'), 'numpy' in sys.modules)")


def test_the_command_line_keeps_blas_to_one_thread_unless_the_user_chose(tmp_path: Path) -> None:
    """pyarrow loads numpy (and its OpenBLAS thread pool) with itself: the command line sets one BLAS
    thread before that, and leaves the user's choice alone."""
    def run(**chosen: str) -> str:
        env = {k: v for k, v in os.environ.items() if k != BLAS_THREADS} | chosen
        return subprocess.run([sys.executable, "-c", BLAS_PROBE, str(tmp_path)], capture_output=True, text=True,
                              env=env, check=True).stdout.split("\n")[-2]

    assert run() == "1 True"
    assert run(**{BLAS_THREADS: "3"}) == "3 True"


def test_blas_is_left_alone_once_numpy_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy  # noqa: F401 - loaded: too late to choose

    monkeypatch.delenv(BLAS_THREADS, raising=False)
    assert single_thread_blas() is False and BLAS_THREADS not in os.environ
