"""A folder: a copy of a server's drive, a triage collection or loose logs (the fallback source)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from exhunt.evidence.base import EvidenceFile, Source

MAX_DEPTH = 64


def _open_readonly(path: Path) -> BinaryIO:
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOATIME", 0)
    try:
        fd = os.open(path, flags)
    except PermissionError:  # O_NOATIME needs ownership; fall back to a plain read-only open
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    return os.fdopen(fd, "rb")


class DirectorySource(Source):
    """Walks without following links: a link out of the evidence is reported, never read."""

    name = "directory"

    @classmethod
    def detect(cls, path: Path) -> bool:
        return path.is_dir()

    def files(self, warn: Callable[[str, str], None]) -> Iterator[EvidenceFile]:
        root = str(self.root)
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            folder, depth = stack.pop()
            rel_folder = os.path.relpath(folder, root).replace(os.sep, "/")
            if depth > MAX_DEPTH:
                warn(rel_folder, f"folder nesting deeper than {MAX_DEPTH}: not descended")
                continue
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError as exc:
                warn(rel_folder, f"cannot list folder: {exc.strerror or exc}")
                continue
            subdirs = []
            for entry in entries:
                rel = os.path.relpath(entry.path, root).replace(os.sep, "/")
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError as exc:
                    warn(rel, f"cannot stat: {exc.strerror or exc}")
                    continue
                if stat.S_ISLNK(st.st_mode):
                    warn(rel, "symbolic link not followed")
                elif stat.S_ISDIR(st.st_mode):
                    subdirs.append((entry.path, depth + 1))
                elif stat.S_ISREG(st.st_mode):
                    yield EvidenceFile(
                        self.name, root, rel, st.st_size, st.st_mtime, st.st_ctime, st.st_atime
                    )
                else:
                    warn(rel, "not a regular file: skipped")
            stack.extend(reversed(subdirs))

    @classmethod
    def open_member(cls, member: EvidenceFile) -> BinaryIO:
        return _open_readonly(Path(member.root) / member.rel)
