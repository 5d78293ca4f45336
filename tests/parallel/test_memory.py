"""Peak memory of a whole scan stays under --memory-limit: measured, not estimated.

Runs the CLI as a child process and samples the proportional set size (PSS: shared pages counted
once) of it and all its workers together every 50 ms; the kernel's ``ru_maxrss`` of the largest
single process is checked too.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exhunt.demo import DemoSpec, generate

psutil = pytest.importorskip("psutil")
ROOT = Path(__file__).resolve().parents[2]


def tree_pss(proc: psutil.Process) -> int:
    """Proportional set size of the whole tree: shared library pages counted once, not per worker."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_full_info().pss
        except psutil.Error:
            continue
    return total


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB is Linux's unit")
def test_scan_peak_rss_stays_under_the_memory_limit(tmp_path: Path) -> None:
    generate(tmp_path / "ev", DemoSpec(per_day=60_000, days=3))  # ~100 MB of logs
    size = sum(p.stat().st_size for p in (tmp_path / "ev").rglob("*") if p.is_file())
    assert size > 100 << 20
    limit = 1 << 30
    cmd = [sys.executable, "-m", "exhunt", "scan", str(tmp_path / "ev"), "--out", str(tmp_path / "case"), "--quiet",
           "--memory-limit", str(limit), "--jobs", "2", "--split-size", "16M"]
    child = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    watched = psutil.Process(child.pid)
    while child.poll() is None:
        peak = max(peak, tree_pss(watched))
        time.sleep(0.05)
    assert child.returncode == 1, child.stderr.read().decode() if child.stderr else ""
    largest = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss << 10
    print(f"input {size >> 20} MiB: peak PSS of scan + workers {peak >> 20} MiB, "
          f"largest process RSS {largest >> 20} MiB")
    assert peak < limit and largest < limit
