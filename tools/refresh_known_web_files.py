"""Regenerate exhunt/data/known_web_files.txt (page names) and known_web_paths.txt (each page by its
path from the install folder, in the folders the placement check watches) from CSS-Exchange
known-good baselines.

Usage: python tools/refresh_known_web_files.py ../shared/data/css-exchange/baselines
Ships only the names of legitimate pages in the web folders that ProxyLogon shells were dropped
into, never the hashes (those stay with the user's --baseline packs).
"""

from __future__ import annotations

import sys
from pathlib import Path

WEB_FOLDERS = ("owa/auth/", "ecp/auth/", "aspnet_client/", "clientaccess/oab/", "/oab/")
PAGE_EXT = (".aspx", ".ashx", ".asmx", ".asax", ".asp", ".svc")
OUT = Path(__file__).resolve().parent.parent / "exhunt" / "data" / "known_web_files.txt"
PATHS_OUT = OUT.with_name("known_web_paths.txt")
PLACED = "/frontend/httpproxy/"  # where the placement check tells pages apart by path


def _baseline_paths(folder: Path) -> set[str]:
    """Every file's relative path in the baselines, '/'-separated, lower case, with a leading '/'."""
    paths: set[str] = set()
    for csv_file in sorted(folder.glob("*.csv")):
        for line in csv_file.read_text(encoding="utf-8-sig").splitlines():
            parts = line.split(",", 2)
            if len(parts) == 3:
                paths.add("/" + parts[2].strip().replace("\\", "/").lower().lstrip("/"))
    return paths


def known_names(folder: Path) -> list[str]:
    return sorted({rel.rsplit("/", 1)[1] for rel in _baseline_paths(folder)
                   if rel.endswith(PAGE_EXT) and any(f in rel for f in WEB_FOLDERS)})


def known_paths(folder: Path) -> list[str]:
    return sorted(rel.lstrip("/") for rel in _baseline_paths(folder)
                  if rel.endswith(PAGE_EXT) and rel.startswith(PLACED))


def render(names: list[str]) -> str:
    header = "# Legitimate page names in Exchange web folders (from CSS-Exchange baselines)\n"
    return header + "".join(n + "\n" for n in names)


PATHS_HEADER = ("# Legitimate pages in the folders the placement check watches, by path from the Exchange install\n"
                "# folder (from CSS-Exchange baselines; tools/refresh_known_web_files.py): a known name anywhere\n"
                "# else is unknown\n")

if __name__ == "__main__":
    OUT.write_text(render(known_names(Path(sys.argv[1]))), encoding="utf-8")
    PATHS_OUT.write_text(PATHS_HEADER + "".join(p + "\n" for p in known_paths(Path(sys.argv[1]))), encoding="utf-8")
    print(f"wrote {OUT} and {PATHS_OUT}")
