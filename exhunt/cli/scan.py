"""``exhunt scan EVIDENCE... [--out DIR] [--host NAME] [--json]``"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from exhunt.errors import ExitCode, UsageError

# The scan machinery (DuckDB, Arrow, YARA) is imported in ``run``: every command's parser is built at
# start, and ``exhunt probe``/``build``/``--help`` should not pay ~0.3 s to import what only scan uses.
# Hence the size/time defaults are filled in there too (None here means "the default").


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("scan", help="assess collected evidence of one or more Exchange servers")
    p.add_argument("evidence", nargs="*", type=Path, metavar="EVIDENCE",
                   help="a folder (drive copy, triage collection, loose logs) or a single log file")
    p.add_argument("--out", type=Path, metavar="DIR", help="case folder: findings.json and the Parquet store")
    p.add_argument("--host", metavar="NAME", help="host name for the evidence (default: folder name)")
    p.add_argument("--json", action="store_true", help="print the findings document to stdout")
    p.add_argument("--jobs", type=_jobs, default=0, metavar="N",
                   help="cores to use: worker processes and query threads (default, or 0: all; at most four "
                        "per core, and fewer workers when --memory-limit cannot hold them)")
    p.add_argument("--sigma", type=Path, action="append", default=[], metavar="PATH",
                   help="extra Sigma rules: a .yml file or a folder of them (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--no-color", action="store_true", help="plain terminal output")
    p.add_argument("--verbose", action="store_true",
                   help="the full host and finding tables instead of the 80-column summary")
    p.add_argument("--yara", type=Path, action="append", default=[], metavar="PATH",
                   help="extra YARA rules: a file or a folder (repeatable); exhunt's own pack always runs")
    p.add_argument("--iocs", type=Path, action="append", default=[], metavar="PATH",
                   help="IOC list: hashes, filename regexes, IPs, domains, user agents; plain, "
                        "signature-base, Microsoft CSV, CISA CHIRP YAML or STIX 2.1 (repeatable)")
    p.add_argument("--baseline", type=Path, action="append", default=[], metavar="PATH",
                   help="CSS-Exchange known-good baseline CSV (hash,build,relative path) or a folder "
                        "(repeatable)")
    p.add_argument("--yara-max-size", type=_size, default=None, metavar="BYTES",
                   help="files larger than this are hashed but not YARA-scanned (default 100M; K/M/G)")
    p.add_argument("--yara-logs", action=argparse.BooleanOptionalAction, default=None,
                   help="also YARA-scan files parsed as logs (IIS/Exchange logs, EVTX, event exports); "
                        "default: only when --yara or --iocs brings rules")
    p.add_argument("--fleet", type=Path, metavar="DIR",
                   help="a folder with one child per host (folder or archive), each assessed as a host "
                        "named after it, into one case and report with cross-host pivots")
    p.add_argument("--split-size", type=_size, default=None, metavar="BYTES",
                   help="text logs and EVTX files bigger than this are parsed by several workers in ranges "
                        "when one would hold up the others, or is over 1 GiB (default 64M; K/M/G)")
    p.add_argument("--memory-limit", type=_size, default=None, metavar="BYTES",
                   help="memory for the whole scan: worker count, read chunk and DuckDB limits follow "
                        "(default 1G)")
    p.add_argument("--file-timeout", type=float, default=None, metavar="SECONDS",
                   help="a file still parsing after this long is skipped with a warning and its worker "
                        "restarted (default 600; needs --jobs 2 or more)")
    p.add_argument("--org-domain", action="append", default=[], metavar="DOMAIN", type=_domain,
                   help="the organisation's own mail domain (repeatable; default: accepted domains or "
                        "mailbox addresses in the evidence): forwarding elsewhere is reported")
    p.add_argument("--resume", action="store_true",
                   help="with --out of an earlier scan: parse only files whose size or SHA-256 changed")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the file work on a Dask cluster (tcp://HOST:8786; needs exhunt[cluster]); "
                        "evidence and --out must be on storage all workers mount at the same path")
    p.add_argument("--index", choices=("triage", "full"), default="triage",
                   help="triage (default): only the text-log lines and EVTX chunks holding a text some "
                        "detection, rule or IOC needs are parsed and stored (every line and record still "
                        "counted), then every text-log line holding an indicator of the findings' attacker "
                        "(pivot pass); full: every line and record is stored")
    p.set_defaults(func=run, parser=p)


def run(args: argparse.Namespace) -> int:
    from exhunt.parallel.startmethod import prestart

    prestart(args.jobs, args.scheduler, args.yara, args.iocs)  # before this process imports the scan machinery
    from exhunt.api import ScanOptions, scan
    from exhunt.findings.document import document_bytes
    from exhunt.parallel.fleet import fleet_roots

    fill_defaults(args)
    options = ScanOptions(host=args.host, jobs=args.jobs, quiet=args.quiet, yara=args.yara,
                          iocs=args.iocs, baselines=args.baseline, yara_max_size=args.yara_max_size,
                          yara_logs=args.yara_logs,
                          sigma=list(args.sigma), split_size=args.split_size, memory_limit=args.memory_limit,
                          file_timeout=args.file_timeout, resume=args.resume,
                          scheduler=args.scheduler, index=args.index, org_domains=args.org_domain,
                          out=args.out.resolve() if args.scheduler and args.out else args.out)
    if not args.evidence and args.fleet is None:
        args.parser.error("give at least one evidence folder or file, or --fleet DIR")
    if args.resume and args.out is None:
        raise UsageError("--resume needs --out: the case folder of the earlier scan")
    if args.fleet is not None and args.host:
        raise UsageError("--fleet names each host after its folder or archive: drop --host")
    if args.fleet is not None:  # before listing it: a case inside the fleet folder would become a "host"
        from exhunt.casefolder import refuse_overlap

        refuse_overlap(args.out, [args.fleet])
    evidence = list(args.evidence) + (fleet_roots(args.fleet) if args.fleet is not None else [])
    if args.scheduler:
        evidence = [p.resolve() for p in evidence]
    try:
        result = scan(evidence, options)
    finally:
        from exhunt.parallel.startmethod import stop

        stop()  # its workers' CPU time then counts as this process's children's
    if args.json:
        sys.stdout.buffer.write(document_bytes(result.document))
    else:  # rich: imported while the workers parsed (``api._import_report_ahead``), not before them
        from exhunt.reports.terminal import print_summary

        print_summary(result.document, color=not args.no_color, case_dir=args.out, verbose=args.verbose)
    return int(ExitCode.FINDINGS if result.document.has_findings else ExitCode.CLEAN)


def fill_defaults(args: argparse.Namespace) -> None:
    """Options left at None get the scan machinery's defaults (imported only now)."""
    from exhunt.detections.yara import DEFAULT_MAX_SIZE
    from exhunt.parallel.limits import DEFAULT_MEMORY_LIMIT
    from exhunt.parallel.pool import DEFAULT_FILE_TIMEOUT
    from exhunt.parallel.ranges import DEFAULT_SPLIT_SIZE

    for name, default in (("yara_max_size", DEFAULT_MAX_SIZE), ("split_size", DEFAULT_SPLIT_SIZE),
                          ("memory_limit", DEFAULT_MEMORY_LIMIT), ("file_timeout", DEFAULT_FILE_TIMEOUT)):
        if getattr(args, name) is None:
            setattr(args, name, default)


def _jobs(text: str) -> int:
    try:
        jobs = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if jobs < 0:
        raise argparse.ArgumentTypeError(f"{jobs} is negative: give 0 (every core) or a number of cores")
    return jobs


def _domain(text: str) -> str:
    """A mail domain such as ``contoso.com`` (``@contoso.com`` and upper case accepted)."""
    domain = text.strip().lstrip("@").lower().rstrip(".")
    if not domain or "." not in domain or any(c in domain for c in " /\\@:;,"):
        raise argparse.ArgumentTypeError(f"not a mail domain: {text!r} (e.g. contoso.com)")
    return domain


def _size(text: str) -> int:
    """``100M``, ``512K``, ``2G`` or plain bytes."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    value = text.strip().lower().removesuffix("b")
    try:
        if value and value[-1] in units:
            return int(float(value[:-1]) * units[value[-1]])
        return int(value)
    except (ValueError, OverflowError):  # "infk" is a float, but no size
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 100M)") from None
