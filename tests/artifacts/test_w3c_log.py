"""The ``#Fields`` log base: one status rule in Python and Arrow, each family claimed by its own header."""

from __future__ import annotations

from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from exhunt.artifacts.exchange_logs import ExchangeLog
from exhunt.artifacts.iis import IisLog
from exhunt.artifacts.w3c_log import arrow_status, each_distinct, plus_to_space, status_code

STATUSES = ["200", "0404", "999999999", "1000000000", "-", "", "2 0", "٣٠٠", "²", "+1", None]


def test_status_rule_is_the_same_in_python_and_arrow() -> None:
    assert arrow_status(pa.array(STATUSES, pa.string())).to_pylist() == [status_code(t) for t in STATUSES]


def test_each_distinct_decodes_every_row_in_place() -> None:
    values = ["/a%20b", None, "/a%20b", "/c%ff", "/a%20b", ""]
    assert each_distinct(pa.array(values, pa.string()), unquote).to_pylist() == [
        None if v is None else unquote(v) for v in values]


@pytest.mark.parametrize(("software", "claimed_by"), [
    ("Microsoft Internet Information Services 10.0", IisLog),
    ("Microsoft Exchange Server", ExchangeLog),
])
def test_each_family_is_claimed_by_its_software_header(software: str, claimed_by: type) -> None:
    head = f"#Software: {software}\r\n#Version: 1.0\r\n#Fields: date time\r\n".encode()
    assert [a for a in (IisLog, ExchangeLog) if a.claims("any/name.txt", head)] == [claimed_by]


@pytest.mark.parametrize("values", [["a+b", None, "++", "", "-"], [None, None], []])
def test_plus_to_space_keeps_nulls_offsets_and_slices(values: list[str | None]) -> None:
    column = pa.array(["x+y", *values, "+z"], pa.string())
    for part in (column, column.slice(1, len(values)), pa.chunked_array([column.slice(0, 2), column.slice(2)])):
        expected = pc.replace_substring(part, "+", " ")
        got = plus_to_space(part)
        assert got.to_pylist() == expected.to_pylist()
        assert got.null_count == expected.null_count
