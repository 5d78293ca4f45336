"""The floor under ``exhunt scan`` with the libraries it is built on: what the two unavoidable steps
cost on their own, on all cores, with nothing else (no normalizing, no store, no detection, no
report).

* text logs: SHA-256 of every byte (the chain of custody needs it) and every data line read into
  Arrow by Arrow's CSV reader with the options exhunt's fast path uses, header lines cut out by
  ``bytes.find``. (DuckDB's ``read_csv`` per file, header lines as comments, every column summed,
  was tried as the reader and was slower over the whole corpus: 0.89 s against 0.57 s on the
  quick one, its per-query cost on files of a few MB.)
* EVTX: SHA-256 of every byte and every record through the ``evtx`` package as JSON; and the
  triage floor: each file read once, SHA-256, the chunks holding a literal of the loaded rules
  chosen by exhunt's own chunk filter, only those chunks' records through the parser.

It answers "how close to the goal could any pipeline on these libraries get while reading every
line": a goal below this floor cannot be met by tuning exhunt, only by native code or by not
parsing every line.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

READ = 16 << 20
BOM = b"\xef\xbb\xbf"


def _files(root: Path) -> list[Path]:
    found = [p for p in root.rglob("*") if p.is_file()]
    return sorted(found, key=lambda p: p.stat().st_size, reverse=True)  # largest first, as exhunt does


def _segments(data: bytes) -> Iterator[tuple[str | None, bytes]]:
    """(the #Fields line in force, the data lines up to the next header line)."""
    fields: str | None = None
    pos, size = 0, len(data)
    while pos < size:
        if data.startswith(b"#", pos):
            end = data.find(b"\n", pos) + 1 or size
            line = data[pos:end].decode("utf-8", "replace").strip()
            if line.lower().startswith("#fields:"):
                fields = line.split(":", 1)[1].strip()
            pos = end
            continue
        nxt = data.find(b"\n#", pos)
        end = size if nxt < 0 else nxt + 1
        yield fields, data[pos:end]
        pos = end


def _text_log(path: Path) -> tuple[int, int]:
    """(bytes, rows) of one file: hashed whole, every data line parsed when it is a W3C-style log."""
    data = path.read_bytes()
    hashlib.sha256(data)
    if not data.startswith((b"#", BOM + b"#")):
        return len(data), 0
    rows = 0
    for fields, body in _segments(data.removeprefix(BOM)):
        if not fields:
            continue
        sep = "," if "," in fields else " "
        names = fields.split(sep)
        table = pacsv.read_csv(  # the options exhunt's fast path uses (exhunt/artifacts/w3c_fast.py)
            io.BytesIO(body),
            read_options=pacsv.ReadOptions(column_names=names, block_size=1 << 20, use_threads=False),
            parse_options=pacsv.ParseOptions(delimiter=sep, quote_char='"' if sep == "," else False,
                                             double_quote=True, escape_char=False, newlines_in_values=False,
                                             ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
        rows += table.num_rows
    return len(data), rows


def _evtx(path: Path) -> tuple[int, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(READ):
            digest.update(chunk)
            size += len(chunk)
    if path.suffix.lower() != ".evtx":
        return size, 0
    from evtx import PyEvtxParser

    count = 0
    records = PyEvtxParser(str(path)).records_json()
    while True:
        try:
            record = next(records)
        except StopIteration:
            return size, count
        except Exception:  # noqa: BLE001 - a corrupt chunk: go on with the next one, as exhunt does
            continue
        count += len(record["data"]) > 0


def _evtx_triage(path: Path) -> tuple[int, int]:
    """Read once, SHA-256, parse only the chunks ``evtx_chunks.select`` keeps (its literals set by
    the pool's initializer): what a triage scan cannot skip, without verifying, mapping or storing."""
    from evtx import PyEvtxParser

    from exhunt.artifacts import evtx_chunks

    data = path.read_bytes()
    hashlib.sha256(data)
    if path.suffix.lower() != ".evtx":
        return len(data), 0
    selection = evtx_chunks.select(io.BytesIO(data), set())
    source = io.BytesIO(data) if selection is None else selection.data
    if source is None:
        return len(data), 0
    count = 0
    records = PyEvtxParser(source).records_json()
    while True:
        try:
            next(records)
        except StopIteration:
            return len(data), count
        except Exception:  # noqa: BLE001 - a corrupt chunk: go on with the next one, as exhunt does
            continue
        count += 1


def _run(job: Callable[[Path], tuple[int, int]], roots: list[Path], jobs: int,
         initializer: Callable[..., object] | None = None, initargs: tuple = ()) -> tuple[float, int, int]:
    files = [f for root in roots for f in _files(root)]
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs, initializer=initializer, initargs=initargs) as pool:
        # tasks of many small files (33,794 EVTX files of ~137 KB: 4 a task was IPC-bound), few big ones
        results = list(pool.map(job, files, chunksize=max(4, len(files) // (jobs * 64))))
    elapsed = time.perf_counter() - start
    return elapsed, sum(r[0] for r in results), sum(r[1] for r in results)


def text_floor(roots: list[Path], jobs: int | None = None) -> tuple[float, int, int]:
    """(seconds, bytes, rows): SHA-256 and Arrow CSV parse of every text log under ``roots``."""
    return _run(_text_log, roots, jobs or os.cpu_count() or 1)


def evtx_floor(roots: list[Path], jobs: int | None = None) -> tuple[float, int, int]:
    """(seconds, bytes, records): SHA-256 and the ``evtx`` JSON dump of every EVTX file."""
    return _run(_evtx, roots, jobs or os.cpu_count() or 1)


def evtx_triage_floor(roots: list[Path], literals: tuple[str, ...] | None,
                      jobs: int | None = None) -> tuple[float, int, int]:
    """(seconds, bytes, records parsed): the triage floor of every EVTX file under ``roots``."""
    from exhunt.artifacts import evtx_chunks

    return _run(_evtx_triage, roots, jobs or os.cpu_count() or 1, evtx_chunks.configure, (literals,))
