"""Preloaded into a test's fork server: writes a file from an ``atexit`` handler when the server's
interpreter runs its exit handlers (``serverexit`` must end it before this one runs)."""

from __future__ import annotations

import atexit
import os
from pathlib import Path


def _mark() -> None:
    Path(os.environ["EXHUNT_TEST_EXIT_MARK"]).write_text("teardown ran", encoding="utf-8")


if os.environ.get("EXHUNT_TEST_EXIT_MARK"):
    atexit.register(_mark)
