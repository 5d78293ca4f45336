"""Benchmark: YARA over a web-root-like tree, exhunt vs the ``yara`` command-line tool.

Generates (once, under ``bench-out/yara-corpus-<n>``) a tree of ~20,000 files / ~1 GB built from the
shared web shells and benign pages (``../shared/data``): pages padded to realistic sizes, a few
per cent shells, some binary files, in an IIS/Exchange folder layout. Then, on the same files and
the same rules (exhunt's own pack; signature-base's YARA folder), it times:

* ``yara -r -p <cores>`` (Debian package ``yara``; installed with ``apt-get install -y yara`` when
  missing, we are root), with the externals signature-base needs defined on the command line;
* ``exhunt file pass``: the worker pass alone (read once, SHA-256/SHA-1/MD5, yara-x scan) in a
  process pool of <cores> workers, as ``exhunt scan`` runs it, without the store;
* ``exhunt scan``: the whole command (listing, parsing, hashing, YARA, Parquet store, detections).

Prints files/s, MB/s, the ratio to the yara CLI and peak RSS of the largest process, and writes the
same table to ``bench/results/yara.md``. ``--quick`` uses 2,000 files (~100 MB).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from machine_info import compile_bytecode, machine, shared_data  # noqa: E402  (bench/ is on sys.path as a script)
from small_pages import alternate, check_findings, generate_pages, missed, table  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHARED = shared_data()
SIGBASE = SHARED / "rules" / "signature-base" / "yara"
OWN = ROOT / "exhunt" / "data" / "yara"
EXTERNALS = ("filename", "filepath", "extension", "filetype", "owner")
FOLDERS = (
    "inetpub/wwwroot/aspnet_client/system_web/4_0_30319",
    "Program Files/Microsoft/Exchange Server/V15/FrontEnd/HttpProxy/owa/auth/15.1.2176",
    "Program Files/Microsoft/Exchange Server/V15/FrontEnd/HttpProxy/ecp/auth",
    "Program Files/Microsoft/Exchange Server/V15/ClientAccess/owa/prem/15.1.2176/scripts",
    "Program Files/Microsoft/Exchange Server/V15/ClientAccess/ecp/DDI",
    "Program Files/Microsoft/Exchange Server/V15/ClientAccess/Oab",
    "inetpub/wwwroot/app/bin",
)


def ensure_yara() -> str | None:
    """The ``yara`` CLI, installed with apt-get when missing; None (with a printed reason) if that fails."""
    found = shutil.which("yara")
    if found:
        return found
    try:
        subprocess.run(["apt-get", "install", "-y", "yara"], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"skip: yara CLI missing and apt-get install yara failed ({exc})")
        return None
    return shutil.which("yara")


def generate(target: Path, files: int, total_bytes: int) -> None:
    marker = target / ".complete"
    if marker.exists():
        return
    if target.exists():
        shutil.rmtree(target)
    rng = random.Random(4)
    shells = [
        p.read_bytes()
        for p in sorted((SHARED / "webshells").rglob("*"))
        if p.is_file() and "LICENSE" not in p.name
    ]
    benign = [p.read_bytes() for p in sorted((SHARED / "benign" / "aspx").rglob("*.as*")) if p.is_file()]
    mean = total_bytes // files
    for n in range(files):
        folder = target / FOLDERS[n % len(FOLDERS)] / f"d{n % 97:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        size = int(rng.expovariate(1 / mean)) + 512
        kind = rng.random()
        if kind < 0.03:  # a web shell, sometimes inside a larger page
            data = rng.choice(shells)
            if rng.random() < 0.5:
                data = rng.choice(benign) + b"\r\n" + data
            name = f"s{n}.aspx"
        elif kind < 0.13:  # binary (bin/*.dll, images)
            data = b"MZ" + rng.randbytes(size)
            name = f"lib{n}.dll"
        else:  # pages padded with more markup to a realistic size
            parts, length = [], 0
            while length < size:
                part = rng.choice(benign)
                parts.append(part)
                length += len(part)
            data = b"\r\n".join(parts)[:size]
            name = f"p{n}.{rng.choice(['aspx', 'aspx', 'ashx', 'js', 'css', 'htm'])}"
        (folder / name).write_bytes(data)
    marker.write_text("ok")


def run_timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str, float]:
    """Wall seconds, peak RSS (KiB, largest process of the tree), stdout and CPU seconds (user +
    system of the command and the workers it waited for: steadier than wall time on a shared machine)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL, env=env)
        _pid, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"command failed ({status}): {' '.join(cmd[:6])} ...")
    return elapsed, int(usage.ru_maxrss), text, usage.ru_utime + usage.ru_stime


