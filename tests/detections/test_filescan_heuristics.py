"""Content heuristics (low-severity signals): obfuscation score and pages newer than the install."""

from __future__ import annotations

import base64
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from exhunt.detections.filehunt import FileHuntContext, heuristic_findings
from exhunt.detections.filescan import HEURISTIC_SCORE, content_heuristics, entropy, obfuscation
from exhunt.events.store import StoreWriter, connect
from tests.conftest import shared_path

RNG = random.Random(7)
BLOB = base64.b64encode(RNG.randbytes(30_000))
OBFUSCATED = {
    "base64 blob": b'<%@ Page Language="C#" %><% string p = "' + BLOB + b'"; %>',
    "hex escapes": b'<%@ Page Language="Jscript" %><% var s = "'
    + b"".join(b"\\x%02x" % RNG.randrange(256) for _ in range(4000))
    + b'"; %>',
    "chr concatenation": b"<% x = "
    + b" & ".join(b"Chr(%d)" % RNG.randrange(32, 127) for _ in range(3000))
    + b" %>",
}


@pytest.mark.parametrize("case", sorted(OBFUSCATED))
def test_obfuscated_pages_score_high(case: str) -> None:
    assert obfuscation(OBFUSCATED[case])["score"] >= HEURISTIC_SCORE
    assert content_heuristics("h", "a/x.aspx", OBFUSCATED[case], "0")[0]["rule"] == "obfuscated_script_page"


def test_only_script_pages_are_scored() -> None:
    assert content_heuristics("h", "a/x.bin", OBFUSCATED["base64 blob"], "0") == []


def test_shared_benign_pages_score_low() -> None:
    folder = shared_path("benign", "aspx")
    noisy = {
        p.name: obfuscation(p.read_bytes())
        for p in folder.rglob("*.as*")
        if obfuscation(p.read_bytes())["score"] >= HEURISTIC_SCORE
    }
    assert noisy == {}


def test_a_page_with_an_inline_image_scores_low() -> None:
    """A branded logon page with its logo inline (``data:image/png;base64,...``) scored 80."""
    page = (b'<%@ Page Language="C#" %><html><body><img alt="logo" src="data:image/png;base64,' + BLOB
            + b'"/><form method="post"><input name="username"/></form></body></html>')
    assert obfuscation(page)["score"] < HEURISTIC_SCORE
    assert content_heuristics("h", "a/logon.aspx", page, "0") == []
    assert obfuscation(OBFUSCATED["base64 blob"])["score"] >= HEURISTIC_SCORE  # a packed string still scores


def _mixed_page(rng: random.Random) -> bytes:
    """A page mixing the signals in random doses, many near the threshold."""
    parts = [b'<%@ Page Language="C#" %>']
    if rng.random() < 0.7:  # high-entropy text broken by spaces (entropy without blobs)
        parts.append(b" ".join(base64.b64encode(rng.randbytes(60)) for _ in range(rng.randrange(1, 200))))
    if rng.random() < 0.5:  # one long line (longest_line)
        parts.append(b"x" * rng.randrange(4000, 7000))
    if rng.random() < 0.5:  # string concatenation
        parts.append(b" + ".join(b'"a"' for _ in range(rng.randrange(10, 400))))
    if rng.random() < 0.3:  # escapes
        parts.append(b"&#65;" * rng.randrange(20, 400))
    return b"\n".join(parts)


def test_early_exit_keeps_every_finding() -> None:
    """content_heuristics stops before entropy when the score cannot reach the threshold: it must
    report exactly the pages whose full score reaches it."""
    rng = random.Random(19)
    pages = [_mixed_page(rng) for _ in range(400)]
    full = [obfuscation(p)["score"] >= HEURISTIC_SCORE for p in pages]
    fast = [bool(content_heuristics("h", "a/x.aspx", p, "0")) for p in pages]
    assert fast == full
    assert 0 < sum(full) < len(pages)


def test_entropy() -> None:
    assert entropy(b"") == 0.0 and entropy(b"aaaa") == 0.0
    assert entropy(bytes(range(256)) * 4) == pytest.approx(8.0)


