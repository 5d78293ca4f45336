"""An NTFS folder whose index blocks are damaged lists only part of its files, without an error.

dissect.ntfs skips an index block that does not start with ``INDX`` (``Index.entries`` passes over
its ``BrokenIndexError``): a folder of 190 IIS logs whose one index run was zeroed listed none of
them, and nothing said so. Each in-use block of a walked folder's ``$I30`` index (its ``$BITMAP``
says which are) is checked for that signature here, so the walk can warn that files are missing.

Written here because dissect offers no count of the blocks it skipped.
"""

from __future__ import annotations

from typing import Any

INDEX_NAME = "$I30"
INDEX_ALLOCATION, BITMAP = 0xA0, 0xB0  # NTFS attribute type codes
SIGNATURE = b"INDX"
MAX_BLOCKS = 1 << 16  # a hostile $BITMAP or size cannot make the check read without end


def broken_index_blocks(entry: Any) -> tuple[int, int] | None:
    """(damaged, in use) index blocks of the folder ``entry`` (a dissect.target NTFS filesystem
    entry), or None when it is no NTFS folder with an index allocation or the check cannot run."""
    record = getattr(entry, "entry", None)
    if record is None or not type(record).__module__.startswith("dissect.ntfs"):
        return None
    try:
        from dissect.ntfs.index import Index

        block = int(Index(record, INDEX_NAME).root.bytes_per_index_buffer)
        stream = record.open(INDEX_NAME, INDEX_ALLOCATION)
        bitmap = record.open(INDEX_NAME, BITMAP).read()
        size = int(stream.size)
    except Exception:  # noqa: BLE001 - no allocation (a small folder), or records dissect cannot read
        return None
    if block <= 0:
        return None
    damaged = used = 0
    for number in range(min(size // block, MAX_BLOCKS, len(bitmap) * 8)):
        if not bitmap[number // 8] >> (number % 8) & 1:
            continue
        used += 1
        try:
            stream.seek(number * block)
            ok = stream.read(len(SIGNATURE)) == SIGNATURE
        except Exception:  # noqa: BLE001 - unreadable is damaged
            ok = False
        damaged += not ok
    return damaged, used
