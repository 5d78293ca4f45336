"""What a scan keeps to its end, left out of the garbage collector's full passes.

The listing (an ``EvidenceFile`` per file), the parse's results, the loaded rules and every imported
module live until the scan ends, yet each full collection walked them again: on 20,000 pages the
full collections after the parse cost 0.12 CPU s, 0.05 s with them frozen (issue 19). ``gc.freeze`` moves what
is alive at that moment out of the collector's sight; the collector still runs for what is made
later, and objects freed by their reference count still go at once.

While a scan runs, the young generation is collected every ``YOUNG`` net allocations of container
objects instead of CPython's 700: the tail makes tens of thousands of findings, references and rows
that all live to the end, and each young collection and the older ones after it walked them again
(20,000 pages: 0.19-0.23 s of collections in the scan process, 0.06 s at 50,000; the scan 0.1 s
faster). Garbage cycles still go, at most ``YOUNG`` allocations later (a few MB)."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

YOUNG = 50_000


def collect_young_rarely() -> None:
    """For the whole program (``exhunt`` on the command line, from its first import on): its imports
    alone made ~100 young and 10 older collections over objects that all live to the end."""
    thresholds = gc.get_threshold()
    gc.set_threshold(max(YOUNG, thresholds[0]), *thresholds[1:])


@contextmanager
def long_lived() -> Iterator[Callable[[], None]]:
    """Yields ``keep``: everything alive when it is called is left out of later collections. On exit
    they are handed back (``gc.unfreeze``) and the collector's thresholds restored, so a caller of the
    library API gets its heap as before (one that froze objects itself gets them back too)."""
    thresholds = gc.get_threshold()
    collect_young_rarely()
    try:
        yield gc.freeze
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
