"""``exhunt build VERSION_OR_FILE [--json]``"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("build", help="Exchange build -> product, CU, update, exploited CVEs")
    p.add_argument("value", metavar="VERSION_OR_FILE",
                   help="15.2.792.10, 15.02.0792.010, 'Version 15.2 (Build 792.10)' or an ExSetup CLIXML file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from exhunt.errors import UsageError

    raise UsageError("exhunt build is not implemented yet")
