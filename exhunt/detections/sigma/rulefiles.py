"""Which files make a Sigma rule set and what it depends on: found and hashed without pySigma.

Kept apart from the loader so a scan can key its cached rule summary (``summary``) before the
parse without importing pySigma (~0.13 s), which the loader needs."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path

from exhunt.errors import UsageError


def builtin_rules() -> Path:
    return Path(str(resources.files("exhunt").joinpath("data", "sigma", "rules")))


def rule_files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in (".yml", ".yaml")))
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"--sigma {path}: no such file or folder")
    return files


def digest(paths: Sequence[Path], include_builtin: bool = True) -> str:
    """What a loaded rule set depends on: every rule file's path and bytes (an unreadable file by
    its error, which ``load`` reports the same way)."""
    inputs = ([builtin_rules()] if include_builtin else []) + list(paths)
    sha = hashlib.sha256(repr([str(p) for p in inputs]).encode("utf-8", "surrogateescape"))
    for file in rule_files(inputs):
        sha.update(str(file).encode("utf-8", "surrogateescape") + b"\0")
        try:
            data = file.read_bytes()
        except OSError as exc:
            data = f"unreadable: {exc}".encode("utf-8", "surrogateescape")
        sha.update(len(data).to_bytes(8, "little") + data)
    return sha.hexdigest()
