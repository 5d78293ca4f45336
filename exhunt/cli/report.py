"""``exhunt report CASE_DIR --format html|md|json|csv|timesketch|stix|impact-csv [--output FILE] [--all-events]``

Re-renders a saved case (``findings.json`` plus the ``store/`` folder) without rescanning.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from exhunt.errors import ExitCode
from exhunt.reports.formats import NAMES as FORMAT_NAMES


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report", help="render a saved case as HTML, Markdown, JSON, CSV, Timesketch or STIX")
    p.add_argument("case", type=Path, metavar="CASE_DIR", help="case folder written by 'exhunt scan --out' "
                   "(or a findings.json file: timelines then hold only the rows kept in the document)")
    p.add_argument("--format", "-f", choices=FORMAT_NAMES, default="html")
    p.add_argument("--output", "-o", type=Path, metavar="FILE",
                   help="file to write ('-' for stdout; default: CASE_DIR/<report.html, report.md, ...>)")
    p.add_argument("--all-events", action="store_true",
                   help="csv/timesketch: every event in the store, not only the rows findings cite")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from exhunt.errors import CaseError, UsageError
    from exhunt.findings.document import load_document
    from exhunt.reports.case import Case
    from exhunt.reports.formats import get

    fmt = get(args.format)
    if args.all_events and not fmt.uses_all_events:
        raise UsageError(f"--all-events applies to csv and timesketch, not {fmt.name}")
    case_dir = args.case
    if not case_dir.exists():
        raise CaseError(f"no such case folder or file: {case_dir}")
    document = load_document(case_dir)
    store = (case_dir if case_dir.is_dir() else case_dir.parent) / "store"
    case = Case(document, store if store.is_dir() else None, all_events=args.all_events)
    if args.all_events and case.store is None:
        raise CaseError(f"--all-events needs the case store ({store} is missing)")
    if args.all_events and not any((store / "events").glob("host=*/*.parquet")) and any(
            h.coverage.events for h in document.hosts):
        raise CaseError(f"--all-events needs the events the scan stored ({store / 'events'} has none)")
    if args.output is not None and str(args.output) == "-":
        fmt.render(case, sys.stdout.buffer)
        sys.stdout.flush()
        return int(ExitCode.CLEAN)
    default_dir = case_dir if case_dir.is_dir() else case_dir.parent
    output: Path = args.output or default_dir / fmt.filename
    if output.resolve() == (default_dir / "findings.json").resolve() and fmt.name != "json":
        raise UsageError(f"refusing to overwrite the case document {output}")
    tmp = output.with_name(output.name + ".part")
    try:
        with tmp.open("wb") as out:
            fmt.render(case, out)
        os.replace(tmp, output)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"cannot write {output}: {exc}") from exc
    print(f"{fmt.name} report written to {output}", file=sys.stderr)
    return int(ExitCode.CLEAN)
