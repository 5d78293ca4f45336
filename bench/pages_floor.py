"""The floor of the present design on the small-pages row: what a Python worker pool costs when it does
only what no design can skip (issue 19 prototype).

Two (``--jobs``) spawned processes, each: deserialize the compiled rules (from exhunt's cache), then
per file one ``open``/``read``, SHA-256, the yara-x scan with the five externals, and the match rows
kept as columns; one Arrow table per worker at the end. No sniffing, parsing, store parts, custody,
detections or report. ``exhunt scan`` cannot be faster than this with a Python per-file loop; the
time against ``yara -p N`` says whether the issue-19 goal needs another design (see BENCHMARKS.md).

Usage: python bench/pages_floor.py CORPUS [--jobs N] [--digests all|sha256]; prints the flagged files
(relative to CORPUS) on stdout and the timing on stderr. ``bench_yara.py --rows pages`` runs it as a row.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIGBASE = Path(os.environ.get("EXHUNT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "rules" / "signature-base"


def _work(args: tuple[bytes, list[str], bool]) -> tuple[int, list[str], float]:
    import pyarrow as pa
    import yara_x

    blob, paths, all_digests = args
    start = time.perf_counter()
    scanner = yara_x.Scanner(yara_x.Rules.deserialize_from(io.BytesIO(blob)))
    sha: list[str] = []
    rules: list[str] = []
    flagged: list[str] = []
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            data = os.read(fd, 1 << 22)
        finally:
            os.close(fd)
        sha.append(hashlib.sha256(data).hexdigest())
        if all_digests:
            hashlib.sha1(data).hexdigest()  # noqa: S324 - measured as exhunt computes them
            hashlib.md5(data).hexdigest()  # noqa: S324
        folder, _, name = path.rpartition("/")
        dot = name.rfind(".")
        scanner.set_global("filename", name)
        scanner.set_global("filepath", folder)
        scanner.set_global("extension", name[dot:].lower() if dot > 0 else "")
        scanner.set_global("filetype", "")
        scanner.set_global("owner", "")
        hits = scanner.scan(data).matching_rules
        if hits:
            flagged.append(path)
            rules.extend(r.identifier for r in hits)
    pa.table({"sha256": sha})
    return len(paths), flagged, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--digests", choices=("all", "sha256"), default="all")
    args = parser.parse_args()
    t0 = time.perf_counter()
    from exhunt.detections.filehunt import scan_rules

    blob = scan_rules(sorted(SIGBASE.joinpath("yara").glob("*.yar"))).blob
    t_rules = time.perf_counter() - t0
    paths = sorted(str(p) for p in args.corpus.rglob("*") if p.is_file() and p.name != ".complete")
    t_list = time.perf_counter() - t0 - t_rules
    shares = [paths[i :: args.jobs] for i in range(args.jobs)]
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        results = list(pool.map(_work, [(blob, s, args.digests == "all") for s in shares]))
    total = time.perf_counter() - t0
    flagged = sorted(Path(p).relative_to(args.corpus).as_posix() for r in results for p in r[1])
    print("\n".join(flagged))
    print(f"files {sum(r[0] for r in results)}, flagged {len(flagged)}; wall {total:.2f} s "
          f"(rules from cache {t_rules:.2f} s, listing {t_list:.2f} s, worker loops "
          f"{', '.join(f'{r[2]:.2f}' for r in results)} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
