"""Big EVTX files in ranges of whole chunks: a server's one Security.evtx of gigabytes on every core.

An EVTX file was one unit whatever its size, so a 2.8 GB log kept one worker busy while the other
idled (6.8 s on 2 workers against 3.9 s for the same records in 16 files). EVTX chunks are
self-contained (each carries its own string and template tables), so a range of them reads the same
behind the file's header with its chunk count set (``evtx_chunks.synthetic_header``; the parser
counts chunks by the file's size anyway). Each range parses, selects (triage) and verifies its own
chunks, naming them by their numbers in the file (``evtx.parse_chunks``); the file's hashes, its
``files`` row and content scan come from one ``WholeUnit`` beside them, as for a split text log;
``ranges.merge`` sums what the ranges counted.

A cut goes only where the chunk before it is intact (signature and both checksums): the record id
that ends it (its header's) is then what the whole parse had read last there, which a warning about
unreadable records after the cut names. A file whose header is damaged stays whole (the parser's
own reading of that header decides, as in triage), and so does an archive's member, which cannot seek.

Known to differ from a whole parse, in warnings' text only (rows and counts are equal): a chunk whose
checksums both match but whose last records the parser cannot read, right before a cut (the range
names its header's last record id, the whole parse the last one it read), and, in a file whose
chunks repeat the same first record id, a parser error naming no chunk number. Neither was seen in
the shared set; both need crafted files.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

from exhunt.artifacts.evtx import CHUNK, CHUNK_MAGIC, FILE_HEADER, MAGIC, checksums_match
from exhunt.artifacts.evtx_chunks import header_intact, synthetic_header
from exhunt.evidence.base import EvidenceFile
from exhunt.parallel.units import EvtxRangeUnit, file_key, part_name


def plan_evtx_ranges(file: EvidenceFile, host: str, split_size: int) -> list[EvtxRangeUnit]:
    """Ranges of about ``split_size`` bytes of whole chunks when ``file`` is a big EVTX file of a
    source that can seek: a folder, a single file, a disk image's file system (else none: the file is
    parsed whole). No range is under half that size."""
    if file.size <= split_size:
        return []
    try:
        stream = file.open_seekable()
        if stream is None:  # an archive's member: read whole, from its start
            return []
        with stream as f:
            header = f.read(FILE_HEADER)
            if not intact_header(header):
                return []
            size = min(file.size, f.seek(0, 2))
            slots = -(-(size - FILE_HEADER) // CHUNK)  # chunks, a cut last one included
            step = max(2, split_size // CHUNK)
            latest = slots - step // 2  # the last range's first chunk at the latest
            firsts: list[tuple[int, int | None]] = [(0, None)]
            for candidate in range(step, latest + 1, step):
                for first in range(candidate, min(candidate + step // 2, latest + 1)):
                    last = intact_chunk_last_id(f, first - 1)
                    if last is not None:
                        firsts.append((first, last))
                        break
    except OSError:
        return []  # the whole-file unit reports it
    units = []
    for index, (first, last_before) in enumerate(firsts):
        end_chunk = firsts[index + 1][0] if index + 1 < len(firsts) else slots
        start = FILE_HEADER + first * CHUNK
        end = min(size, FILE_HEADER + end_chunk * CHUNK)
        units.append(EvtxRangeUnit(host, file, index, first, start, end,
                                   synthetic_header(header, end_chunk - first), last_before,
                                   part_name(host, file_key(file), "evtx-range", str(index)),
                                   struct.unpack_from("<H", header, 42)[0], index == len(firsts) - 1))
    return units


def intact_header(header: bytes) -> bool:
    return len(header) == FILE_HEADER and header.startswith(MAGIC) and header_intact(header)


def intact_chunk_last_id(f: BinaryIO, number: int) -> int | None:
    """The last record id of chunk ``number`` when it is whole and intact, else None."""
    f.seek(FILE_HEADER + number * CHUNK)
    chunk = f.read(CHUNK)
    if len(chunk) < CHUNK or not chunk.startswith(CHUNK_MAGIC) or not all(checksums_match(chunk, 0)):
        return None
    return int(struct.unpack_from("<Q", chunk, 32)[0])