def yara_cli_paths(yara: str, rules: list[Path], corpus: Path, jobs: int) -> tuple[float, int, set[str], float]:
    """Wall seconds, peak RSS (KiB), the files (relative to ``corpus``) the yara CLI flags, CPU seconds."""
    cmd = [yara, "-r", "-w", "-p", str(jobs)]
    for name in EXTERNALS:
        cmd += ["-d", f"{name}="]
    cmd += [f"{r.stem}:{r}" for r in rules] + [str(corpus)]
    elapsed, rss, out, cpu = run_timed(cmd)
    flagged = {
        Path(line.split(" ", 1)[1]).relative_to(corpus).as_posix() for line in out.splitlines() if " " in line
    }
    return elapsed, rss, flagged, cpu


def yara_cli(yara: str, rules: list[Path], corpus: Path, jobs: int) -> tuple[float, int, int]:
    elapsed, rss, flagged, _ = yara_cli_paths(yara, rules, corpus, jobs)
    return elapsed, rss, len(flagged)


def _pass_chunk(paths: list[str], root: str) -> int:
    from exhunt.worker import _SCANNER

    assert _SCANNER is not None
    flagged = 0
    for path in paths:
        with open(path, "rb") as fh:
            data = fh.read()
        digest = hashlib.sha256(data)
        hashlib.sha1(data)
        hashlib.md5(data)
        rel = os.path.relpath(path, root)
        if _SCANNER.scan(data, rel, "bench", digest.hexdigest()):
            flagged += 1
    return flagged


def exhunt_pass(rules: list[Path], corpus: Path, jobs: int) -> tuple[float, int, int]:
    from exhunt.detections.yara import DEFAULT_MAX_SIZE, load_rules
    from exhunt.worker import init_scanner

    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    blob = load_rules(rules).blob
    paths = [str(p) for p in corpus.rglob("*") if p.is_file() and p.name != ".complete"]
    chunks = [paths[i : i + 100] for i in range(0, len(paths), 100)]
    with ProcessPoolExecutor(
        jobs, mp_context=get_context("spawn"), initializer=init_scanner, initargs=(blob, DEFAULT_MAX_SIZE)
    ) as pool:
        flagged = sum(pool.map(_pass_chunk, chunks, [str(corpus)] * len(chunks)))
    elapsed = time.perf_counter() - start
    rss = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before)
    return elapsed, rss, flagged


def floor_paths(corpus: Path, jobs: int) -> tuple[float, int, set[str], float]:
    """The Python floor (bench/pages_floor.py: read, hashes, yara-x scan, nothing else) as a row."""
    cmd = [sys.executable, str(ROOT / "bench" / "pages_floor.py"), str(corpus), "--jobs", str(jobs)]
    elapsed, rss, out, cpu = run_timed(cmd, dict(os.environ, PYTHONPATH=str(ROOT)))
    return elapsed, rss, {line for line in out.splitlines() if line}, cpu


def exhunt_scan(rules: list[Path], corpus: Path, jobs: int, out: Path) -> tuple[float, int, int]:
    elapsed, rss, flagged, _ = exhunt_scan_paths(rules, corpus, jobs, out)
    return elapsed, rss, len(flagged)


