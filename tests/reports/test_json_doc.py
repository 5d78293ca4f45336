from __future__ import annotations

import io
from dataclasses import asdict, fields
from pathlib import Path

import jsonschema
import orjson
import pytest

from exhunt.findings import model
from exhunt.findings.document import document_bytes, load_document
from exhunt.reports import json_doc
from exhunt.reports.case import Case


def test_findings_json_is_valid_against_the_packaged_schema(case_dir: Path) -> None:
    schema = json_doc.schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(orjson.loads((case_dir / "findings.json").read_bytes()), schema)


def test_schema_rejects_a_document_with_a_wrong_severity(case_dir: Path) -> None:
    data = orjson.loads((case_dir / "findings.json").read_bytes())
    data["findings"][0]["severity"] = "apocalyptic"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, json_doc.schema())


def test_load_render_gives_the_same_bytes(case_dir: Path) -> None:
    original = (case_dir / "findings.json").read_bytes()
    out = io.BytesIO()
    json_doc.render(Case(load_document(case_dir)), out)
    assert out.getvalue() == original == document_bytes(load_document(case_dir))


def test_document_bytes_equal_the_asdict_form(case_dir: Path) -> None:
    """The shallow dataclass hook writes what ``dataclasses.asdict`` + sorted keys wrote."""
    doc = load_document(case_dir)
    option = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
    assert doc.findings and doc.hosts
    assert doc.to_dict() == asdict(doc)
    assert document_bytes(doc) == orjson.dumps(asdict(doc), option=option) + b"\n"


@pytest.mark.parametrize(("definition", "cls"), [
    ("finding", model.Finding), ("evidence", model.EvidenceRef), ("host", model.HostAssessment),
    ("build", model.HostBuild), ("cve_status", model.CveStatus), ("coverage", model.Coverage),
    ("impact", model.MailboxImpact),
])
def test_schema_follows_the_model(definition: str, cls: type) -> None:
    """A field added to the model without a schema change (and version bump) fails here."""
    schema = json_doc.schema()
    assert schema["properties"]["schema_version"]["const"] == model.DOCUMENT_SCHEMA_VERSION
    assert set(schema["$defs"][definition]["properties"]) == {f.name for f in fields(cls)}
    assert set(schema["required"]) == {f.name for f in fields(model.AssessmentDocument)}
