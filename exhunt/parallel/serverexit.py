"""The fork server's exit without the interpreter's teardown (imported by it alone: ``startmethod.PRELOAD``).

The command line stops the fork server as its scan ends and waits for it (``startmethod.stop``), so
the server's exit is on the scan's critical path. Its teardown (every module of the scan machinery
freed, pyarrow's and yara-x's finalizers run) took 40 ms on a quiet machine and 80-140 ms under
load, for a process that holds no file or buffer anyone reads: ``os._exit`` ends it in ~4 ms. Its
workers end with ``os._exit`` already (multiprocessing's forked children do), so only the server's
own exit changes. Imported anywhere else (the scan process imports it for the test), it does nothing.
"""

from __future__ import annotations

import atexit
import os
import sys
from multiprocessing import forkserver


def imported_by_fork_server() -> bool:
    """Whether the module is being imported by the fork server's ``main`` (its preload list)."""
    frame = sys._getframe(1)
    server = forkserver.main.__code__
    while frame is not None:
        if frame.f_code is server:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


if imported_by_fork_server():
    atexit.register(os._exit, 0)
