"""The end of an ``exhunt scan`` process without the interpreter's teardown.

A scan process ends holding DuckDB, pyarrow, yara-x, Hyperscan and a frozen heap of tens of
thousands of objects; Python's teardown of all that (modules freed, finalizers, a last collection)
took 0.09-0.4 s after the summary was printed, on the critical path of every scan (20,000 pages,
2 cores), for nothing anyone reads. ``os._exit`` ends it in ~15 ms once stdout and stderr are
flushed. Only where nothing can be lost: the scan's own resources are closed by then (store
writers, pools, the fork server, DuckDB, temp folders), and a thread or child process still alive
(a plugin's, a library's) means the ordinary exit, which waits for them.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading

COMMANDS = ("scan",)  # the commands whose every resource is closed before they return


def safe() -> bool:
    """No other non-daemon thread and no child process left: nothing the ordinary exit would wait for."""
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    return not others and not multiprocessing.active_children()


def end(code: int) -> None:
    """Flush the standard streams and end the process with ``code`` (returns when it is not ``safe``
    or a stream cannot be flushed: the caller exits the ordinary way)."""
    if not safe():
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe or stream: the ordinary exit reports it as before
        return
    os._exit(code)
