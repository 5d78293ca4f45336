"""The batch query computes repeated expressions once per row; rule values are never rewritten."""

from __future__ import annotations

import duckdb

from exhunt.detections.sigma.engine import shared_expressions
from exhunt.detections.sigma.fields import json_field


def test_rewrites_outside_literals_only() -> None:
    value = """'lower("image") json_extract_string("fields", ''$."A"'')'"""
    predicate = (
        f'lower("image") = {value} AND {json_field("A")} = \'b\' AND lower("zzz") = \'c\' '
        f"AND lower({json_field('C')}) = 'd' AND {json_field('A')} IS NOT NULL"
    )
    (rewritten,), paths, lowered = shared_expressions([predicate])
    assert rewritten == (
        f'"sigma_l_image" = {value} AND sigma_j[1] = \'b\' AND lower("zzz") = \'c\' '
        "AND lower(sigma_j[2]) = 'd' AND sigma_j[1] IS NOT NULL"
    )
    assert paths == ["""'$."A"'""", """'$."C"'"""]
    assert lowered == ["image"]


def test_multi_path_extraction_equals_single_reads() -> None:
    names = ["Image", "it's", 'quo"te', "missing", "Data"]
    doc = """{"Image": "C:\\\\x.exe", "it's": 1, "quo\\"te": null, "Data": ["a", "b"]}"""
    con = duckdb.connect()
    singles = con.execute(
        "SELECT " + ", ".join(json_field(n) for n in names) + " FROM (SELECT ? AS fields)", [doc]
    ).fetchone()
    _, paths, _ = shared_expressions([json_field(n) for n in names])
    multi = con.execute(
        f"SELECT json_extract_string(fields, [{', '.join(paths)}]) FROM (SELECT ? AS fields)", [doc]
    ).fetchone()[0]
    assert tuple(multi) == singles
    assert singles[0] == "C:\\x.exe"


def test_repeated_virtual_fields_are_computed_once() -> None:
    from exhunt.detections.sigma.engine import batch_sql, shared_virtuals
    from exhunt.detections.sigma.fields import VIRTUAL
    from exhunt.sqltext import literal

    uri, keywords, level = VIRTUAL["x_uri_full"], VIRTUAL["x_keywords"], VIRTUAL["x_level"]
    quoted = literal(f"lower({uri})")  # a rule value that spells the expression: never rewritten
    predicates = [f"contains(lower({uri}), 'a') AND {uri} = {quoted}", f"ends_with(lower({uri}), 'b')",
                  f"contains(lower({keywords}), 'c')", f"{level} = 'Error'"]
    rewritten, hoisted = shared_virtuals(predicates)
    assert rewritten == [f"contains(\"sigma_lv_x_uri_full\", 'a') AND \"sigma_v_x_uri_full\" = {quoted}",
                         "ends_with(\"sigma_lv_x_uri_full\", 'b')", predicates[2], predicates[3]]
    assert hoisted == {"x_uri_full": True}  # keywords and level appear once: left in place

    class Query:  # what batch_sql reads of a compiled rule
        def __init__(self, predicate: str) -> None:
            self.predicate = predicate

    con = duckdb.connect()
    con.execute("CREATE TABLE sigma_events AS SELECT * FROM (VALUES ('h', 'iis', 'p', 1, 1, NULL::TIMESTAMPTZ, "
                "'GET', '/A', 'x=b', NULL, 200, 'ua', 'msg', '{}', NULL, NULL, NULL, NULL, NULL, NULL, "
                "NULL, NULL, NULL)) t(host, source, path, line, record_id, ts, method, uri, uri_query, "
                "uri_decoded, status, user_agent, message, fields, command_line, parent_image, cmdlet, "
                "parameters, target_filename, client_ip, \"user\", image, \"kind\")")
    rows = con.execute(batch_sql("true", [Query(p) for p in predicates])).fetchall()  # type: ignore[list-item]
    assert [r[-1] for r in rows] == [[1]]  # '/A?x=b' ends with 'b'; rule 0 also wants its literal
