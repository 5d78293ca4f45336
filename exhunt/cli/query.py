"""``exhunt query CASE_DIR "SQL" [--format table|csv|json]``: pivot over a case with DuckDB.

Tables: events, files, host_facts, warnings, findings, hits, hosts (see the README).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from exhunt.errors import ExitCode


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("query", help="read-only SQL over a case store (events, files, findings, ...)")
    p.add_argument("case", type=Path, metavar="CASE_DIR", help="case folder written by 'exhunt scan --out'")
    p.add_argument("sql", metavar="SQL", help="one SELECT statement, e.g. \"SELECT * FROM events WHERE "
                   "client_ip = '203.0.113.9'\"")
    p.add_argument("--format", "-f", choices=("table", "csv", "json"), default="table")
    p.add_argument("--no-color", action="store_true", help="plain table output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from exhunt.findings.document import load_document
    from exhunt.reports.query import open_case, run_query, write_csv, write_json

    doc = load_document(args.case) if (args.case / "findings.json").exists() else None
    con = open_case(args.case, doc)
    try:
        cursor = run_query(con, args.sql)
        if args.format == "csv":
            write_csv(cursor, sys.stdout.buffer)
        elif args.format == "json":
            write_json(cursor, sys.stdout.buffer)
        else:
            from exhunt.reports.terminal import print_rows

            print_rows(cursor, color=not args.no_color)
        sys.stdout.flush()
    finally:
        con.close()
    return int(ExitCode.CLEAN)
