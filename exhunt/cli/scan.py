"""``exhunt scan EVIDENCE... [--out DIR] [--host NAME] [--json]``"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from exhunt.api import ScanOptions, document_bytes, scan
from exhunt.errors import ExitCode
from exhunt.reports.terminal import print_summary


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("scan", help="assess collected evidence of one or more Exchange servers")
    p.add_argument("evidence", nargs="+", type=Path, metavar="EVIDENCE",
                   help="a folder (drive copy, triage collection, loose logs) or a single log file")
    p.add_argument("--out", type=Path, metavar="DIR", help="case folder: findings.json and the Parquet store")
    p.add_argument("--host", metavar="NAME", help="host name for the evidence (default: folder name)")
    p.add_argument("--json", action="store_true", help="print the findings document to stdout")
    p.add_argument("--jobs", type=int, default=0, metavar="N", help="worker processes (default: all cores)")
    p.add_argument("--sigma", type=Path, action="append", default=[], metavar="PATH",
                   help="extra Sigma rules: a .yml file or a folder of them (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--no-color", action="store_true", help="plain terminal output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    options = ScanOptions(out=args.out, host=args.host, jobs=args.jobs, quiet=args.quiet,
                          sigma=list(args.sigma))
    result = scan(args.evidence, options)
    if args.json:
        sys.stdout.buffer.write(document_bytes(result.document))
    else:
        print_summary(result.document, color=not args.no_color, case_dir=args.out)
    return int(ExitCode.FINDINGS if result.document.has_findings else ExitCode.CLEAN)
