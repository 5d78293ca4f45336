"""Detection tests keep the compiled-YARA cache in a per-session temp folder, not the user's home."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def _yara_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("exhunt-cache")
    patcher = pytest.MonkeyPatch()
    patcher.setenv("EXHUNT_CACHE", str(folder))
    yield folder
    patcher.undo()
