"""``--fleet DIR``: every child of DIR (a folder or an archive/image) is the evidence of one host."""

from __future__ import annotations

from pathlib import Path

from exhunt.errors import EvidenceError, UsageError
from exhunt.evidence import open_evidence


def fleet_roots(folder: Path) -> list[Path]:
    """Children of ``folder`` that are evidence of a whole host (folders, archives, images), sorted.
    Loose files and hidden entries are not hosts and are left out."""
    if not folder.is_dir():
        raise UsageError(f"--fleet {folder}: not a folder (give a folder with one child per host)")
    roots: list[Path] = []
    names: dict[str, str] = {}
    for child in sorted(folder.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_file() and _loose_file(child):
            continue
        host = child.stem if child.is_file() else child.name
        if host.lower() in names:
            raise UsageError(f"--fleet: {child.name} and {names[host.lower()]} would both be host {host}")
        names[host.lower()] = child.name
        roots.append(child)
    if not roots:
        raise UsageError(f"--fleet {folder}: no host folders or archives in it")
    return roots


def _loose_file(path: Path) -> bool:
    """A file that is no host's evidence (not an archive or image). A damaged archive is a host: the
    scan says it could not be read, and scans the other hosts."""
    try:
        return open_evidence(path).name == "file"
    except EvidenceError:
        return False
