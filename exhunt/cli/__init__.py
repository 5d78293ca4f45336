"""Thin command-line front end: parse options, call ``exhunt.api``, print. No logic here.

Each subcommand is one module with ``register(subparsers)``; ``COMMANDS`` is the explicit registry.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from exhunt import __version__
from exhunt.arrowpool import prefer_jemalloc, single_thread_blas
from exhunt.cli import build, probe, query, quickexit, report, scan, verify
from exhunt.errors import ExhuntError, ExitCode
from exhunt.heap import collect_young_rarely

COMMANDS = (scan, build, report, query, verify, probe)


class _Parser(argparse.ArgumentParser):
    """Usage errors are one readable line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(int(ExitCode.ERROR), f"exhunt: error: {message} (see: {self.prog} --help)\n")


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="exhunt", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"exhunt {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def run() -> None:
    """The program (``exhunt``, ``python -m exhunt``): ``main``, and a scan's process ended without
    the interpreter's teardown (``quickexit``). Tests call ``main``, which always returns."""
    collect_young_rarely()
    raise SystemExit(main(quick_exit=True))


def main(argv: Sequence[str] | None = None, quick_exit: bool = False) -> int:
    prefer_jemalloc()  # before any command loads pyarrow; worker processes inherit it
    single_thread_blas()  # likewise before pyarrow loads numpy
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        code = int(args.func(args))
        if quick_exit and args.command in quickexit.COMMANDS:
            quickexit.end(code)
        return code
    except ExhuntError as exc:
        print(f"exhunt: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("exhunt: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return int(ExitCode.ERROR)
    except Exception as exc:  # last resort: one line, traceback only on request
        if os.environ.get("EXHUNT_DEBUG"):
            raise
        print(f"exhunt: internal error: {type(exc).__name__}: {exc} (set EXHUNT_DEBUG=1 for details)",
              file=sys.stderr)
        return int(ExitCode.ERROR)
