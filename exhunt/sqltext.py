"""SQL text built from evidence values: every literal and identifier goes through here.

Evidence is attacker-controlled (a log line can hold ``'); COPY ...``), and the checks, the Sigma
backend, the fast W3C path and the store views all build SQL from it. One quoting rule, tested once,
instead of four copies that could drift.
"""

from __future__ import annotations


def literal(value: str | None) -> str:
    """A SQL string literal (``'it''s'``); ``None`` -> ``NULL``. Quotes are doubled, nothing else
    changes: DuckDB string literals have no backslash escapes."""
    if value is None:
        return "NULL"
    return "'" + value.replace("'", "''") + "'"


def identifier(name: str) -> str:
    """A quoted SQL identifier (``"user"``, ``"a""b"``): safe for any column name from a log header."""
    return '"' + name.replace('"', '""') + '"'


def json_key_path(name: str) -> str:
    """A JSONPath literal selecting one top-level key by its exact name (``'$."cs-uri-stem"'``):
    raw field names come from log headers and may hold quotes, dots or backslashes (escaped first, or
    a trailing one would escape the closing quote)."""
    return literal('$."' + name.replace("\\", "\\\\").replace('"', '\\"') + '"')
