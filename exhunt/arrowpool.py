"""Arrow's memory pool for the command line's processes: jemalloc on Linux, not pyarrow's mimalloc.

Under mimalloc the kernel zeroes fresh huge pages on first touch: on the 20,000-page benchmark perf
put 12% of the whole scan's CPU in ``clear_page_erms``, and the scan process's first big Arrow write
(the manifest) took 0.1-0.6 s instead of 0.02 s. With jemalloc the scan took 4.5 against 5.0 CPU s
and half the system time (issue 19). ``pa.set_memory_pool`` is not enough: Parquet and compute
kernels allocate from the C++ default pool, which only ``ARROW_DEFAULT_MEMORY_POOL`` chooses, and
only before pyarrow loads; worker processes inherit it. Linux wheels have jemalloc; elsewhere
(Windows wheels have none) pyarrow's default stays."""

from __future__ import annotations

import os
import sys

VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"


def prefer_jemalloc() -> bool:
    """Choose jemalloc for this process and its children unless pyarrow is loaded already, the user
    chose a pool, or this is not Linux. True when it chose."""
    if sys.platform != "linux" or "pyarrow" in sys.modules or os.environ.get(VARIABLE):
        return False
    os.environ[VARIABLE] = "jemalloc"
    return True


BLAS_THREADS = "OPENBLAS_NUM_THREADS"


def single_thread_blas() -> bool:
    """pyarrow imports numpy when it is installed (exhunt counts bytes with it), and numpy loads
    OpenBLAS, which starts a thread per core at import (~0.05 CPU s in every process: the scan
    process, the fork server). exhunt does no linear algebra: one thread, unless the user chose, and
    only before numpy loads. True when it chose."""
    if "numpy" in sys.modules or os.environ.get(BLAS_THREADS):
        return False
    os.environ[BLAS_THREADS] = "1"
    return True
