"""The Sigma loader's results on disk: parse + convert once per rule set, not once per scan.

Stored under ``$EXHUNT_CACHE/sigma`` (default ``~/.cache/exhunt/sigma``) as a pickle of the parsed
rules, their bookkeeping and the converted set (pySigma's rule objects pickle; pickle keeps shared
objects shared, so converted queries stay apart from the parsed rules as the loader keeps them).
The file's name is a SHA-256 of everything the result depends on: the rule set's digest (every
rule file's path and bytes, from the loader), the Python, pySigma and exhunt versions, and the
bytes of exhunt's Sigma code and pipelines (a development checkout changes them without a new
version). Anything wrong with a stored file (unreadable, truncated, from another build, not
ours) means parse and convert again; a cache that cannot be written costs only the next scan.

Unpickling runs code named in the file, so a stored file is used only when this user owns it and
no one else may write it (POSIX; on Windows the profile folder's ACL does this job).
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import stat
import sys
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

FORMAT = 1
# exhunt modules outside detections/sigma that the conversion's output depends on (SQL quoting, the
# events table's columns)
CONVERSION_MODULES = (("sqltext.py",), ("events", "schema.py"))


def cache_dir() -> Path:
    base = os.environ.get("EXHUNT_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "exhunt") / "sigma"


@functools.cache
def code_digest() -> str:
    """What else the loader's result depends on: versions and the converting code's bytes."""
    from exhunt import __version__

    try:
        pysigma = version("pysigma")
    except PackageNotFoundError:  # pragma: no cover - installed without metadata
        pysigma = "unknown"
    sha = hashlib.sha256(f"{FORMAT}\0{sys.version}\0{pysigma}\0{__version__}".encode())
    package = resources.files("exhunt")
    folders = (package.joinpath("detections", "sigma"), package.joinpath("data", "sigma", "pipelines"))
    entries = [entry for folder in folders for entry in sorted(folder.iterdir(), key=lambda e: e.name)
               if entry.name.endswith((".py", ".yml"))]
    entries += [package.joinpath(*parts) for parts in CONVERSION_MODULES]
    for entry in entries:
        data = entry.read_bytes()
        sha.update(f"\0{entry.name}\0{len(data)}\0".encode() + data)
    return sha.hexdigest()


def path_for(rules_digest: str) -> Path:
    return cache_dir() / f"{hashlib.sha256((rules_digest + code_digest()).encode()).hexdigest()}.pickle"


def _trusted(path: Path) -> bool:
    """Owned by this user and writable by no one else (POSIX); True where that cannot be asked."""
    if not hasattr(os, "getuid"):
        return True
    info = path.stat()
    return info.st_uid == os.getuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def read(rules_digest: str) -> Any:
    """The stored entry of the rule set, or None (absent, unusable or not trusted)."""
    path = path_for(rules_digest)
    try:
        if not _trusted(path):
            return None
        entry = pickle.loads(path.read_bytes())  # noqa: S301 - our own file, checked above
    except Exception:  # noqa: BLE001 - any damage or foreign content: parse and convert again
        return None
    if not (isinstance(entry, tuple) and len(entry) == 4 and entry[0] == rules_digest):
        return None
    return entry[1:]


def write(rules_digest: str, entry: tuple[Any, ...]) -> None:
    """Store atomically (another scan may read it meanwhile); failures are silent."""
    try:
        blob = pickle.dumps((rules_digest, *entry), protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError):
        return
    write_private(path_for(rules_digest), blob)


def write_private(path: Path, blob: bytes) -> None:
    """Replace ``path`` atomically with a file only this user may write; failures are silent (a
    cache that cannot be written costs only the next scan's time)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(blob)
        tmp.replace(path)
    except OSError:
        pass
