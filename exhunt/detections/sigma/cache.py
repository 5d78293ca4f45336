"""The Sigma loader's results on disk: parse + convert once per rule set, not once per scan.

Stored under ``$EXHUNT_CACHE/sigma`` (default ``~/.cache/exhunt/sigma``) in two files.
``<key>.pickle``: the parsed rules, their bookkeeping, the converted queries and the plain set
(pySigma's rule objects pickle; pickle keeps shared objects shared, so converted queries stay apart
from the parsed rules as the loader keeps them); only the summary's derivation reads it.
``<key>.plain.pickle``: the set the engine runs, each rule as ``RuleInfo``, read by every scan. Its
unpickler accepts exhunt's three plain classes and nothing else, so reading it never imports
pySigma and pyparsing (~0.15 CPU s with the loader's modules) nor rebuilds pySigma's rule objects
(a cost that grows with the pack).

The key is a SHA-256 of everything the result depends on: the rule set's digest (every rule file's
path and bytes, from the loader), the Python, pySigma and exhunt versions, and the bytes of exhunt's
Sigma code and pipelines (a development checkout changes them without a new version). Anything
wrong with a stored file (unreadable, truncated, from another build, not ours) means taking the
rules from the other file or parsing and converting again; a cache that cannot be written costs
only the next scan.

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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from exhunt.detections.sigma.queries import RuleSet

FORMAT = 2
# exhunt modules outside detections/sigma that the conversion's output depends on (SQL quoting, the
# events table's columns)
CONVERSION_MODULES = (("sqltext.py",), ("events", "schema.py"), ("detections", "patterns.py"))


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


# the classes a plain entry may name (the unpickler refuses any other: a pySigma object there
# would import pySigma, and a foreign one would run its code)
PLAIN_CLASSES = frozenset({
    ("exhunt.detections.sigma.queries", "RuleSet"),
    ("exhunt.detections.sigma.queries", "CompiledQuery"),
    ("exhunt.detections.sigma.ruleinfo", "RuleInfo"),
})


def path_for(rules_digest: str, suffix: str = ".pickle") -> Path:
    return cache_dir() / f"{hashlib.sha256((rules_digest + code_digest()).encode()).hexdigest()}{suffix}"


def plain_path_for(rules_digest: str) -> Path:
    return path_for(rules_digest, ".plain.pickle")


def _trusted(path: Path) -> bool:
    """Owned by this user and writable by no one else (POSIX); True where that cannot be asked."""
    if not hasattr(os, "getuid"):
        return True
    info = path.stat()
    return info.st_uid == os.getuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def read(rules_digest: str) -> Any:
    """The stored pySigma entry of the rule set (rules, bookkeeping, converted queries, plain set),
    or None (absent, unusable or not trusted)."""
    from exhunt.detections.sigma.queries import RuleSet

    path = path_for(rules_digest)
    try:
        if not _trusted(path):
            return None
        entry = pickle.loads(path.read_bytes())  # noqa: S301 - our own file, checked above
    except Exception:  # noqa: BLE001 - any damage or foreign content: parse and convert again
        return None
    if not (isinstance(entry, tuple) and len(entry) == 5 and entry[0] == rules_digest
            and isinstance(entry[2], RuleSet) and isinstance(entry[3], list) and isinstance(entry[4], RuleSet)):
        return None
    return entry[1:]


def write(rules_digest: str, entry: tuple[Any, ...]) -> None:
    """Store atomically (another scan may read it meanwhile); failures are silent."""
    _write(path_for(rules_digest), (rules_digest, *entry))


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in PLAIN_CLASSES:
            raise pickle.UnpicklingError(f"{module}.{name} has no place in a plain rule set")
        return super().find_class(module, name)


def read_plain(rules_digest: str) -> RuleSet | None:
    """The stored plain set of the rule set (``RuleInfo`` rules), or None (absent, unusable, not
    trusted, or naming any class but the plain ones)."""
    path = plain_path_for(rules_digest)
    try:
        if not _trusted(path):
            return None
        with path.open("rb") as stream:
            entry = _PlainUnpickler(stream).load()
    except Exception:  # noqa: BLE001 - any damage or foreign content: take the rules from elsewhere
        return None
    if not (isinstance(entry, tuple) and len(entry) == 2 and entry[0] == rules_digest and _plain(entry[1])):
        return None
    ruleset: RuleSet = entry[1]
    return ruleset


def _plain(ruleset: object) -> bool:
    """Whether ``ruleset`` has the plain set's shape (what the engine and the report read)."""
    from exhunt.detections.sigma.queries import CompiledQuery, RuleSet
    from exhunt.detections.sigma.ruleinfo import RuleInfo

    return (isinstance(ruleset, RuleSet) and isinstance(ruleset.queries, list) and isinstance(ruleset.loaded, int)
            and isinstance(ruleset.failed, list) and all(isinstance(f, dict) for f in ruleset.failed)
            and isinstance(ruleset.sources, list)
            and all(isinstance(q, CompiledQuery) and isinstance(q.rule, RuleInfo) for q in ruleset.queries))


def write_plain(rules_digest: str, ruleset: RuleSet) -> None:
    """Store the plain set atomically; failures are silent."""
    _write(plain_path_for(rules_digest), (rules_digest, ruleset))


def _write(path: Path, entry: tuple[Any, ...]) -> None:
    try:
        blob = pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError):
        return
    write_private(path, blob)


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
