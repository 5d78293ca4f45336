"""Worker hook for tests: records the engine chunk the parse runs with (after the settings apply)."""

from __future__ import annotations

import os
from pathlib import Path


def record() -> None:
    from exhunt.artifacts import w3c_fast

    Path(os.environ["EXHUNT_TEST_CHUNK_FILE"]).write_text(str(w3c_fast.CHUNK), encoding="utf-8")
