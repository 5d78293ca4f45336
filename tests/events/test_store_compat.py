"""A store written by an older exhunt (fewer columns) still reads: newer columns are NULL."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from exhunt.events.schema import EVENTS
from exhunt.events.store import connect


def test_parts_without_a_newer_column_read_it_as_null(tmp_path: Path) -> None:
    old = pa.schema([f for f in EVENTS if f.name != "backend_cookie"])
    folder = tmp_path / "store" / "events" / "host=h"
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([{"host": "h", "path": "x.log", "line": 1}], schema=old),
                   folder / "u-old.parquet")
    con = connect(tmp_path / "store")
    assert con.execute("SELECT host, backend_cookie FROM events").fetchall() == [("h", None)]