def test_page_much_newer_than_install(tmp_path: Path) -> None:
    store = tmp_path / "store"
    install = datetime(2021, 1, 1, tzinfo=UTC)
    base = "C/Program Files/Microsoft/Exchange Server/V15/FrontEnd/HttpProxy/owa/auth/"
    with StoreWriter(store, "h") as w:
        for n in range(30):
            w.add("files", {"host": "h", "path": f"{base}f{n}.aspx", "mtime": install + timedelta(minutes=n)})
        w.add("files", {"host": "h", "path": base + "late.aspx", "mtime": install + timedelta(days=60)})
        w.add("files", {"host": "h", "path": base + "late.css", "mtime": install + timedelta(days=60)})
    ctx = FileHuntContext(connect(store), [])
    heuristic_findings(ctx)
    assert [(f.check, f.key.rsplit("/", 1)[-1], f.severity) for f in ctx.findings] == [
        ("heuristic.newer_page", "late.aspx", "low")
    ]


def _newer_reference(rows: list[tuple]) -> set[tuple[str, str]]:
    """The check as it was written per file in Python: median = the n//2-th sorted time of a host
    with 20 or more install files, newer = more than NEWER_DAYS whole days after it."""
    from exhunt.artifacts.pages import SERVER_PAGES
    from exhunt.detections.baselines import install_relative
    from exhunt.detections.filehunt.heuristic_hits import NEWER_DAYS

    by_host: dict[str, list[tuple]] = {}
    for row in rows:
        if "v15/" in row[1].lower() and "!" not in row[1]:
            by_host.setdefault(row[0], []).append(row)
    found = set()
    for host, items in by_host.items():
        if len(items) < 20:
            continue
        median = sorted(r[2] for r in items)[len(items) // 2]
        for _h, path, mtime in items:
            sub = install_relative(path) or ""
            if (sub.endswith(SERVER_PAGES) and sub.startswith(("frontend/", "clientaccess/"))
                    and (mtime - median).days > NEWER_DAYS):
                found.add((host, path))
    return found


def test_newer_pages_in_sql_equal_the_per_file_reference(tmp_path: Path) -> None:
    """Pages at the day boundary (30 days, 31 days less and plus a microsecond) after a known median,
    a host of 20 whose median is the upper of the two middle times (n // 2: its late page is 30
    days after it, 31 after the lower one), a host of 19 (too few), other folders and extensions."""
    from exhunt.detections.filehunt.heuristic_hits import NEWER_CHECK

    install = datetime(2021, 1, 1, tzinfo=UTC)
    base = "C/Program Files/Microsoft/Exchange Server/V15/"
    folders = ("FrontEnd/HttpProxy/owa/auth/", "ClientAccess/ecp/", "Bin/", "frontend/httpproxy/ecp/")
    offsets = (timedelta(days=30), timedelta(days=31) - timedelta(microseconds=1), timedelta(days=31),
               timedelta(days=31, microseconds=1), timedelta(days=400), timedelta(days=-90))
    rows = [("flat", f"{base}{folders[0]}f{n}.aspx", install) for n in range(100)]
    rows += [("flat", f"{base}{folder}late{n}.{ext}", install + offset) for n, offset in enumerate(offsets)
             for folder in folders for ext in ("aspx", "css")]
    rows += [("even", f"{base}{folders[1]}f{n}.aspx", install + timedelta(days=n // 10)) for n in range(19)]
    rows += [("even", f"{base}{folders[1]}late.aspx", install + timedelta(days=31))]
    rows += [("few", f"{base}{folders[0]}f{n}.aspx", install) for n in range(18)]
    rows += [("few", f"{base}{folders[0]}late.aspx", install + timedelta(days=90))]
    with StoreWriter(tmp_path / "store", "h") as w:
        for host, path, mtime in rows:
            w.add("files", {"host": host, "path": path, "mtime": mtime})
    ctx = FileHuntContext(connect(tmp_path / "store"), [])
    heuristic_findings(ctx)
    got = {(f.host, f.key) for f in ctx.findings if f.check == NEWER_CHECK.id}
    want = _newer_reference(rows)
    assert got == want
    assert {p.rsplit("/", 1)[1] for _, p in want} == {"late2.aspx", "late3.aspx", "late4.aspx"}
