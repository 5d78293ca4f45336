"""Gathers bench/results/*.md into BENCHMARKS.md under a header describing this machine (``make bench``).

Each result file keeps its own machine line (results may come from different runs); the header
says where and when the gathering ran; each result says itself whether it was a quick or a full run.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from machine_info import machine  # noqa: E402  (bench/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parent.parent




def main() -> None:
    mode = ("each section's title or corpus line says when it is a --quick run (`make bench` runs quick; "
            "BENCH_FULL=1 for the full sizes the issues name)")
    parts = [
        "# exhunt benchmarks",
        "",
        f"Gathered {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `make bench` on: {machine()}. Mode: {mode}.",
        "Generated corpora live under bench-out/ and are never committed; every section below names its "
        "corpus, the reference tool and the goal. Numbers from a shared machine: other jobs may have run "
        "on the same cores.",
        "",
    ]
    for result in sorted((ROOT / "bench" / "results").glob("*.md")):
        text = result.read_text(encoding="utf-8").strip()
        parts += [text.replace("\n# ", "\n## ").replace("# ", "## ", 1) if text.startswith("# ") else text, ""]
    (ROOT / "BENCHMARKS.md").write_text("\n".join(parts), encoding="utf-8")
    print(f"BENCHMARKS.md: {len(parts)} lines from bench/results/", file=sys.stderr)


if __name__ == "__main__":
    main()
