"""Opening evidence: read-only, binary, and without updating the access time where the OS allows."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO


def open_readonly(path: Path | str) -> BinaryIO:
    """``O_RDONLY`` (+ ``O_NOATIME`` on Linux, so reading leaves atime alone, + ``O_BINARY`` on Windows)."""
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOATIME", 0)
    try:
        fd = os.open(path, flags)
    except PermissionError:  # O_NOATIME needs ownership; fall back to a plain read-only open
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    return os.fdopen(fd, "rb")
