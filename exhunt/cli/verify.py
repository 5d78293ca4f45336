"""``exhunt verify CASE_DIR``: re-hash every recorded input; exit 1 when anything changed."""

from __future__ import annotations

import argparse
from pathlib import Path

from exhunt.errors import ExitCode


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("verify", help="re-hash a case's evidence against its manifest")
    p.add_argument("case", type=Path, metavar="CASE_DIR", help="case folder written by exhunt scan --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from exhunt.evidence.verify import verify  # Arrow: imported by this command only

    result = verify(args.case)
    for change in (*result.changes, *result.unverified):
        print(change)
    # an input the scan could not read has no hash: it is neither counted nor called unchanged
    unread = f"; {len(result.unverified)} not verifiable (unread by the scan)" if result.unverified else ""
    if result.ok:
        print(f"verified: {result.checked} inputs unchanged since the scan{unread}")
        return int(ExitCode.CLEAN)
    print(f"{len(result.changes)} change(s) in {result.checked} inputs since the scan{unread}")
    return int(ExitCode.FINDINGS)
