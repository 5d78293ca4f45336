"""``--memory-limit``: one number for the whole scan, turned into worker count, chunk and DuckDB sizes.

The parse never holds more than a few chunks per worker (read chunk, Arrow table, DuckDB result,
Parquet row group), so peak memory is about ``PARENT + jobs * (WORKER_BASE + CHUNK_COPIES * chunk)``
whatever the evidence size. A worker after its imports and the compiled YARA pack is ~100 MB
(measured: ru_maxrss 96 MB); the budget keeps a margin on top of that. Fewer workers are started
when the limit cannot hold all of them with at least a 1 MiB chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20
DEFAULT_MEMORY_LIMIT = 1 << 30
PARENT = 200 * MIB  # the scan process: plan, manifest, pool bookkeeping, progress
WORKER_BASE = 120 * MIB  # interpreter + duckdb + pyarrow + yara-x rules
CHUNK_COPIES = 8  # read chunk + carry, Arrow table, DuckDB result, Parquet buffers, JSON fields
MIN_CHUNK, MAX_CHUNK = 1 * MIB, 16 * MIB


@dataclass(frozen=True)
class Budget:
    jobs: int
    chunk: int  # W3C engine read size
    duckdb: str  # per-worker DuckDB memory_limit
    batch_bytes: int  # bytes of small files per store part
    yara_max: int  # files above this are hashed but not held in memory for YARA


# of what the parent does not need itself (DuckDB's limit covers only its buffer pool). 0.75 let the
# 1M-record EVTX scan with --index full and the SigmaHQ pack peak at 1,029-1,033 MiB for the process
# tree under --memory-limit 1G; 0.7: 986-995 MiB, that scan 1.5% slower, the 2 GB text one unchanged
QUERY_SHARE = 0.7


def query_memory(limit: int) -> str:
    """DuckDB's limit for the detections, which run in the scan process after the workers ended.
    Not all of the rest: query results turned into Python rows, the findings and DuckDB's own
    allocations outside its buffer pool come on top (measured: a limit of limit - PARENT let the
    1M-record EVTX scan peak at 1,025 MiB under --memory-limit 1G; see ``QUERY_SHARE``)."""
    return f"{max(128 * MIB, int((limit - PARENT) * QUERY_SHARE)) // MIB}MB"


def budget(limit: int, jobs: int) -> Budget:
    spare = max(0, limit - PARENT)
    fits = max(1, spare // (WORKER_BASE + CHUNK_COPIES * MIN_CHUNK))
    jobs = max(1, min(jobs, fits))
    per_worker = spare // jobs - WORKER_BASE
    chunk = max(MIN_CHUNK, min(MAX_CHUNK, (per_worker // CHUNK_COPIES) // MIB * MIB))
    duckdb_mb = max(64, per_worker // 2 // MIB)
    return Budget(jobs=jobs, chunk=chunk, duckdb=f"{duckdb_mb}MB", batch_bytes=max(4 * MIB, 4 * chunk),
                  yara_max=max(MIN_CHUNK, per_worker // 2))
