"""The case folder a scan writes (``--out``): where it may lie, and making it.

A case is never written into the evidence and the evidence never lies in the case's own files:
either way one scan would read back or overwrite the other.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from exhunt.errors import UsageError

CASE_NAMES = ("store", "findings.json", "manifest.json", "report.html")  # what a scan writes in --out


def refuse_overlap(out: Path | None, evidence: Sequence[Path]) -> None:
    """The case is never written into the evidence, and never over it: ``--out`` inside (or equal
    to) an evidence root would be read back as evidence and overwrite its files; evidence inside
    the case's own store or files would be deleted by the next scan."""
    if out is None:
        return
    case = out.resolve()
    for path in evidence:
        root = path.resolve()
        if case == root or root in case.parents:
            raise UsageError(f"--out {out} is inside the evidence {path}: write the case somewhere else")
        if case in root.parents and root.relative_to(case).parts[0] in CASE_NAMES:
            raise UsageError(f"the evidence {path} lies in the case's own {root.relative_to(case).parts[0]}: "
                             f"a scan into --out {out} would replace it")


@contextmanager
def case_directory(out: Path | None) -> Iterator[Path]:
    """``--out``, created if needed; without it a temporary folder removed afterwards."""
    if out is None:
        tmp = Path(tempfile.mkdtemp(prefix="exhunt-case-"))
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    yield out
