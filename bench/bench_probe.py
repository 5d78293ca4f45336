"""Benchmark ``exhunt probe``: targets/s and peak RSS over 2,000 loopback targets.

The fixture Exchange fake (tests/probe/fixture.py) runs in its own process on 2,000 loopback ports
(127.0.0.1 only), a realistic mix of profiles: vulnerable 2016 CU19, patched 2019 CU12, mitigated,
CU-only, plain IIS. Tarpits are left out on purpose: a tarpit costs ``--timeout`` seconds of one
worker whatever the tool does, so it measures the timeout, not the probe.

Each run is the real CLI in a fresh process (``python -m exhunt probe --targets FILE --quiet
--jsonl ...``), timed end to end (interpreter start included); peak RSS is that process's
``ru_maxrss`` from ``os.wait4``. Rows: HTTP at concurrency 50/200/500, HTTPS (trustme certificate,
``--ca-bundle``) at 200, and the reference point of probing one host after another (concurrency 1,
what a per-host script such as the nmap NSE check does) on a 200-target sample, extrapolated.

No reference tool is installed: nmap's ``http-vuln-cve2021-26855`` script is not in Debian's nmap.

    .venv/bin/python bench/bench_probe.py [--quick]

Writes bench/results/probe.md. Goal: >= 500 targets/s, < 300 MB.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine_info import machine  # noqa: E402  (bench/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MIX = ["vuln2016", "patched2019", "mitigated", "cuonly", "iis"]


def _serve(n: int, tls_dir: str | None, conn: mp.connection.Connection) -> None:  # runs in the server process
    import asyncio
    import ssl

    from tests.probe.fixture import FixtureServer

    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)

    async def main() -> None:
        ctx = None
        if tls_dir is not None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(Path(tls_dir) / "server.pem")
        server = FixtureServer(ssl_context=ctx)
        ports = await server.start("127.0.0.1", [MIX[i % len(MIX)] for i in range(n)])
        conn.send(ports)
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # wait for "stop"
        conn.send({"peak_open": server.peak_open, "connections": server.connections,
                   "requests": server.requests})
        await server.close()

    asyncio.run(main())


def start_server(n: int, tls_dir: str | None) -> tuple[mp.Process, mp.connection.Connection, list[int]]:
    parent, child = mp.get_context("spawn").Pipe()
    proc = mp.get_context("spawn").Process(target=_serve, args=(n, tls_dir, child), daemon=True)
    proc.start()
    ports = parent.recv()
    return proc, parent, ports


def stop_server(proc: mp.Process, conn: mp.connection.Connection) -> dict[str, int]:
    conn.send("stop")
    stats: dict[str, int] = conn.recv()
    proc.join(10)
    return stats


def run_probe(targets: Path, work: Path, concurrency: int, extra: list[str]) -> tuple[float, float, int]:
    """Wall seconds, peak RSS in MB, exit status of one CLI run."""
    out = work / f"run-{concurrency}-{len(extra)}.jsonl"
    cmd = [sys.executable, "-m", "exhunt", "probe", "--targets", str(targets), "--quiet",
           "--jsonl", str(out), "--concurrency", str(concurrency), "--timeout", "20", *extra]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    lines = out.read_text(encoding="utf-8").count("\n")
    return seconds, usage.ru_maxrss / 1024, lines if os.waitstatus_to_exitcode(status) in (0, 1) else -1




def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="1,000 targets, fewer rows (< 2 min)")
    args = parser.parse_args()
    n = 1000 if args.quick else 2000
    levels = [50, 200] if args.quick else [50, 200, 500]
    rows: list[tuple[str, int, int, float, float, float, str]] = []
    with tempfile.TemporaryDirectory(prefix="exhunt-bench-probe-") as tmp:
        work = Path(tmp)
        import trustme

        ca = trustme.CA()
        ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(work / "server.pem"))
        ca.cert_pem.write_to_path(str(work / "ca.pem"))
        for scheme in ("http", "https"):
            proc, conn, ports = start_server(n, str(work) if scheme == "https" else None)
            targets = work / f"targets-{scheme}.txt"
            targets.write_text("".join(f"{scheme}://127.0.0.1:{p}\n" for p in ports), encoding="utf-8")
            extra = ["--ca-bundle", str(work / "ca.pem")] if scheme == "https" else []
            for c in (levels if scheme == "http" else [200]):
                seconds, rss, done = run_probe(targets, work, c, extra)
                status = "ok" if done == n else f"{done} results"
                rows.append((scheme, n, c, seconds, n / seconds, rss, status))
            if scheme == "http":
                sample = work / "sample.txt"
                sample.write_text("".join(targets.read_text(encoding="utf-8").splitlines(True)[:200]),
                                  encoding="utf-8")
                seconds, rss, done = run_probe(sample, work, 1, extra)
                rows.append(("http, one host at a time (reference)", 200, 1, seconds, 200 / seconds, rss,
                             "ok" if done == 200 else f"{done} results"))
            stats = stop_server(proc, conn)
            print(f"{scheme}: server saw {stats['connections']} connections, {stats['requests']} requests, "
                  f"peak {stats['peak_open']} open at once", file=sys.stderr)
    header = ("| run | targets | concurrency | seconds | targets/s | peak RSS (MB) | results |\n"
              "|---|---|---|---|---|---|---|\n")
    body = "".join(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.2f} | {r[4]:.0f} | {r[5]:.0f} | {r[6]} |\n"
                   for r in rows)
    text = (f"# exhunt probe benchmark{' (quick)' if args.quick else ''}\n\nMachine: {machine()}\n\n"
            f"Goal: >= 500 targets/s, < 300 MB. Times are end to end for the CLI process, interpreter start "
            f"included; each target gets 5-6 requests (fingerprint, export-tool manifest when the header is "
            f"missing, ProxyLogon, ProxyShell, ProxyNotShell baseline + trigger).\n\n{header}{body}")
    print(text)
    out = ROOT / "bench" / "results" / "probe.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
