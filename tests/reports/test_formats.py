"""The one list of report formats: every entry names a renderer that exists, and the CLI offers
exactly these names."""

from __future__ import annotations

from importlib import import_module

from exhunt.cli import report as cli_report
from exhunt.reports.formats import FORMATS, NAMES, get


def test_every_format_names_a_real_renderer() -> None:
    for fmt in FORMATS:
        assert callable(import_module(f"exhunt.reports.{fmt.module}").render), fmt.name
        assert get(fmt.name) is fmt
    assert len(set(NAMES)) == len(NAMES)


def test_the_cli_offers_the_same_formats() -> None:
    assert cli_report.FORMAT_NAMES == NAMES
