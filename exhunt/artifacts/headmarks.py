"""The artifacts' head marks as one Hyperscan database: whether any content sniff could claim a head.

``artifacts.may_be_content_claimed`` asks this of every file a worker reads; on a web root that is
every page. In Python (the head lowered, each mark searched, the start pattern matched) it cost
~7-9 us a 4 KiB page, one Hyperscan scan of the head ~1.5 us (20,000 pages: ~0.14 CPU s of the
workers, whose time is most of that scan's). Hyperscan's caseless matching lowers ASCII letters
only, as ``bytes.lower`` does, so it agrees with the Python test on every head as long as the
patterns are lower-case; patterns that are not (or a database that cannot be built) leave the
Python test in charge (``matcher`` is None).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

try:
    import hyperscan as _hs
except ImportError:  # pragma: no cover - a dependency; the Python test then decides alone
    _hs = None  # type: ignore[assignment]

Matcher = Callable[[bytes], bool]


def _stop(*_match: object) -> bool:
    return True  # Hyperscan: stop at the first match


class _PerThread(threading.local):
    """A Hyperscan scratch serves one scan at a time: each thread (a Dask worker runs several) loads
    its own copy of the compiled database."""

    db: Any = None


def compile_marks(marks: Sequence[bytes], start: bytes) -> Matcher | None:
    """A test of a head (not lowered) for any of ``marks`` anywhere or ``start`` at its start, as
    ``any(m in head.lower() for m in marks) or re.match(start, head.lower())``; None when the
    patterns are not all lower-case or Hyperscan cannot compile them."""
    patterns = [re.escape(m) for m in marks] + ([b"^(?:" + start + b")"] if start else [])
    if _hs is None or not patterns or any(p != p.lower() for p in patterns):
        return None
    hs = _hs
    try:
        db = hs.Database(mode=hs.HS_MODE_BLOCK)
        db.compile(expressions=patterns, ids=list(range(len(patterns))), elements=len(patterns),
                   flags=[hs.HS_FLAG_CASELESS | hs.HS_FLAG_SINGLEMATCH] * len(patterns))
        blob = hs.dumpb(db)
    except hs.error:  # type: ignore[attr-defined]
        return None
    local = _PerThread()

    def matches(head: bytes) -> bool:
        db = local.db
        if db is None:
            db = local.db = hs.loadb(blob, hs.HS_MODE_BLOCK)
            db.scratch = hs.Scratch(db)
        try:
            db.scan(head, match_event_handler=_stop)
        except hs.ScanTerminated:
            return True
        return False

    return matches
