"""The case never lands in or over the evidence; one host's roots never replace each other's files;
--resume stays exact after an interrupted run and after rule files change; the memory settings
reach an in-process parse as they reach pool workers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from exhunt import api
from exhunt.api import ScanOptions, scan
from exhunt.cli import main
from exhunt.demo import DemoSpec, generate
from exhunt.errors import UsageError
from exhunt.events.store import connect

SMALL = DemoSpec(days=1, per_day=200)


def counts(case: Path) -> tuple[int, int, int]:
    con = connect(case / "store")
    return tuple(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[return-value]
                 for t in ("events", "files", "matches"))


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("where", [".", "case", "C/store"])
def test_out_inside_the_evidence_is_refused_and_nothing_written(tmp_path: Path, where: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    ev = tmp_path / "ev"
    generate(ev, SMALL)
    (ev / "store").mkdir()
    (ev / "store" / "important.txt").write_text("evidence")
    (ev / "findings.json").write_text("{}")
    before = tree(ev)
    assert main(["scan", str(ev), "--out", str(ev / where), "--quiet"]) == 2
    assert "inside the evidence" in capsys.readouterr().err
    assert tree(ev) == before


def test_evidence_inside_the_cases_own_store_is_refused(tmp_path: Path) -> None:
    case = tmp_path / "case"
    generate(case / "store" / "ev", SMALL)
    with pytest.raises(UsageError, match="case's own store"):
        scan([case / "store" / "ev"], ScanOptions(out=case, quiet=True))
    generate(case / "evidence", SMALL)  # beside the case's files: a usual layout, allowed
    assert scan([case / "evidence"], ScanOptions(out=case, jobs=1, quiet=True, html_report=False)).document.hosts


def test_one_host_with_the_same_path_in_two_roots_keeps_both(tmp_path: Path) -> None:
    """A quiet day in one root and the attack day under the same name in another: both are parsed
    (their store parts were named by host and path alone, so one replaced the other)."""
    generate(tmp_path / "gen", DemoSpec(days=3, per_day=200))
    logs = sorted((tmp_path / "gen").rglob("W3SVC1/u_ex*.log"))  # the attack is on the third day
    assert len(logs) == 3
    for root, source in (("x/srv", logs[0]), ("z/srv", logs[2])):
        (tmp_path / root).mkdir(parents=True)
        shutil.copyfile(source, tmp_path / root / "u_ex.log")
    both = scan([tmp_path / "x/srv", tmp_path / "z/srv"],  # every line stored: the rows of both roots counted
                ScanOptions(out=tmp_path / "case", jobs=1, quiet=True, index="full"))
    alone = scan([tmp_path / "z/srv"], ScanOptions(out=tmp_path / "alone", jobs=1, quiet=True))
    assert counts(tmp_path / "case")[:2] == (sum(1 for _ in _data_lines(logs[0], logs[2])), 2)
    assert both.document.hosts[0].verdict == alone.document.hosts[0].verdict == "compromised"


def _data_lines(*paths: Path) -> list[bytes]:
    return [line for p in paths for line in p.read_bytes().splitlines() if line and not line.startswith(b"#")]


def test_interrupted_resume_with_other_options_then_resume_equals_fresh(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    ev = tmp_path / "exch01"
    generate(ev, SMALL)
    options = ScanOptions(out=tmp_path / "case", jobs=1, quiet=True, html_report=False)
    scan([ev], options)
    full = counts(tmp_path / "case")

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(api, "parse_all", interrupted)
        with pytest.raises(KeyboardInterrupt):  # other options: every old row was dropped, then Ctrl-C
            scan([ev], ScanOptions(out=tmp_path / "case", jobs=1, quiet=True, resume=True, yara_logs=True))
    again = scan([ev], ScanOptions(out=tmp_path / "case", jobs=1, quiet=True, html_report=False, resume=True))
    assert again.file_results, "nothing was kept, so everything is parsed again"
    assert counts(tmp_path / "case") == full


def test_resume_runs_an_edited_yara_file_again(tmp_path: Path) -> None:
    ev = tmp_path / "exch01"
    generate(ev, SMALL)
    rule = tmp_path / "rules.yar"
    rule.write_text('rule first_rule { strings: $a = "Mozilla" condition: $a }\n')
    options = {"out": tmp_path / "case", "jobs": 1, "quiet": True, "html_report": False, "yara": [rule]}
    scan([ev], ScanOptions(**options))  # type: ignore[arg-type]
    rule.write_text(rule.read_text() + 'rule second_rule { strings: $a = "Mozilla" condition: $a }\n')
    again = scan([ev], ScanOptions(**options, resume=True))  # type: ignore[arg-type]
    assert again.file_results, "an edited rule file is another key: every file is scanned again"
    con = connect(tmp_path / "case" / "store")
    rules = {r for (r,) in con.execute("SELECT DISTINCT rule FROM matches").fetchall()}
    assert {"first_rule", "second_rule"} <= {r.rsplit(".", 1)[-1] for r in rules}


def test_resume_key_follows_the_yara_size_limit_in_force() -> None:
    base = ScanOptions(jobs=2)
    assert api.resume_key(base) == api.resume_key(ScanOptions(jobs=2))
    assert api.resume_key(base) != api.resume_key(ScanOptions(jobs=2, memory_limit=300 << 20))


def test_in_process_parse_gets_the_memory_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from exhunt.artifacts import w3c_fast
    from exhunt.parallel import limits

    ev = tmp_path / "exch01"
    generate(ev, SMALL)
    record = tmp_path / "chunk.txt"
    monkeypatch.setenv("EXHUNT_TEST_CHUNK_FILE", str(record))
    before = w3c_fast.CHUNK
    limit = 300 << 20
    scan([ev], ScanOptions(out=tmp_path / "case", jobs=1, quiet=True, html_report=False, memory_limit=limit,
                           worker_hook="tests.parallel.settings_hook:record"))
    assert int(record.read_text()) == limits.budget(limit, 1).chunk != before
    assert before == w3c_fast.CHUNK, "restored after the scan"


@pytest.mark.parametrize("value", ["infk", "nanM", "10x", "-"])
def test_a_size_that_is_no_size_is_one_line_exit_2(tmp_path: Path, value: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    for option in ("--memory-limit", "--split-size", "--yara-max-size"):
        with pytest.raises(SystemExit) as exit_info:
            main(["scan", str(tmp_path), option, value])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert "not a size" in err and "Traceback" not in err


def test_resume_after_the_evidence_moved_names_the_new_root(tmp_path: Path) -> None:
    ev = tmp_path / "a" / "exch01"
    generate(ev, SMALL)
    scan([ev], ScanOptions(out=tmp_path / "case", jobs=1, quiet=True, html_report=False))
    moved = tmp_path / "b" / "exch01"
    moved.parent.mkdir()
    ev.rename(moved)
    again = scan([moved], ScanOptions(out=tmp_path / "case", jobs=1, quiet=True, html_report=False, resume=True))
    assert again.file_results == [], "same host, same files: all kept"
    roots = connect(tmp_path / "case" / "store").execute("SELECT DISTINCT evidence FROM files").fetchall()
    assert roots == [(str(moved),)]


def test_out_inside_the_fleet_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    generate(tmp_path / "fleet" / "exch01", SMALL)
    assert main(["scan", "--fleet", str(tmp_path / "fleet"), "--out", str(tmp_path / "fleet" / "case"),
                 "--quiet"]) == 2
    assert "inside the evidence" in capsys.readouterr().err
    assert not (tmp_path / "fleet" / "case").exists()


KILLED_WRITER = """
import os, sys
from pathlib import Path
from exhunt.events.store import StoreWriter
writer = StoreWriter(Path(sys.argv[1]), "exch01", part="u-killed")
for n in range(3):
    writer.add("events", {"host": "exch01", "path": "C/inetpub/logs/x.log", "line": n})
