"""Paired A/B timing of one exhunt command: this tree against another commit, alternating runs.

A change worth a few percent hides in a shared machine's drift (the same scan varied 20% over a day
here), so each round runs both trees back to back and the verdict is the median of the paired
differences, not of the two columns. The other tree is a ``git worktree`` of ``--base`` in a
temporary folder; both trees are compiled first, because a tree without compiled modules (this
machine sets PYTHONDONTWRITEBYTECODE) pays ~0.2 s in every scan process and every fork server to
compile exhunt again, which once showed a 0.25 s gain that did not exist.

CPU seconds are the command's and its children's (the fork server's workers are counted once the
scan stops the server). The first round of each tree warms the page cache and is dropped.

Usage: python bench/ab.py --base main~1 --rounds 10 -- scan EVIDENCE --out /tmp/case --quiet --jobs 2
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_once(tree: Path, command: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of ``python -m exhunt COMMAND`` with ``tree``'s exhunt first on the path."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "exhunt", *command], cwd=tree, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    wall = time.perf_counter() - start
    if done.returncode not in (0, 1):  # 1: the scan found a compromise
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise SystemExit(f"{tree}: exhunt exited {done.returncode}: {' '.join(tail)}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def compare(trees: dict[str, Path], command: list[str], rounds: int) -> dict[str, list[tuple[float, float]]]:
    for tree in trees.values():
        compileall.compile_dir(str(tree / "exhunt"), quiet=1)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
    for round_ in range(rounds + 1):
        order = list(trees.items()) if round_ % 2 == 0 else list(reversed(trees.items()))
        for name, tree in order:
            measured = run_once(tree, command)
            if round_:
                times[name].append(measured)
        if round_:
            print(" ".join(f"{name} {times[name][-1][0]:.3f} s" for name in trees), flush=True)
    return times


def report(times: dict[str, list[tuple[float, float]]]) -> None:
    (base, base_times), (new, new_times) = times.items()
    for name, values in times.items():
        print(f"{name}: wall median {statistics.median(w for w, _ in values):.3f} s, "
              f"CPU median {statistics.median(c for _, c in values):.3f} s")
    walls = [n[0] - b[0] for b, n in zip(base_times, new_times, strict=True)]
    cpus = [n[1] - b[1] for b, n in zip(base_times, new_times, strict=True)]
    faster = sum(d < 0 for d in walls)
    print(f"{new} - {base}: wall {statistics.median(walls):+.3f} s (median of {len(walls)} pairs, "
          f"{faster} faster), CPU {statistics.median(cpus):+.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="HEAD", help="the commit to compare this tree against (default HEAD)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="exhunt's arguments, after --")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the exhunt command after --")
    # each tree runs in its own folder (``-m`` puts the working folder first on the path): paths absolute
    command = [str(Path(a).resolve()) if not a.startswith("-") and Path(a).exists() else a for a in command]
    with tempfile.TemporaryDirectory(prefix="exhunt-ab-") as folder:
        base = Path(folder) / "base"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(base), args.base], check=True)
        try:
            report(compare({"base": base, "this": ROOT}, command, args.rounds))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=False)


if __name__ == "__main__":
    main()
