"""yara-x compilation (cache, skipped rules, externals) and scanning in the worker pass."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import orjson
import pytest

from exhunt.detections.yara import FileScanner, escape_excerpt, externals_for, load_rules
from exhunt.worker import init_scanner
from tests.conftest import shared_path
from tests.helpers import parse_bytes, zip_bytes

SHELL = b'<%@ Page Language="Jscript"%><%eval(Request.Item["z"],"unsafe");%>'


def test_bad_rules_are_skipped_with_reasons(tmp_path: Path) -> None:
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "mixed.yar").write_text(
        'rule good { strings: $a = "x1y2" condition: $a }\nrule bad { condition: no_such_identifier }\n'
    )
    (pack / "broken.yara").write_text("rule unterminated { condition: \n")
    compiled = load_rules([pack], builtin=False, cache=tmp_path / "cache")
    report = compiled.report
    skipped = {(Path(s["origin"]).name, s["rule"]) for s in report["skipped"]}
    assert ("mixed.yar", "bad") in skipped and ("broken.yara", "*") in skipped
    assert report["loaded"] == 1 and report["skipped_count"] == 2
    assert all(s["reason"] for s in report["skipped"])
    assert [r.identifier for r in compiled.rules().scan(b"..x1y2..").matching_rules] == ["good"]


def test_compiled_rules_are_cached_by_content(tmp_path: Path) -> None:
    rule = tmp_path / "r.yar"
    rule.write_text('rule one { strings: $a = "abc" condition: $a }\n')
    first = load_rules([rule], cache=tmp_path / "c")
    second = load_rules([rule], cache=tmp_path / "c")
    assert (first.report["cache"], second.report["cache"]) == ("stored", "hit")
    assert len(list((tmp_path / "c").glob("*.yarc"))) == 1
    rule.write_text('rule one { strings: $a = "abd" condition: $a }\n')
    assert load_rules([rule], cache=tmp_path / "c").report["cache"] == "stored"


def test_missing_rule_path_is_a_usage_error(tmp_path: Path) -> None:
    from exhunt.errors import UsageError

    with pytest.raises(UsageError):
        load_rules([tmp_path / "nope"], cache=tmp_path / "c")


def test_externals_follow_thor_conventions() -> None:
    ext = externals_for("inetpub/wwwroot/aspnet_client/Shell.ASPX", b"MZ\x90\x00")
    assert ext == {
        "filename": "Shell.ASPX",
        "filepath": "inetpub\\wwwroot\\aspnet_client",
        "extension": ".aspx",
        "filetype": "EXE",
        "owner": "",
    }


def test_rules_using_externals_see_the_file(tmp_path: Path) -> None:
    rule = tmp_path / "ext.yar"
    rule.write_text(
        'rule by_name { condition: extension == ".aspx" and filepath contains "aspnet_client" }\n'
    )
    scanner = FileScanner(load_rules([rule], builtin=False, cache=tmp_path / "c").blob)
    assert [r["rule"] for r in scanner.scan(b"x", "inetpub/wwwroot/aspnet_client/a.aspx", "h", "0")] == [
        "by_name"
    ]
    assert scanner.scan(b"x", "inetpub/wwwroot/a.txt", "h", "0") == []
    # a scanner keeps its externals between files and is told only what changed: back and forth
    assert [r["rule"] for r in scanner.scan(b"x", "inetpub/wwwroot/aspnet_client/b.aspx", "h", "0")] == ["by_name"]
    assert scanner.scan(b"x", "inetpub/wwwroot/aspnet_client/b.txt", "h", "0") == []
    assert scanner.scan(b"x", "inetpub/wwwroot/b.aspx", "h", "0") == []


def test_excerpts_are_escaped() -> None:
    assert escape_excerpt(b'ev\x00al\\"\xff') == 'ev\\x00al\\\\"\\xff'


@pytest.fixture
def scanner_on(tmp_path: Path):  # type: ignore[no-untyped-def]
    def start(max_size: int = 100 << 20) -> None:
        init_scanner(load_rules(cache=tmp_path / "cache").blob, max_size)

    yield start
    init_scanner(None, 0)


def test_worker_writes_matches_with_strings_and_hash(tmp_path: Path, scanner_on) -> None:  # type: ignore[no-untyped-def]
    scanner_on()
    con = parse_bytes(tmp_path, "inetpub/wwwroot/aspnet_client/x.aspx", SHELL)
    rows = con.execute(
        "SELECT m.rule, m.namespace, m.strings, m.sha256 = f.sha256, m.meta FROM matches m "
        "JOIN files f USING (host, path)"
    ).fetchall()
    by_rule = {r[0]: r for r in rows}
    rule, namespace, strings, same_hash, meta = by_rule["exhunt_webshell_eval_request"]
    assert namespace == "exhunt.webshells" and same_hash
    first = orjson.loads(strings)[0]
    assert first["offset"] == SHELL.index(b"eval(") and first["excerpt"].startswith("eval(Request")
    assert orjson.loads(meta)["severity"] == "critical"


def test_files_over_the_limit_are_hashed_not_scanned(tmp_path: Path, scanner_on) -> None:  # type: ignore[no-untyped-def]
    scanner_on(max_size=10)
    con = parse_bytes(tmp_path, "a/x.aspx", SHELL)
    assert con.execute("SELECT count(*) FROM matches").fetchone() == (0,)
    assert con.execute("SELECT sha256 IS NOT NULL FROM files").fetchone() == (True,)
    (message,) = con.execute("SELECT message FROM warnings WHERE artifact = 'yara'").fetchone()
    assert "not YARA-scanned" in message


def _tar(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _7z(members: dict[str, bytes]) -> bytes:
    py7zr = pytest.importorskip("py7zr")
    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(data, name)
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["zip", "tgz", "nested", "7z"])
def test_archive_members_are_scanned_in_memory(tmp_path: Path, scanner_on, kind: str) -> None:  # type: ignore[no-untyped-def]
    scanner_on()
    inner = {"stage/help.aspx": SHELL, "readme.txt": b"nothing"}
    data = {
        "zip": lambda: zip_bytes(inner),
        "tgz": lambda: _tar(inner),
        "nested": lambda: zip_bytes({"outer/in.zip": zip_bytes(inner)}),
        "7z": lambda: _7z(inner),
    }[kind]()
    con = parse_bytes(tmp_path, "ProgramData/p.bin", data)
    paths = [r[0] for r in con.execute("SELECT DISTINCT path FROM matches").fetchall()]
    assert any(p.startswith("ProgramData/p.bin!") and p.endswith("stage/help.aspx") for p in paths)
    members = con.execute("SELECT count(*) FROM files WHERE artifact = 'archive_member'").fetchone()[0]
    assert members >= 2
    assert not any(p.name.endswith(".aspx") for p in (tmp_path / "evidence").rglob("*"))  # nothing extracted


def test_plain_gzip_is_one_member(tmp_path: Path, scanner_on) -> None:  # type: ignore[no-untyped-def]
    import gzip

    scanner_on()
    con = parse_bytes(tmp_path, "logs/x.aspx.gz.old", gzip.compress(SHELL))  # by magic: no archive suffix
    # named as the evidence layer names a compressed file's content: the file's name without its last suffix
    assert con.execute("SELECT DISTINCT path FROM matches").fetchall() == [("logs/x.aspx.gz.old!x.aspx.gz",)]
    assert con.execute("SELECT count(*) FROM warnings WHERE artifact = 'yara'").fetchone() == (0,)


def test_corrupt_archive_is_a_warning(tmp_path: Path, scanner_on) -> None:  # type: ignore[no-untyped-def]
    scanner_on()
    data = zip_bytes({"a.aspx": SHELL})[:40]
    con = parse_bytes(tmp_path, "x.dat", data)  # archives with an archive suffix are listed by the evidence layer
    assert con.execute("SELECT count(*) FROM warnings WHERE artifact = 'yara'").fetchone()[0] == 1


@pytest.mark.slow
def test_whole_signature_base_pack_loads(tmp_path: Path) -> None:
    folder = shared_path("rules", "signature-base", "yara")
    report = load_rules([folder], builtin=False, cache=tmp_path / "c").report
    print(
        f"signature-base: declared {report['declared']}, loaded {report['loaded']}, "
        f"skipped {report['skipped_count']}: {report['skipped']}"
    )
    assert report["declared"] > 700
    assert report["loaded"] + report["skipped_count"] == report["declared"]
    assert report["loaded"] >= report["declared"] - 20


def test_zip_bomb_member_is_skipped_with_a_warning(tmp_path: Path, scanner_on) -> None:  # type: ignore[no-untyped-def]
    scanner_on()
    con = parse_bytes(tmp_path, "x.dat", zip_bytes({"zeros.bin": bytes(24 << 20), "s.aspx": SHELL}))
    messages = [m for (m,) in con.execute("SELECT message FROM warnings WHERE artifact = 'yara'").fetchall()]
    assert any("zeros.bin" in m and "possible archive bomb, skipped" in m for m in messages)
    assert con.execute("SELECT count(*) FROM matches WHERE path = 'x.dat!s.aspx'").fetchone()[0] >= 1


def test_rules_load_at_the_first_file_scanned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that only parses event and text logs never pays for loading the rules."""
    import yara_x

    rule = tmp_path / "r.yar"
    rule.write_text('rule hit { strings: $a = "evil" condition: $a }\n')
    blob = load_rules([rule], builtin=False, cache=tmp_path / "c").blob
    loads: list[int] = []
    real = yara_x.Rules.deserialize_from
    monkeypatch.setattr(yara_x.Rules, "deserialize_from", lambda f: loads.append(1) or real(f))
    scanner = FileScanner(blob)
    assert scanner.wants(10) and scanner.skips("iis") and loads == []
    assert [r["rule"] for r in scanner.scan(b"so evil", "a.aspx", "h", "0")] == ["hit"]
    assert scanner.scan(b"fine", "b.aspx", "h", "0") == [] and loads == [1]


