"""What every bench script shares: one line describing the machine, the shared data, bytecode compiled before timing."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def machine() -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def shared_data() -> Path:
    """The reference data folder (../shared/data beside the checkout, or $EXHUNT_SHARED_DATA)."""
    root = Path(__file__).resolve().parent.parent
    shared = Path(os.environ.get("EXHUNT_SHARED_DATA", root.parent / "shared" / "data"))
    return shared if shared.exists() else Path("/work/shared/data")


def compile_bytecode() -> None:
    """exhunt's modules compiled to ``__pycache__`` before anything is timed, as an installed wheel's
    are at install time: with ``PYTHONDONTWRITEBYTECODE`` set (as on the bench machine) a source
    checkout is otherwise compiled again by every run, in the scan process and in the fork server
    (149 modules: ~0.1 CPU s per process on the pages row), a cost no user's installed exhunt pays."""
    import compileall

    compileall.compile_dir(str(Path(__file__).resolve().parent.parent / "exhunt"), quiet=1)
