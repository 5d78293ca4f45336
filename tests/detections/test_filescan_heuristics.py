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
