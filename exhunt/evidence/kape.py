"""KAPE target output: a folder holding drive folders (``C/...`` or ``C%3A/...``), maybe one level down.

KAPE copies files under ``<target destination>/<drive>/...``; depending on version and options the
drive folder is ``C`` or the URL-encoded ``C%3A`` (and a timestamped collection folder may sit in
between). The source presents every path with the plain drive letter, so artifacts always see
``C/Program Files/Microsoft/Exchange Server/...`` whatever the collection looked like.
"""

from __future__ import annotations

import os
from pathlib import Path

from exhunt.evidence.directory import DirectorySource
from exhunt.evidence.names import drive_component

WINDOWS_TOP = ("windows", "program files", "programdata", "inetpub", "users", "$mft", "exchange server")


def _is_drive_folder(path: Path) -> bool:
    if drive_component(path.name) is None or not path.is_dir():
        return False
    try:
        return any(child.lower() in WINDOWS_TOP for child in os.listdir(path))
    except OSError:
        return False


def normalise_drive_path(rel: str) -> str:
    """``C%3A/x`` -> ``C/x``; ``<collection folder>/C%3A/x`` -> ``C/x`` (the folder KAPE nests in)."""
    parts = rel.split("/")
    # "C%3A" or "C:" one level down is KAPE's drive folder whatever lies in it; a bare "C" only
    # when a Windows top folder follows (a collection may hold any folder named "C")
    encoded = len(parts) > 1 and len(parts[1]) > 1 and drive_component(parts[1]) is not None
    for i, part in enumerate(parts):
        letter = drive_component(part)
        if letter is not None and (len(part) > 1 or i < 2):
            parts[i] = letter
    if (len(parts) > 2 and drive_component(parts[0]) is None and drive_component(parts[1]) is not None
            and (encoded or (len(parts) > 3 and parts[2].lower() in WINDOWS_TOP))):
        parts = parts[1:]
    return "/".join(parts)


class KapeSource(DirectorySource):
    """A KAPE target collection folder (drive folders at the top or one level down)."""

    name = "kape"

    @classmethod
    def detect(cls, path: Path) -> bool:
        if not path.is_dir():
            return False
        try:
            children = [c for c in path.iterdir() if c.is_dir() and not c.is_symlink()]
        except OSError:
            return False
        if any(_is_drive_folder(c) for c in children):
            return True
        # one collection folder (KAPE's timestamped destination) around the drive folders; several
        # are several machines' collections, whose paths must not be merged by dropping that folder
        return len(children) <= 8 and len(_holding_drives(children)) == 1

    def present(self, rel: str) -> str:
        parts = rel.split("/", 2)
        if (len(parts) > 2 and parts[0] in self._collection_folders()
                and drive_component(parts[1]) is not None):  # every file of that drive, $MFT and C:\root too
            return normalise_drive_path(rel.split("/", 1)[1])
        return normalise_drive_path(rel)

    def _collection_folders(self) -> frozenset[str]:
        """The top folders that hold a drive folder (KAPE's destination around ``C``): the drive's own
        files are ``C/...`` whatever its top folders are named (``C:\root``, ``PerfLogs``, ``$MFT``),
        not only below the Windows folders a bare ``C`` is recognised by."""
        found = getattr(self, "_collections", None)
        if found is None:
            found = self._collections = frozenset(c.name for c in _holding_drives(_subdirs(Path(self.root))))
        return found


def _holding_drives(folders: list[Path]) -> list[Path]:
    """The folders that hold a drive folder (each is a collection of one machine)."""
    return [c for c in folders if any(_is_drive_folder(g) for g in _subdirs(c))]


def machine_collections(path: Path) -> tuple[list[Path], bool]:
    """The children of ``path`` that are each a machine's collection (a drive folder in them), and
    whether they are all it holds. A folder of several collections (``EXCH01/C/...``,
    ``EXCH02/C/...``) is several hosts: read as one, their files would share names and verdicts."""
    if not path.is_dir():
        return [], False
    try:
        entries = sorted(path.iterdir())
    except OSError:
        return [], False
    folders = [c for c in entries if c.is_dir() and not c.is_symlink()]
    held = _holding_drives(folders)
    return held, len(held) == len(entries)


def _subdirs(path: Path) -> list[Path]:
    try:
        return [c for c in path.iterdir() if c.is_dir() and not c.is_symlink()]
    except OSError:
        return []
