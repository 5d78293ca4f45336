"""CLI tests reuse the reports session case."""

from tests.reports.conftest import case, case_dir, scanned  # noqa: F401
