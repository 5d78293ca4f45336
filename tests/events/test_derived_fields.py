"""``fields`` of IIS and HttpProxy rows: stored as the line plus its header, derived by the view.

The view must give the reference parser's JSON text for every row, and the parts must hold the JSON
only where the derivation could not give it (a row quoted other than minimally, control bytes).
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from exhunt.events.store import connect
from tests.artifacts.test_w3c_fast import EXCHANGE_HEAD, IIS_HEAD, assert_same, fast_always, write
from tests.helpers import parse_paths

PROXY_ROWS = [
    "2021-03-03T02:00:00Z,15,1,2176,2,/owa/,,,1.2.3.4,200,GET,plain",
    '2021-03-03T02:00:01Z,15,1,2176,2,/ecp/y.js,,"a,b",1.2.3.4,200,POST,"Mozilla/5.0 (KHTML, like Gecko)"',
    '2021-03-03T02:00:02Z,15,1,2176,2,/ecp/y.js,?x=1#,,1.2.3.4,200,POST,"say ""hi"", C:\\x"',
    '2021-03-03T02:00:03Z,15,1,2176,2,/owa/,,,1.2.3.4,200,GET,"needlessly quoted"',  # not minimal
    '2021-03-03T02:00:04Z,15,1,2176,2,,,,,,,',
]
IIS_ROWS = [
    '2021-03-03 02:00:00 10.0.0.1 GET /owa/ - 443 - 1.2.3.4 say+"hi"+C:\\x 200',
    "2021-03-03 02:00:01 10.0.0.1 POST /ecp/y.js a=%22b 443 CORP\\u 1.2.3.4 - 200",
]


def _parts(store: Path) -> pa.Table:
    columns = ["line", "fields", "raw", "raw_header"]
    return pa.concat_tables(pq.read_table(p, columns=columns) for p in sorted((store / "events").rglob("*.parquet")))


def test_view_gives_the_reference_json_and_parts_hold_it_only_where_needed(tmp_path: Path) -> None:
    root = tmp_path / "ev"
    proxy = write(root, "HttpProxy/Owa/HttpProxy_1.LOG", (EXCHANGE_HEAD + "\r\n".join(PROXY_ROWS) + "\r\n").encode())
    iis = write(root, "W3SVC1/u_ex1.log", (IIS_HEAD + "\n".join(IIS_ROWS) + "\n").encode())
    rows = assert_same(tmp_path, root, [proxy, iis])["events"]
    assert [orjson.loads(orjson.dumps(r[-1]))["UserAgent"] for r in rows if r[1] == "httpproxy"][1:3] == [
        "Mozilla/5.0 (KHTML, like Gecko)", 'say "hi", C:\\x']
    parts = _parts(tmp_path / "fast" / "store").to_pylist()
    stored = {r["raw"]: r["fields"] for r in parts}
    assert all(r["raw"] is not None and r["raw_header"] for r in parts)
    assert [raw for raw, fields in stored.items() if fields is not None] == [PROXY_ROWS[3]]
    assert {r["raw_header"] for r in parts} == {
        "," + EXCHANGE_HEAD.split("#Fields: ")[1].strip(), " " + IIS_HEAD.split("#Fields: ")[1].strip()}


def test_segment_with_control_bytes_stores_the_json(tmp_path: Path) -> None:
    root = tmp_path / "ev"
    rel = write(root, "W3SVC1/u_ex1.log", (IIS_HEAD + IIS_ROWS[0].replace("say", "s\x01y") + "\n").encode())
    assert_same(tmp_path, root, [rel])
    assert _parts(tmp_path / "fast" / "store").column("fields").null_count == 0


def test_fields_read_from_parts_without_raw_columns(tmp_path: Path) -> None:
    """Parts written before ``raw`` existed keep their JSON: the view reads it as it is."""
    root = tmp_path / "ev"
    rel = write(root, "W3SVC1/u_ex1.log", (IIS_HEAD + "\n".join(IIS_ROWS) + "\n").encode())
    with fast_always():
        new = parse_paths(tmp_path / "new", root, [rel])
        expected = new.execute("SELECT fields FROM events ORDER BY line").fetchall()
    (part,) = (tmp_path / "new" / "store" / "events").rglob("*.parquet")
    old = pq.read_table(part)
    derived = [f for (f,) in expected]
    old = old.drop_columns(["raw", "raw_header"]).set_column(
        old.schema.get_field_index("fields"), "fields", pa.array(derived, pa.string()))
    folder = tmp_path / "old" / "events" / "host=h"
    folder.mkdir(parents=True)
    pq.write_table(old, folder / "p.parquet")
    con = connect(tmp_path / "old")
    assert con.execute("SELECT fields FROM events ORDER BY line").fetchall() == expected
    assert con.execute("SELECT count(*) FROM events WHERE raw IS NULL").fetchone() == (2,)


def test_invalid_utf8_in_a_column_the_fast_path_does_not_convert(tmp_path: Path) -> None:
    """The reader converts only the dialect's columns there: the segment's bytes are still checked."""
    root = tmp_path / "ev"
    head = IIS_HEAD.replace("sc-status", "cs(Referer) sc-status")
    rows = [r.rsplit(" ", 1)[0] + " https://x/\xff" + " 200" for r in IIS_ROWS]
    rel = write(root, "W3SVC1/u_ex1.log", head.encode() + "\n".join(rows).encode("latin-1") + b"\n")
    assert_same(tmp_path, root, [rel])