writer.table("events").flush()  # a row group on disk, the part still open (no footer)
os.kill(os.getpid(), 9)
"""


def test_resume_after_a_kill_mid_part_equals_fresh(tmp_path: Path) -> None:
    """kill -9 while a part is being written: the part had kept its final name without its footer, and
    every later --resume of the case stopped with an internal error on it."""
    import subprocess
    import sys

    ev = tmp_path / "exch01"
    generate(ev, SMALL)
    options = {"jobs": 1, "quiet": True, "html_report": False}
    scan([ev], ScanOptions(out=tmp_path / "fresh", **options))  # type: ignore[arg-type]
    scan([ev], ScanOptions(out=tmp_path / "case", **options))  # type: ignore[arg-type]
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(tmp_path / "case" / "store")], check=False)
    assert killed.returncode == -9
    again = scan([ev], ScanOptions(out=tmp_path / "case", resume=True, **options))  # type: ignore[arg-type]
    assert not list((tmp_path / "case" / "store").rglob("*killed*"))
    assert counts(tmp_path / "case") == counts(tmp_path / "fresh")
    fresh = connect(tmp_path / "fresh" / "store", extra_tables=("findings",)).execute(
        "SELECT id, count FROM findings ORDER BY id").fetchall()
    assert sorted((f.id, f.count) for f in again.document.findings) == fresh


def test_two_roots_of_one_folder_name_are_merged_with_a_warning(tmp_path: Path) -> None:
    """a/EXCH01 and b/EXCH01 (two sites' servers, or one server's two copies) become one host EXCH01:
    the merge had been silent, so one server's empty or partial collection hid under the other's."""
    generate(tmp_path / "a" / "EXCH01", SMALL)
    (tmp_path / "b" / "EXCH01").mkdir(parents=True)
    roots = [tmp_path / "a" / "EXCH01", tmp_path / "b" / "EXCH01"]
    merged = scan(roots, ScanOptions(out=tmp_path / "case", jobs=1, quiet=True, html_report=False))
    assert [h.host for h in merged.document.hosts] == ["EXCH01"]
    said = connect(tmp_path / "case" / "store").execute(
        "SELECT host, message FROM warnings WHERE artifact = 'evidence'").fetchall()
    assert [h for h, m in said if "both named EXCH01" in m and str(roots[1]) in m] == ["EXCH01"]
    assert merged.document.hosts[0].coverage.warnings >= 1
    named = scan(roots, ScanOptions(out=tmp_path / "named", host="EXCH01", jobs=1, quiet=True, html_report=False))
    assert [h.host for h in named.document.hosts] == ["EXCH01"]  # --host: the merge was asked for
    assert connect(tmp_path / "named" / "store").execute(
        "SELECT count(*) FROM warnings WHERE artifact = 'evidence'").fetchone() == (0,)
