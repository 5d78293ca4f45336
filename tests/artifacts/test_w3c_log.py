"""The ``#Fields`` log base: one status rule in Python and SQL, each family claimed by its own header."""

from __future__ import annotations

import duckdb
import pytest

from exhunt.artifacts.exchange_logs import ExchangeLog
from exhunt.artifacts.iis import IisLog
from exhunt.artifacts.w3c_log import status_code, status_sql
from exhunt.sqltext import literal


@pytest.mark.parametrize("text", ["200", "0404", "999999999", "1000000000", "-", "", "2 0", "٣٠٠", "²", "+1", None])
def test_status_rule_is_the_same_in_python_and_sql(text: str | None) -> None:
    sql = f"SELECT {status_sql(literal(text) if text is not None else 'NULL::VARCHAR')}"
    assert duckdb.connect().execute(sql).fetchall() == [(status_code(text),)]


@pytest.mark.parametrize(("software", "claimed_by"), [
    ("Microsoft Internet Information Services 10.0", IisLog),
    ("Microsoft Exchange Server", ExchangeLog),
])
def test_each_family_is_claimed_by_its_software_header(software: str, claimed_by: type) -> None:
    head = f"#Software: {software}\r\n#Version: 1.0\r\n#Fields: date time\r\n".encode()
    assert [a for a in (IisLog, ExchangeLog) if a.claims("any/name.txt", head)] == [claimed_by]
