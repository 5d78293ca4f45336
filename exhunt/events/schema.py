"""Versioned Arrow schemas of the case store tables.

Two tiers: every artifact keeps its source-faithful record as JSON in ``fields``; the named
columns are the normalized view that checks and Sigma mappings target. IIS and HttpProxy rows also
keep their line as logged in ``raw``; where the fast path could prove the JSON is that line split
by its ``#Fields`` header (``raw_header``), the parts store no JSON and the store's view derives
``fields`` from the two (``events.store.FIELDS_SQL``): the JSON of every column per row was
most of the bytes built and written by a full index.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1

TS = pa.timestamp("us", tz="UTC")

EVENTS = pa.schema(
    [
        ("host", pa.string()),
        ("source", pa.string()),  # artifact name: iis, httpproxy, ecp_server, oab_generator, evtx ...
        ("log_type", pa.string()),  # the file's own #Log-type / #Software, or the EVTX channel
        ("path", pa.string()),  # relative to the evidence root
        ("line", pa.int64()),  # 1-based line in a text log
        ("record_id", pa.int64()),  # EVTX record id / export record number
        ("ts", TS),
        ("kind", pa.string()),  # http | cmdlet | event | process | file | log
        ("client_ip", pa.string()),
        ("server_ip", pa.string()),
        ("user", pa.string()),
        ("method", pa.string()),
        ("uri", pa.string()),  # raw path as logged
        ("uri_query", pa.string()),  # raw query as logged
        ("uri_decoded", pa.string()),  # path?query percent-decoded, '+' a space in the query only (w3c_log.decoded_url)
        ("status", pa.int32()),
        ("user_agent", pa.string()),  # decoded ('+' -> ' ')
        ("protocol", pa.string()),  # HttpProxy protocol folder (Ecp, Owa, ...)
        ("anchor_mailbox", pa.string()),
        ("backend_cookie", pa.string()),  # HttpProxy BackEndCookie (ProxyLogon's second SSRF carrier)
        ("target_server", pa.string()),
        ("channel", pa.string()),
        ("provider", pa.string()),
        ("event_id", pa.int32()),
        ("computer", pa.string()),
        ("image", pa.string()),
        ("command_line", pa.string()),
        ("parent_image", pa.string()),
        ("parent_command_line", pa.string()),
        ("target_filename", pa.string()),
        ("cmdlet", pa.string()),
        ("parameters", pa.string()),
        ("message", pa.string()),
        ("fields", pa.string()),  # JSON object of every raw field, names as in the source
        ("raw", pa.string()),  # IIS and HttpProxy: the line as logged (without its line end)
        # the #Fields header in force for ``raw``: its separator, then the names joined by it
        ("raw_header", pa.dictionary(pa.int32(), pa.string())),
    ]
)

FILES = pa.schema(
    [
        ("host", pa.string()),
        ("path", pa.string()),  # relative to the evidence root, '/' separated
        ("size", pa.int64()),
        ("mtime", TS),
        ("ctime", TS),
        ("atime", TS),
        ("sha256", pa.string()),
        ("sha1", pa.string()),
        ("md5", pa.string()),
        ("magic", pa.string()),  # hex of the first 16 bytes
        ("artifact", pa.string()),  # artifact that parsed it, or null
        ("evidence", pa.string()),  # the evidence root it came from
    ]
)

HOST_FACTS = pa.schema(
    [
        ("host", pa.string()),
        ("fact", pa.string()),  # e.g. "build"
        ("value", pa.string()),
        ("source", pa.string()),  # artifact that saw it
        ("path", pa.string()),
        ("line", pa.int64()),
        ("confidence", pa.string()),  # high | medium | low
    ]
)

WARNINGS = pa.schema(
    [
        ("host", pa.string()),
        ("artifact", pa.string()),
        ("path", pa.string()),
        ("line", pa.int64()),
        ("offset", pa.int64()),
        ("message", pa.string()),
    ]
)

MATCHES = pa.schema(
    [
        ("host", pa.string()),
        ("path", pa.string()),  # evidence path; archive members as "<archive>!<member>"
        ("engine", pa.string()),  # yara
        ("rule", pa.string()),
        ("namespace", pa.string()),
        ("tags", pa.string()),  # comma separated
        ("meta", pa.string()),  # JSON object of the rule's metadata
        ("strings", pa.string()),  # JSON list of {identifier, offset, length, excerpt (escaped)}
        ("sha256", pa.string()),
    ]
)

TABLES: dict[str, pa.Schema] = {
    "events": EVENTS,
    # --index full: the IIS and HttpProxy rows of ``events`` that triage would store (its prefilter's
    # lines), again; the detections read these and the other logs' rows instead of every web row
    "selected_events": EVENTS,
    "files": FILES,
    "host_facts": HOST_FACTS,
    "warnings": WARNINGS,
    "matches": MATCHES,
}
