"""The one serializer of the assessment document: ``findings.json`` bytes, saved atomically, loaded.

``exhunt scan``, ``exhunt probe --out`` and ``exhunt report --format json`` all write these bytes
(sorted keys, two-space indent, one trailing newline), so a re-rendered document is byte-identical.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from exhunt.errors import EvidenceError
from exhunt.findings.model import AssessmentDocument, document_from_dict, shallow_dict

OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS


def document_bytes(document: AssessmentDocument) -> bytes:
    """The same bytes as ``to_dict`` dumped with sorted keys; dataclasses reach orjson one level at a
    time through ``shallow_dict`` (orjson does not sort a dataclass's own fields)."""
    return orjson.dumps(document, default=shallow_dict, option=OPTIONS) + b"\n"


def save_document(case: Path, document: AssessmentDocument) -> Path:
    path = case / "findings.json"
    tmp = case / "findings.json.tmp"
    tmp.write_bytes(document_bytes(document))
    os.replace(tmp, path)  # atomic: a case never holds half a document
    return path


def load_document(case: Path) -> AssessmentDocument:
    path = case / "findings.json" if case.is_dir() else case
    try:
        return document_from_dict(orjson.loads(path.read_bytes()))
    except (OSError, orjson.JSONDecodeError) as exc:
        raise EvidenceError(f"cannot read case document {path}: {exc}") from exc
    except (TypeError, KeyError, ValueError, AttributeError) as exc:  # JSON, but not a findings document
        raise EvidenceError(f"{path} is not an exhunt findings document ({type(exc).__name__}: {exc})") from exc
