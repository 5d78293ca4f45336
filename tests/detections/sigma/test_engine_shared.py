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
