"""The fork server loads the scan's compiled YARA rules once, from the rule cache only; workers
build their scanners from that copy when their configuration ships the same rules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from exhunt.detections.filehunt import scan_rules
from exhunt.detections.yara import FileScanner
from exhunt.parallel import serverrules

RULE = b'rule planted_marker { strings: $a = "planted-marker-7731" condition: $a }\n'


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("EXHUNT_CACHE", str(folder))
    monkeypatch.setattr(serverrules, "PRELOADED", [])
    return folder


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    path = tmp_path / "pack" / "marker.yar"
    path.parent.mkdir()
    path.write_bytes(RULE)
    return path.parent


def test_the_scans_rules_and_exhunts_own_pack_are_loaded_from_the_cache(cache: Path, pack: Path) -> None:
    blob = scan_rules([pack]).blob  # the scan process compiled them: now cached
    own = scan_rules([]).blob
    serverrules._load(serverrules.request([pack], []))
    assert serverrules.rules_for(blob) is not None
    assert serverrules.rules_for(own) is not None
    assert serverrules.rules_for(blob + b"x") is None


def test_with_ioc_lists_only_exhunts_own_pack_is_loaded(cache: Path, pack: Path, tmp_path: Path) -> None:
    """Reading every IOC list for the key would cost the server more than it saves: the workers load
    the scan's rules themselves; exhunt's own pack (page views) is still loaded."""
    iocs = tmp_path / "chirp.yaml"
    iocs.write_text("---\nname: rule\nioc_type: yara\nindicator:\n  files: x\n  rule: |\n"
                    '    rule chirp_marker { strings: $a = "chirp-marker-9" condition: $a }\n')
    blob, own = scan_rules([pack], [iocs]).blob, scan_rules([]).blob
    serverrules._load(serverrules.request([pack], [iocs]))
    assert serverrules.rules_for(blob) is None and serverrules.rules_for(own) is not None


def test_nothing_is_compiled_on_a_cache_miss(cache: Path, pack: Path) -> None:
    serverrules._load(serverrules.request([pack], []))
    assert serverrules.PRELOADED == []
    assert not any(cache.rglob("*.yarc"))


def test_a_pack_that_cannot_be_read_leaves_the_workers_to_load_their_own(
        cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scan_rules([]).blob  # noqa: B018 - cached, so a failure below is not a miss
    monkeypatch.setenv(serverrules.ENV, serverrules.request([tmp_path / "gone"], []))
    serverrules._load_requested()  # no exception: the server must start
    assert serverrules.PRELOADED == []


def test_a_worker_builds_its_scanner_from_the_loaded_rules(
        cache: Path, pack: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yara_x

    blob = scan_rules([pack]).blob
    serverrules._load(serverrules.request([pack], []))

    def refuse(*_: object) -> None:
        raise AssertionError("deserialised again")

    monkeypatch.setattr(yara_x.Rules, "deserialize_from", refuse)
    scanner = FileScanner(blob)
    rows = scanner.scan(b"x planted-marker-7731 x", "inetpub/wwwroot/a.aspx", "h", "0" * 64)
    assert [r["rule"] for r in rows] == ["planted_marker"]
    with pytest.raises(AssertionError, match="deserialised again"):  # other rules: loaded as before
        FileScanner(blob + b"\0").preload()


def held(path: str) -> tuple[bool, int]:
    """Worker side: whether the server loaded these rules, and how many packs it holds."""
    return serverrules.rules_for(Path(path).read_bytes()) is not None, len(serverrules.PRELOADED)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fork server is used on Linux only")
def test_workers_forked_from_the_server_hold_the_scans_rules(cache: Path, pack: Path) -> None:
    """In a fresh process (this one's server may hold another test's request): prestart names the
    pack, a worker forked from the server finds the scan's compiled rules already loaded."""
    blob_file = cache.parent / "blob.bin"
    blob_file.write_bytes(scan_rules([pack]).blob)
    scan_rules([])  # exhunt's own pack cached too: the server loads both
    script = f"""
import json
from pathlib import Path
from concurrent.futures import ProcessPoolExecutor
from exhunt.parallel import startmethod
from tests.parallel.test_serverrules import held

if __name__ == "__main__":
    startmethod.prestart(2, None, [Path({str(pack)!r})], [])
    with ProcessPoolExecutor(1, mp_context=startmethod.worker_context()) as pool:
        print(json.dumps(pool.submit(held, {str(blob_file)!r}).result()))
    startmethod.stop()
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [True, 2]