def exhunt_scan_paths(rules: list[Path], corpus: Path, jobs: int, out: Path) -> tuple[float, int, set[str], float]:
    """Wall seconds, peak RSS (KiB), the files (store paths) ``exhunt scan`` flags with YARA, CPU seconds."""
    if out.exists():
        shutil.rmtree(out)
    cmd = [
        sys.executable,
        "-m",
        "exhunt",
        "scan",
        str(corpus),
        "--out",
        str(out),
        "--quiet",
        "--jobs",
        str(jobs),
    ]
    for rule in rules:
        if not rule.is_relative_to(OWN):
            cmd += ["--yara", str(rule)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    elapsed, rss, _, cpu = run_timed(cmd, env)
    from exhunt.events.store import connect

    con = connect(out / "store")
    rows = con.execute("SELECT DISTINCT path FROM matches WHERE engine = 'yara'").fetchall()
    return elapsed, rss, {str(r[0]) for r in rows}, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 files (~100 MB)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out")
    parser.add_argument(
        "--rows", choices=("all", "large", "pages"), default="all",
        help="large: the 1 GB corpus rows; pages: the 20,000 small pages row (issue 19)",
    )
    parser.add_argument("--update-findings", action="store_true",
                        help="rewrite bench/results/yara_pages_findings.json from this run (after a "
                             "deliberate detection change; otherwise the pages row must equal it)")
    args = parser.parse_args()
    os.environ.setdefault("EXHUNT_CACHE", str(args.out / "cache"))
    if args.rows in ("all", "pages"):
        small_pages(args)
    if args.rows in ("all", "large"):
        large_files(args)


def small_pages(args: argparse.Namespace) -> None:
    """20,000 small pages, signature-base: ``exhunt scan --jobs N`` vs ``yara -p N``, alternating runs."""
    if not SIGBASE.is_dir() or not (SHARED / "benign" / "aspx").is_dir():
        print(f"skip small pages: {SIGBASE} or the shared benign pages are absent")
        return
    yara = ensure_yara()
    if yara is None:
        return
    files, rounds = 20_000, (3 if args.quick else 5)
    corpus = args.out / f"yara-pages-{files}"
    planted = generate_pages(corpus, SHARED, FOLDERS, files)
    rules = sorted(SIGBASE.glob("*.yar"))
    n_files = sum(1 for p in corpus.rglob("*") if p.is_file() and p.name != ".complete")
    n_bytes = sum(p.stat().st_size for p in corpus.rglob("*") if p.is_file())
    compile_bytecode()
    exhunt_scan_paths(rules, corpus, args.jobs, args.out / "case-pages")  # warm rule cache, page cache
    version = subprocess.run([yara, "--version"], capture_output=True, text=True).stdout.strip()
    runs = alternate(
        {
            f"yara {version} -p {args.jobs}": lambda: yara_cli_paths(yara, rules, corpus, args.jobs),
            f"floor: read + hashes + yara-x, {args.jobs} procs": lambda: floor_paths(corpus, args.jobs),
            f"exhunt scan --jobs {args.jobs}": lambda: exhunt_scan_paths(
                rules, corpus, args.jobs, args.out / "case-pages"
            ),
        },
        rounds,
    )
    for name, rs in runs.items():
        lost = missed(planted, rs[-1][2])
        if lost:
            raise SystemExit(f"{name} missed planted shells: {', '.join(lost)}")
    same = check_findings(args.out / "case-pages" / "findings.json",
                          ROOT / "bench" / "results" / "yara_pages_findings.json", args.update_findings)
    lines = table(runs, planted, n_files)
    print("\n".join(lines))
    print(same)
    note = (
        f"# YARA benchmark: small pages (issue 19{', --quick' if args.quick else ''})\n\nMachine: {machine()}.\n\n"
        f"Corpus: {n_files:,} files, {n_bytes / (1 << 20):,.1f} MB: variations of the shared benign ASPX "
        f"pages (0.5-4 KB) and {len(planted)} planted web shells; signature-base YARA pack; files in the "
        "page cache. `exhunt scan` includes listing, SHA-256/SHA-1/MD5 of every file, YARA, the Parquet "
        "store and every detection; its compiled rules come from the cache (warmed by one untimed run), "
        f"the yara CLI compiles on every run. {rounds} alternating runs per side, medians; 'x yara time' "
        "< 1 means faster than yara. The floor row is `bench/pages_floor.py`: the same rules in a spawned "
        "Python pool doing only what no design can skip (read, SHA-256/SHA-1/MD5, the yara-x scan), i.e. "
        "the best a Python per-file loop can do. Every planted shell must be flagged by every row, and "
        f"exhunt's findings must equal `bench/results/yara_pages_findings.json` ({same}).\n\n"
    )
    results_dir = ROOT / "bench" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "yara_pages.md").write_text(note + "\n".join(lines) + "\n", encoding="utf-8")


