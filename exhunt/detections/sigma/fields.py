"""How a Sigma field name (after the pipelines' mapping) becomes a DuckDB expression.

The pipelines map Sigma names onto the normalized ``events`` columns or onto the *virtual* fields
below; any other name is read from the raw ``fields`` JSON by its own name, so a Sysmon or Security
rule keeps working for every EventData field without a mapping line. Every expression here yields
VARCHAR (numeric columns are cast), so string operators never hit an implicit-cast error; numeric
equality goes to the typed column instead (``NUMERIC``).
"""

from __future__ import annotations

import re

import pyarrow as pa

from exhunt.events.schema import EVENTS
from exhunt.events.store import NAMES_SQL, VALUES_SQL
from exhunt.sqltext import json_key_path, literal

TABLE = "sigma_events"  # the engine's rows (``ROWS``) with ``fields`` as the store's view gives it
ROWS = "sigma_rows"  # the engine's in-memory copy of the rows some rule's logsource selects, as stored
SOURCE_TABLE = "events"
STORED_TABLE = "events_stored"  # the same rows with ``fields`` as stored (null where derived)

# Normalized columns of ``events`` that may be referenced as they are, derived from the store's
# schema so a new column (backend_cookie was once missing here) is usable by rules at once.
COLUMNS = frozenset(f.name for f in EVENTS if pa.types.is_string(f.type))

# Typed numeric columns: equality with a number compares the column itself (fast, exact).
NUMERIC = frozenset(f.name for f in EVENTS if pa.types.is_integer(f.type))


def json_field(name: str, dash_is_null: bool = False) -> str:
    """A raw field by its own name. In W3C logs '-' means empty (as in the normalized columns); in
    Windows events it is a real value that rules match on, so only web fields treat it as null."""
    raw = f'json_extract_string("fields", {json_key_path(name)})'
    return f"nullif({raw}, '-')" if dash_is_null else raw


_DATA_LIST = """json_extract_string("fields", '$.Data[*]')"""

# Fields that are expressions over the row. Names start with ``x_`` so that a raw field of the same
# name can never shadow them.
VIRTUAL: dict[str, str] = {
    # The requested resource as logged: stem plus '?query' (SigmaHQ's cs-uri-query means that).
    # (HttpProxy's UrlQuery keeps its own leading '?'; IIS's cs-uri-query has none)
    "x_uri_full": """(CASE WHEN "uri_query" IS NULL OR "uri_query" = '' THEN "uri" """
    """WHEN starts_with("uri_query", '?') THEN coalesce("uri", '') || "uri_query" """
    """ELSE coalesce("uri", '') || '?' || "uri_query" END)""",
    # the user agent as logged ('+' for spaces in IIS); rows without that raw field (HttpProxy) fall
    # back to the normalized one, so "cs-user-agent: null" means no user agent on every source
    "x_user_agent_raw": f"""coalesce({json_field("cs(User-Agent)", dash_is_null=True)}, "user_agent")""",
    "x_referer": json_field("cs(Referer)", dash_is_null=True),
    "x_cookie": json_field("cs(Cookie)", dash_is_null=True),
    "x_host_header": json_field("cs-host", dash_is_null=True),
    # Unnamed <Data> values (MSExchange Management events) joined by newlines.
    "x_data": f"""nullif(array_to_string({_DATA_LIST}, chr(10)), '')""",
    # Keyword search text: the message, every raw value, and every unnamed <Data> value.
    "x_keywords": (
        """concat_ws(chr(10), "message", array_to_string(json_extract_string("fields", '$.*'), chr(10)), """
        f"""array_to_string({_DATA_LIST}, chr(10)))"""
    ),
    # Windows event level by name (Sigma rules write 'Error', the record holds 2).
    "x_level": """(CASE json_extract_string("fields", '$.Level') """
    """WHEN '1' THEN 'Critical' WHEN '2' THEN 'Error' """
    """WHEN '3' THEN 'Warning' WHEN '4' THEN 'Information' WHEN '5' THEN 'Verbose' """
    """ELSE json_extract_string("fields", '$.Level') END)""",
}

KEYWORDS = "x_keywords"

def expression(name: str) -> str:
    """VARCHAR expression for a (mapped) field name."""
    if name in COLUMNS:
        return f'"{name}"'
    if name in NUMERIC:
        return f'CAST("{name}" AS VARCHAR)'
    if name in VIRTUAL:
        return VIRTUAL[name]
    if name == "ts":
        return "strftime(\"ts\", '%Y-%m-%dT%H:%M:%S.%fZ')"
    return json_field(name)


STORED = "sigma_fields"  # the engine's rows' ``fields`` as stored (null where the view derives it)


def raw_values(paths: list[str]) -> str:
    """``json_extract_string("fields", [paths])`` for rows whose ``fields`` the store derives from the
    line: each key's value by its position in the header (deriving the whole JSON of each row cost
    ~8 us a row; splitting the line and the header ~3), the stored JSON read elsewhere. A key the
    header lacks takes position 0, which ``list_select`` gives as null (a null position is an error)."""
    keys = ", ".join(literal(_key(path)) for path in paths)
    return (f"""CASE WHEN "{STORED}" IS NULL AND "raw" IS NOT NULL THEN list_select({VALUES_SQL}, """
            f"""list_transform([{keys}], lambda k: coalesce(list_position({NAMES_SQL}, k), 0))) """
            f"""ELSE json_extract_string("{STORED}", [{", ".join(paths)}]) END""")


def _key(path: str) -> str:
    """The key of a ``json_key_path`` literal (its inverse)."""
    inner = path[len("'$.\""):-len("\"'")].replace("''", "'")
    return re.sub(r"\\(.)", r"\1", inner)


def numeric_column(name: str) -> str | None:
    """The typed column for numeric equality, when the field is one."""
    return f'"{name}"' if name in NUMERIC else None


# Short text cited as evidence: the request line for web rows, else the most telling column.
EXCERPT = (
    """coalesce(CASE WHEN "method" IS NOT NULL OR "uri" IS NOT NULL THEN concat_ws(' ', "method", """
    + VIRTUAL["x_uri_full"]
    + """, CAST("status" AS VARCHAR), "user_agent") END, """
    """CASE WHEN "command_line" IS NOT NULL THEN concat_ws(' <- ', "command_line", "parent_image") END, """
    """CASE WHEN "cmdlet" IS NOT NULL THEN concat_ws(' ', "cmdlet", "parameters") END, """
    """"target_filename", "message", "fields")"""
)