def test_empty_module_outputs_decode_as_json_would(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scan's fast path for modules with nothing to say (yara._scan_results) gives the results and
    module outputs the binding gives with the standard ``json.loads``, is taken for the binding's
    empty output (a yara-x that wrote it otherwise would lose the speed-up: this fails), answers any
    other call as ``json.loads`` does, and leaves ``json.loads`` as it found it."""
    import json
    from collections import OrderedDict

    import yara_x

    from exhunt.detections import yara

    rule = tmp_path / "m.yar"
    rule.write_text('import "math"\nimport "pe"\n'
                    'rule ent { condition: math.entropy(0, filesize) >= 0 and not pe.is_pe }\n'
                    'rule shell { strings: $a = "eval(Request" condition: $a }\n')
    scanner = yara_x.Scanner(load_rules([rule], builtin=False, cache=tmp_path / "c").rules())
    standard = json.loads
    for data in (SHELL, b"", b"MZ" + bytes(200), "\u00e9t\u00e9".encode()):
        plain = scanner.scan(data)
        fast = yara._scan_results(scanner, data)
        assert json.loads is standard
        assert [r.identifier for r in fast.matching_rules] == [r.identifier for r in plain.matching_rules]
        assert fast.module_outputs == plain.module_outputs

    passed_on: list[object] = []

    def spy(text, *args, **kwargs):  # type: ignore[no-untyped-def]
        passed_on.append(text)
        return standard(text, *args, **kwargs)

    monkeypatch.setattr(json, "loads", spy)
    monkeypatch.setattr(yara, "_JSON_LOADS", spy)
    assert [r.identifier for r in yara._scan_results(scanner, SHELL).matching_rules] == ["ent", "shell"]
    # pe's output passed on; math's (an empty object) answered without the standard decoder
    assert passed_on and not [text for text in passed_on if standard(text) == {}]
    assert json.loads is spy
    monkeypatch.undo()

    empty = yara.EMPTY_MODULE_OUTPUT
    assert yara._loads_module_output(empty) == {}
    assert yara._loads_module_output(empty, object_hook=lambda d: ("hooked", d)) == ("hooked", {})
    assert type(yara._loads_module_output(empty, object_pairs_hook=OrderedDict)) is OrderedDict
    assert yara._loads_module_output(bytearray(empty)) == {}  # passed on, same answer
    with pytest.raises(TypeError):
        yara._loads_module_output(memoryview(empty))
    assert yara._loads_module_output(b'{"a": [1]}', strict=False) == {"a": [1]}

    def other(text, **kwargs):  # type: ignore[no-untyped-def]
        return standard(text, **kwargs)

    json.loads = other
    try:
        assert [r.identifier for r in yara._scan_results(scanner, SHELL).matching_rules] == ["ent", "shell"]
        assert json.loads is other
    finally:
        json.loads = standard