def large_files(args: argparse.Namespace) -> None:
    files, size = (2_000, 100 << 20) if args.quick else (20_000, 1 << 30)
    corpus = args.out / f"yara-corpus-{files}"
    generate(corpus, files, size)
    n_files = sum(1 for p in corpus.rglob("*") if p.is_file() and p.name != ".complete")
    n_bytes = sum(p.stat().st_size for p in corpus.rglob("*") if p.is_file())
    yara = ensure_yara()
    if yara is None:
        return
    version = subprocess.run([yara, "--version"], capture_output=True, text=True).stdout.strip()
    packs = {"exhunt pack": sorted(OWN.glob("*.yar")), "signature-base": sorted(SIGBASE.glob("*.yar"))}
    rows = []
    for pack, rules in packs.items():
        results = {
            f"yara {version} -p {args.jobs}": yara_cli(yara, rules, corpus, args.jobs),
            f"exhunt file pass ({args.jobs} procs)": exhunt_pass(rules, corpus, args.jobs),
            f"exhunt scan --jobs {args.jobs}": exhunt_scan(rules, corpus, args.jobs, args.out / "case"),
        }
        reference = next(iter(results.values()))[0]
        for tool, (elapsed, rss, flagged) in results.items():
            rows.append(
                (
                    pack,
                    tool,
                    elapsed,
                    n_files / elapsed,
                    n_bytes / elapsed / (1 << 20),
                    reference / elapsed,
                    rss / 1024,
                    flagged,
                )
            )
    header = "| rules | tool | seconds | files/s | MB/s | speed vs yara CLI | peak RSS MB | files flagged |"
    lines = [header, "|" + "---|" * 8]
    for pack, tool, elapsed, fps, mbps, ratio, rss, flagged in rows:
        lines.append(
            f"| {pack} | {tool} | {elapsed:.1f} | {fps:,.0f} | {mbps:.1f} | {ratio:.2f}x | {rss:.0f} "
            f"| {flagged} |"
        )
    text = "\n".join(lines)
    print(text)
    note = (
        f"# YARA benchmark\n\nMachine: {machine()}.\n\n"
        f"Corpus: {n_files:,} files, {n_bytes / (1 << 20):,.0f} MB "
        f"(generated from the shared web shells and benign pages{', --quick' if args.quick else ''}); "
        "files in the page cache. exhunt rows include SHA-256, SHA-1 and MD5 of every file; "
        "`exhunt scan` also parses, writes the Parquet store and runs every detection. "
        "Compiled rules come from exhunt's cache after the first run; the yara CLI compiles on every run. "
        "'speed vs yara CLI' > 1 means faster than yara. 'files flagged' counts distinct files with a YARA "
        "match (exhunt also scans archive members and counts them separately; none here).\n\n"
    )
    results_dir = ROOT / "bench" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "yara.md").write_text(note + text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
