"""Evidence the scan did not (fully) read never ends in 'clean': data-driven cases over the demo.

Each case starts from the benign demo collection (clean on its own) and adds evidence as collections
present it damaged, disguised or cut: the attack's logs without their header, behind a name without
an archive extension, compressed under a log's name, encrypted, truncated, NUL-filled, inside an
image. Read, the attack is found; not read, the host is inconclusive and the coverage names the file.
"""

from __future__ import annotations

import gzip
import io
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from exhunt.api import ScanOptions, scan
from exhunt.demo import DemoSpec, generate
from exhunt.findings.coverage import loss_condition
from exhunt.findings.model import HostAssessment
from exhunt.reports.actions import host_actions, inconclusive_reasons
from tests.conftest import shared_path

HTTPPROXY = "C/Program Files/Microsoft/Exchange Server/V15/Logging/HttpProxy/Ecp/HttpProxy_2021030300-1.LOG"
IIS = "C/inetpub/logs/LogFiles/W3SVC1/u_ex210303.log"
ATTACKER = b"203.0.113.77"
SYSMON = "C/Windows/System32/winevt/Logs/Microsoft-Windows-Sysmon%4Operational.evtx"


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(benign, attacked) demo collections, generated once."""
    base = tmp_path_factory.mktemp("demos")
    generate(base / "benign", DemoSpec(per_day=60, attack=False, seed=3))
    generate(base / "attacked", DemoSpec(per_day=60, attack=True, seed=3))
    return base / "benign", base / "attacked"


def _zip_of(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                z.write(path, path.relative_to(folder.parent).as_posix())
    return buffer.getvalue()


def _encrypted(data: bytes) -> bytes:
    """Every member flagged as encrypted (the general-purpose flag's bit 0), as a password-protected zip reads."""
    raw = bytearray(data)
    for magic, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = raw.find(magic)
        while at >= 0:
            raw[at + flags_at] |= 1
            at = raw.find(magic, at + 4)
    return bytes(raw)


def _nul_data_lines(path: Path) -> None:
    """Every data line's bytes NUL (its line end kept), headers as they were: a log after a crash."""
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(b"\n".join(line if line.startswith(b"#") or not line else bytes(len(line)) for line in lines))


def headerless_front_end_log(root: Path, attacked: Path) -> None:
    data = (attacked / HTTPPROXY).read_bytes()
    (root / HTTPPROXY).write_bytes(b"".join(line for line in data.splitlines(keepends=True)
                                            if not line.startswith(b"#")))


def attack_before_the_header(root: Path, attacked: Path) -> None:
    lines = (attacked / IIS).read_bytes().splitlines(keepends=True)
    attack = [line for line in lines if ATTACKER in line]
    (root / IIS).write_bytes(b"".join(attack[:8] + [line for line in lines if ATTACKER not in line]))


def header_after_data_lines(root: Path, attacked: Path) -> None:
    lines = (attacked / IIS).read_bytes().splitlines(keepends=True)
    (root / IIS).write_bytes(b"".join([line for line in lines if ATTACKER in line][:3] + lines))


def front_end_logs_all_nul(root: Path, attacked: Path) -> None:
    for path in [*root.rglob("u_ex*.log"), *root.rglob("HttpProxy_*.LOG")]:
        _nul_data_lines(path)


def nul_stretch_inside_a_log(root: Path, attacked: Path) -> None:
    """A few thousand bytes of NUL in the middle of a log (a crash's unwritten space): triage selects
    no line there, a full parse skips each with a warning; both must say lines were not read."""
    path = root / IIS
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = bytes(4096)
    path.write_bytes(bytes(data))


def archive_without_extension(root: Path, attacked: Path) -> None:
    (root / "Collection-EXCH01").write_bytes(_zip_of(attacked / "C"))


def encrypted_archive(root: Path, attacked: Path) -> None:
    (root / "EXCH01.zip").write_bytes(_encrypted(_zip_of(attacked / "C")))


def truncated_archive(root: Path, attacked: Path) -> None:
    data = _zip_of(attacked / "C")
    (root / "EXCH01.zip").write_bytes(data[: len(data) // 2])


def gzip_under_a_log_name(root: Path, attacked: Path) -> None:
    (root / IIS).with_name("u_ex210304.log").write_bytes(gzip.compress((attacked / IIS).read_bytes()))


def image_inside_the_evidence(root: Path, attacked: Path) -> None:
    with (root / "EXCH01_D.vhdx").open("wb") as image:
        image.write(b"vhdxfile" + bytes(1024))
        image.truncate(2 << 20)


def every_record_unreadable(root: Path, attacked: Path) -> None:
    sample = shared_path("evtx", "evtx-attack-samples", "Lateral Movement",
                         "LM_typical_IIS_webshell_sysmon_1_10_traces.evtx")
    data = bytearray(sample.read_bytes())
    for i in range(4096 + 612, len(data), 97):  # after the first record's header: every record damaged
        data[i] ^= 0x5A
    (root / SYSMON).parent.mkdir(parents=True, exist_ok=True)
    (root / SYSMON).write_bytes(bytes(data))


@dataclass(frozen=True)
class Case:
    build: Callable[[Path, Path], None]
    verdict: str
    unread: bool  # the coverage names an unread file
    missing: str | None = None  # an expected kind no longer seen
    warning: str = ""  # a warning holds this


CASES = {
    "headerless front-end log": Case(headerless_front_end_log, "inconclusive", True,
                                     warning="no artifact reads (no #Fields header"),
    "attack lines before the header": Case(attack_before_the_header, "inconclusive", True,
                                           warning="data line before any #Fields header: skipped"),
    "header after data lines": Case(header_after_data_lines, "compromised", True),
    "front-end logs all NUL": Case(front_end_logs_all_nul, "inconclusive", True, missing="frontend_logs"),
    "NUL stretch inside a log": Case(nul_stretch_inside_a_log, "inconclusive", True, warning="NUL bytes in the log"),
    "archive without its extension": Case(archive_without_extension, "compromised", False),
    "encrypted archive": Case(encrypted_archive, "inconclusive", True, warning="needs a password"),
    "truncated archive": Case(truncated_archive, "inconclusive", True, warning="cannot open archive"),
    "gzip under a log's name": Case(gzip_under_a_log_name, "compromised", False),
    "image inside the evidence": Case(image_inside_the_evidence, "inconclusive", True, warning="is not opened"),
}


def _scan(root: Path, out: Path) -> tuple[HostAssessment, list[str]]:
    doc = scan([root], ScanOptions(host="EXCH01", jobs=1, quiet=True, out=out, html_report=False)).document
    (host,) = doc.hosts
    return host, [w["message"] for w in host.coverage.warning_samples]


def test_benign_demo_is_clean(demos: tuple[Path, Path], tmp_path: Path) -> None:
    host, _ = _scan(demos[0], tmp_path / "case")
    assert host.verdict == "clean" and host.coverage.unread == 0


@pytest.mark.parametrize("name", CASES)
def test_unread_evidence_is_no_all_clear(demos: tuple[Path, Path], tmp_path: Path, name: str) -> None:
    case = CASES[name]
    root = tmp_path / "evidence"
    shutil.copytree(demos[0], root)
    case.build(root, demos[1])
    host, warnings = _scan(root, tmp_path / "case")
    assert host.verdict == case.verdict, (host.coverage, warnings)
    assert bool(host.coverage.unread) == case.unread, host.coverage
    if case.missing:
        assert case.missing in host.coverage.missing
    if case.warning:
        assert any(case.warning in w for w in warnings), warnings
    if case.verdict == "inconclusive":  # the reports say why, and the first step is to read it
        reasons = inconclusive_reasons(host)
        assert reasons and host_actions_first(host).startswith(("Read the warnings", "Collect"))
        if case.unread:
            assert any("could not be read in full" in r for r in reasons)


def host_actions_first(host: HostAssessment) -> str:
    from exhunt.findings.model import AssessmentDocument

    doc = AssessmentDocument("1.4", "t", "2021-03-04T00:00:00Z", (host,), ())
    return host_actions(doc, host)[0].text


def test_event_log_with_every_record_unreadable(demos: tuple[Path, Path], tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    shutil.copytree(demos[0], root)
    every_record_unreadable(root, demos[1])  # skips without ../shared/data
    host, warnings = _scan(root, tmp_path / "case")
    assert host.verdict == "inconclusive" and "event_logs" in host.coverage.missing
    assert any("unreadable records" in w for w in warnings), warnings


@pytest.mark.parametrize(("message", "lost"), [
    ("NUL byte in line: binary data, line skipped", True),
    ("data line before any #Fields header: skipped", True),
    ("cannot open: encrypted zip member: needs a password, not read", True),
    ("cannot open archive: BadZipFile: File is not a zip file", True),
    ("unreadable records after record id 4: RuntimeError: ...", True),
    ("file ends 100 bytes into chunk 3 (of 65,536): cut short while copied or written; ... is lost", True),
    ("line longer than 65536 bytes (70000 bytes): truncated", True),
    ("x.zip!a.log: member of 9 bytes over the size limit, not read (neither parsed nor scanned)", True),
    ("a disk or VM image (NTFS) inside the evidence is not opened: scan it as evidence of its own", True),
    ("cannot list folder: Permission denied", True),
    ("not a regular file: skipped", False),  # a FIFO or device: no evidence in it
    ("hard link (2 names): read as a regular file, never written", False),
    ("symbolic link or junction not followed", False),
    ("invalid UTF-8 at byte 3 of the line: replaced (reported once per file)", False),
    ("record 7: no readable TimeCreated/SystemTime", False),
    ("chunk 0 (record ids 1..4): records checksum mismatch; records kept as parsed", False),
    ("row with a different number of values than the header: kept as far as it goes", False),
])
def test_which_warnings_lose_evidence(message: str, lost: bool) -> None:
    assert loses_evidence(message) is lost


def loses_evidence(message: str) -> bool:
    """The store's own test of a warning (``loss_condition``, the SQL the coverage counts with)."""
    import duckdb

    (row,) = duckdb.execute(f"SELECT {loss_condition('m')} FROM (SELECT ?::VARCHAR AS m)", [message]).fetchall()
    return bool(row[0])
