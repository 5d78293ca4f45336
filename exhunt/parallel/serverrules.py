"""The scan's YARA rules loaded once in the fork server, before it forks any worker.

Each worker used to deserialise the scan's compiled rules itself (yara-x: 0.10 s for the
signature-base pack, 6 ms for exhunt's own), both workers at once while the scan process listed the
evidence: three processes on two cores at the start of every scan with a user pack. The fork server
loads them instead (``prestart`` names the scan's packs in ``ENV`` when it starts the server): only
from the rule cache, never compiling (the scan process compiles on a miss, as before), without IOC
lists (see ``_load``), and once; the
workers share the loaded rules copy-on-write and build their scanners from them in microseconds.
A worker whose configuration ships other rules (a later scan in the same process, rules changed on
disk meanwhile) finds no match in ``PRELOADED`` and deserialises its own, as before.

Imported in the fork server (``startmethod.PRELOAD``); never raises: a failure leaves ``PRELOADED``
empty and the workers load their rules themselves."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

ENV = "EXHUNT_SERVER_RULES"  # JSON: {"yara": [paths], "iocs": [paths]}

# (compiled blob, its yara_x.Rules): the scan's rules, and exhunt's own pack (page views) when not the same
PRELOADED: list[tuple[bytes, Any]] = []


def request(yara: list[Path], iocs: list[Path]) -> str:
    """The ``ENV`` value naming a scan's packs, as the scan names them (a rule's origin is part of the
    cache key; the server starts in the scan process's working folder)."""
    return json.dumps({"yara": [str(p) for p in yara], "iocs": [str(p) for p in iocs]})


def rules_for(blob: bytes) -> Any:
    """The server's loaded rules for this compiled blob, or None."""
    for loaded, rules in PRELOADED:
        if loaded == blob:
            return rules
    return None


def _load(spec: str) -> None:
    """The scan's rules and exhunt's own pack (page views), from the cache. Not the scan's rules with
    IOC lists: their rules' cache key needs every list read (the shared feeds: 0.17 s with the
    imports), longer than the deserialising it would save on the server's way to its first fork."""
    import yara_x

    from exhunt.detections.yara import cached_rules

    wanted = json.loads(spec)
    yara = [Path(p) for p in wanted.get("yara", ())]
    blobs = [cached_rules(yara) if yara and not wanted.get("iocs") else None, cached_rules()]  # [] is own's
    for blob in blobs:
        if blob is not None and rules_for(blob) is None:
            PRELOADED.append((blob, yara_x.Rules.deserialize_from(io.BytesIO(blob))))


def _load_requested() -> None:
    spec = os.environ.get(ENV)
    if spec:
        try:
            _load(spec)
        except Exception:  # noqa: BLE001 - the server must start whatever the packs hold; workers load their own
            PRELOADED.clear()


_load_requested()
