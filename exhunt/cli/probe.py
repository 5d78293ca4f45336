"""``exhunt probe TARGET... [--targets FILE] [--json] [--out DIR] [--resume] [--concurrency N] ...``"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from exhunt.errors import ExitCode, MissingExtraError, UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "probe",
        help="safe remote check of Exchange servers: build, ProxyLogon/ProxyShell/ProxyNotShell exposure",
        description="Anonymous, read-only HTTP(S) requests only: no login, no payload, nothing written. "
                    "Every check documents what it sends (exhunt/probe/checks/).")
    p.add_argument("targets", nargs="*", metavar="TARGET", help="URL, host or host:port (default https)")
    p.add_argument("--targets", dest="target_files", action="append", type=Path, default=[], metavar="FILE",
                   help="file with one target per line, '#' comments (repeatable)")
    p.add_argument("--allow-ranges", action="store_true", help="accept CIDR ranges such as 10.0.0.0/24")
    p.add_argument("--json", action="store_true", help="print the findings document to stdout")
    p.add_argument("--out", type=Path, metavar="DIR", help="case folder: findings.json and probe.jsonl")
    p.add_argument("--jsonl", type=Path, metavar="FILE",
                   help="stream results here (default: DIR/probe.jsonl)")
    p.add_argument("--resume", action="store_true",
                   help="keep results already in the JSON lines file, probe the rest")
    p.add_argument("--concurrency", type=int, default=50, metavar="N",
                   help="hosts probed at once (default 50)")
    p.add_argument("--rate", type=float, default=0.0, metavar="R",
                   help="requests per second overall (default: no cap)")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S",
                   help="seconds per host, all requests (default 10)")
    p.add_argument("--retries", type=int, default=2, metavar="N",
                   help="retries after connection failures (default 2)")
    tls = p.add_mutually_exclusive_group()
    tls.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    tls.add_argument("--ca-bundle", type=Path, metavar="PEM", help="trust this CA bundle for TLS")
    p.add_argument("--proxy", metavar="URL", help="send all requests through this HTTP proxy")
    p.add_argument("--resolve", action="append", default=[], metavar="NAME=ADDR",
                   help="connect to ADDR for host NAME, keeping NAME for Host and TLS SNI (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress or per-host lines")
    p.add_argument("--no-color", action="store_true", help="plain terminal output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        import httptools  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError("exhunt probe", "probe") from exc
    from exhunt.probe.runner import ProbeOptions
    from exhunt.probe.sweep import sweep
    from exhunt.probe.targets import collect_targets

    targets = collect_targets(args.targets, args.target_files, args.allow_ranges)
    if not targets:
        raise UsageError("give at least one TARGET or --targets FILE")
    options = ProbeOptions(concurrency=args.concurrency, rate=args.rate, timeout=args.timeout,
                           retries=args.retries, insecure=args.insecure, ca_bundle=args.ca_bundle,
                           proxy=args.proxy, resolve=_resolve(args.resolve))
    jsonl = args.jsonl or (args.out / "probe.jsonl" if args.out else None)
    if args.resume and jsonl is None:
        raise UsageError("--resume needs --out DIR or --jsonl FILE")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} exists and is not a folder")
    if args.quiet:  # nothing for the terminal: rich is not even imported (~25 ms of a sweep's start)
        result = sweep(targets, options, jsonl=jsonl, resume=args.resume)
    else:
        from exhunt.probe.terminal import Live

        with Live(len(targets), color=not args.no_color) as live:
            result = sweep(targets, options, jsonl=jsonl, resume=args.resume, on_result=live.add)
    if args.out is not None or args.json:
        from exhunt.findings.document import document_bytes, save_document

        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            save_document(args.out, result.document)
        if args.json:
            sys.stdout.buffer.write(document_bytes(result.document))
    elif not args.quiet:
        from exhunt.probe.terminal import print_tally

        print_tally(result.document, result.probed, result.resumed, color=not args.no_color,
                    case_dir=args.out)
    return int(ExitCode.FINDINGS if result.document.findings else ExitCode.CLEAN)


def _resolve(entries: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for entry in entries:
        name, sep, addr = entry.partition("=")
        if not sep or not name or not addr:
            raise UsageError(f"--resolve {entry!r}: expected NAME=ADDR")
        out[name.strip().lower()] = addr.strip().strip("[]")
    return out
