"""pyarrow looks for ``dateutil.relativedelta`` each time it infers a type from Python values; without
the package every look is a failed import searched along sys.path (~30 us per array or scalar, 1.4 s
of a 2 GB triage scan). The dependency makes the look a dictionary hit."""

from __future__ import annotations

import sys
from importlib.abc import MetaPathFinder

import pyarrow as pa
import pyarrow.compute as pc


class _Recorder(MetaPathFinder):
    def __init__(self) -> None:
        self.searched: list[str] = []

    def find_spec(self, fullname, path, target=None):  # type: ignore[no-untyped-def]
        self.searched.append(fullname)
        return None  # let the real finders answer


def test_type_inference_imports_nothing() -> None:
    pa.array([1, 2])  # first call: may import what it needs once
    recorder = _Recorder()
    sys.meta_path.insert(0, recorder)
    try:
        pa.array([1, 2])
        pa.array(["a", "b"])
        pc.add(pa.array([1, 2]), 3)
    finally:
        sys.meta_path.remove(recorder)
    assert recorder.searched == []
