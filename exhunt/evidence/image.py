"""Disk and VM images (E01, VMDK, VHD/VHDX, raw) read through dissect.target (extra ``exhunt[images]``).

dissect.target opens the container, the volume system and NTFS itself, read-only and without
mounting anything. Only the folders where Exchange, IIS and Windows keep what exhunt reads are
walked (``INTERESTING``), on every drive, plus any top-level folder whose name says Exchange: a
full walk of a server's system drive lists hundreds of thousands of files nobody parses. Paths are
presented as ``C/...`` like a KAPE or plain copy.
"""

from __future__ import annotations

import importlib.util
import io
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from exhunt.errors import EvidenceError, MissingExtraError
from exhunt.evidence.archive import GuardedStream
from exhunt.evidence.base import EvidenceFile, Source
from exhunt.evidence.names import printable
from exhunt.evidence.readonly import open_readonly

SUFFIXES = (".e01", ".ex01", ".vmdk", ".vhd", ".vhdx", ".raw", ".dd", ".img", ".qcow2", ".vdi")
MAGIC = (b"EVF\x09\x0d\x0a\xff\x00", b"LVF\x09\x0d\x0a\xff\x00", b"KDMV", b"# Disk DescriptorFile",
         b"vhdxfile", b"conectix", b"QFI\xfb")
INTERESTING = (
    "program files/microsoft/exchange server",
    "exchange server",
    "inetpub",
    "windows/system32/winevt/logs",
    "windows/system32/logfiles",
    "windows/temp",
    "programdata",
    "perflogs",
)
MAX_DEPTH = 64
FEATURE = "reading disk and VM images (E01, VMDK, VHD/VHDX, raw)"


def _require() -> Any:
    if importlib.util.find_spec("dissect.target") is None:
        raise MissingExtraError(FEATURE, "images")
    from dissect.target import Target

    return Target


_TARGETS: OrderedDict[str, Any] = OrderedDict()


def _target(root: str) -> Any:
    if root not in _TARGETS:
        target_cls = _require()
        try:
            _TARGETS[root] = target_cls.open(root)
        except Exception as exc:  # noqa: BLE001 - any loader failure on a hostile image
            raise EvidenceError(f"cannot open image {root}: {type(exc).__name__}: {exc}") from exc
        while len(_TARGETS) > 2:
            _TARGETS.popitem(last=False)
    return _TARGETS[root]


def _drives(target: Any) -> list[tuple[str, str]]:
    """(mount point in target.fs, name presented to artifacts)."""
    mounts = sorted(str(m) for m in getattr(target.fs, "mounts", {}))
    drives = [(m, m[0].upper()) for m in mounts if len(m) == 2 and m[1] == ":"]
    if drives:
        return drives
    return [(m, m.strip("/").replace(":", "") or "fs") for m in mounts if m not in ("sysvol", "/")]


class ImageSource(Source):
    name = "image"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        _require()  # fail early with the name of the extra

    @classmethod
    def detect(cls, path: Path) -> bool:
        if not path.is_file():
            return False
        if path.name.lower().endswith(SUFFIXES):
            return True
        try:
            with open_readonly(path) as f:
                head = f.read(64)
        except OSError:
            return False
        return head.startswith(MAGIC)

    def files(self, warn: Callable[[str, str], None]) -> Iterator[EvidenceFile]:
        target = _target(str(self.root))
        for mount, shown in _drives(target):
            base = target.fs.path(mount)
            try:
                tops = sorted(base.iterdir(), key=lambda p: p.name)
            except Exception as exc:  # noqa: BLE001
                warn(shown, f"cannot list drive: {type(exc).__name__}: {exc}")
                continue
            wanted = [p for p in tops if p.name.lower() in {i.split("/")[0] for i in INTERESTING}
                      or "exchange" in p.name.lower()]
            for top in wanted:
                yield from self._walk(top, f"{shown}/{top.name}", mount, warn, 0)

    def _walk(self, path: Any, rel: str, mount: str, warn: Callable[[str, str], None],
              depth: int) -> Iterator[EvidenceFile]:
        lower = rel.split("/", 1)[1].lower() if "/" in rel else ""
        wanted = any(i.startswith(lower) or lower.startswith(i) for i in INTERESTING)
        if not wanted and "exchange" not in lower:
            return
        shown = printable(rel)[0]
        if depth > MAX_DEPTH:
            warn(shown, f"folder nesting deeper than {MAX_DEPTH}: not descended")
            return
        try:
            if path.is_symlink():
                warn(shown, "symbolic link or junction not followed")
                return
            if path.is_file():
                st = path.lstat()
                inner = str(path)
                yield EvidenceFile(self.name, str(self.root), shown, int(st.st_size),
                                   getattr(st, "st_mtime", None), getattr(st, "st_ctime", None),
                                   getattr(st, "st_atime", None), (inner,))
                return
            children = sorted(path.iterdir(), key=lambda p: p.name)
        except Exception as exc:  # noqa: BLE001 - corrupt file system structures are warnings
            warn(shown, f"cannot read: {type(exc).__name__}: {exc}")
            return
        for child in children:
            yield from self._walk(child, f"{rel}/{child.name}", mount, warn, depth + 1)

    @classmethod
    def open_member(cls, member: EvidenceFile) -> BinaryIO:
        try:
            target = _target(member.root)
            inner = target.fs.path(member.locator[0]).open("rb")
        except (EvidenceError, MissingExtraError) as exc:
            raise OSError(str(exc)) from exc
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise OSError(f"cannot read from image: {type(exc).__name__}: {exc}") from exc
        return io.BufferedReader(GuardedStream(inner, member.size))  # type: ignore[return-value]

    def default_host(self) -> str:
        return self.root.stem or "host"
