"""The command line's processes allocate Arrow buffers from jemalloc on Linux, not from pyarrow's
default mimalloc pool, whose fresh huge pages cost 12% of a web-root scan's CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from exhunt.arrowpool import VARIABLE, prefer_jemalloc

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
