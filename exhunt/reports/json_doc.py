"""The canonical findings document as JSON: sorted keys, two-space indent, one trailing newline.

Byte-identical to ``findings.json`` written by ``exhunt scan`` (tested: load -> render -> same
bytes), and valid against the versioned schema ``data/schema/findings.schema.json``.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, BinaryIO

from exhunt.findings.document import document_bytes
from exhunt.reports.case import Case

SCHEMA_FILE = ("data", "schema", "findings.schema.json")


def render(case: Case, out: BinaryIO) -> None:
    out.write(document_bytes(case.document))


def schema() -> dict[str, Any]:
    """The JSON Schema of the findings document shipped in the package."""
    text = resources.files("exhunt").joinpath(*SCHEMA_FILE).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded
