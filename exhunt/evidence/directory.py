"""A folder: a copy of a server's drive, a triage collection or loose logs (the fallback source).

Walks without following links (a link out of the evidence is reported, never read), bounded in
depth, and with names made printable (an undecodable or control-character name is a warning, the
file is still read through its real name). Archives found in the folder are listed in place too.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from exhunt.evidence.base import EvidenceFile, Source
from exhunt.evidence.names import printable
from exhunt.evidence.readonly import open_readonly

MAX_DEPTH = 64

_open_readonly = open_readonly  # older import name


def _another_name(rel: str, taken: set[str]) -> str:
    """``rel~2``, ``rel~3``...: the first not ``taken`` (as an archive's duplicate members are named)."""
    n = 2
    while f"{rel}~{n}" in taken:
        n += 1
    return f"{rel}~{n}"


class DirectorySource(Source):
    """Every regular file under a folder; archives inside it are opened in place (one level)."""

    name = "directory"
    open_archives = True

    @classmethod
    def detect(cls, path: Path) -> bool:
        return path.is_dir()

    def present(self, rel: str) -> str:
        """The name artifacts see for a real relative path (layouts such as KAPE override it)."""
        return rel

    def files(self, warn: Callable[[str, str], None]) -> Iterator[EvidenceFile]:
        from exhunt.evidence.archive import list_archive, looks_like_archive

        root = str(self.root)
        stack: list[tuple[str, int]] = [(root, 0)]
        shown: set[str] = set()  # the names given so far: a file's name is its identity in the case
        while stack:
            folder, depth = stack.pop()
            real_folder = os.path.relpath(folder, root).replace(os.sep, "/")
            rel_folder = printable(real_folder)[0]
            # each entry's relative path from its folder's, computed once per folder: relpath per
            # file cost 0.5 s of serial listing over 20,000 pages
            prefix = "" if real_folder == "." else real_folder + "/"
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
                real = prefix + entry.name
                rel, escaped = printable(self.present(real))
                if escaped:
                    warn(rel, "file name has control or undecodable characters: shown escaped")
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError as exc:
                    warn(rel, f"cannot stat: {exc.strerror or exc}")
                    continue
                if stat.S_ISLNK(st.st_mode) or getattr(entry, "is_junction", lambda: False)():
                    warn(rel, "symbolic link or junction not followed")
                elif stat.S_ISDIR(st.st_mode):
                    subdirs.append((entry.path, depth + 1))
                elif stat.S_ISREG(st.st_mode):
                    if rel in shown:  # two real names shown as one: each file must keep its own
                        other = _another_name(rel, shown)
                        warn(rel, f"another file is shown under this name (a drive folder's spelling or "
                                  f"escaped characters): this one read as {other}")
                        rel = other
                    shown.add(rel)
                    if st.st_nlink > 1:
                        warn(rel, f"hard link ({st.st_nlink} names): read as a regular file, never written")
                    locator = (real,) if rel != real else ()
                    yield EvidenceFile(self.name, root, rel, st.st_size, st.st_mtime, st.st_ctime,
                                       st.st_atime, locator)
                    if self.open_archives and looks_like_archive(rel):
                        yield from list_archive("archive", root, real, Path(entry.path), rel + "/", warn)
                else:
                    warn(rel, "not a regular file: skipped")
            stack.extend(reversed(subdirs))

    @classmethod
    def open_member(cls, member: EvidenceFile) -> BinaryIO:
        # a string join, not pathlib (0.3 s CPU of Path objects over 20,000 pages), and the raw file:
        # the worker's hashing reader and the archive readers buffer for themselves
        return open_readonly(os.path.join(member.root, member.locator[0] if member.locator else member.rel),
                             buffered=False)

    @classmethod
    def open_seekable(cls, member: EvidenceFile) -> BinaryIO | None:
        return cls.open_member(member)  # the raw file
