"""Artifact families: one module each, tried in this explicit order (first claim wins)."""

from __future__ import annotations

from exhunt.artifacts.base import Artifact, ParseContext
from exhunt.artifacts.clixml import CliXml
from exhunt.artifacts.eventcsv import EventCsv
from exhunt.artifacts.evtx import EvtxLog
from exhunt.artifacts.exchange_logs import ExchangeLog
from exhunt.artifacts.iis import IisLog
from exhunt.artifacts.ndjson import NdjsonEvents
from exhunt.artifacts.oabgenerator import OabGeneratorText
from exhunt.artifacts.webroots import WebPage

ARTIFACTS: tuple[type[Artifact], ...] = (
    EvtxLog, ExchangeLog, IisLog, OabGeneratorText, NdjsonEvents, EventCsv, CliXml, WebPage,
)


def choose(rel_lower: str, head: bytes) -> type[Artifact] | None:
    for artifact in ARTIFACTS:
        if artifact.claims(rel_lower, head):
            return artifact
    return None


__all__ = ["ARTIFACTS", "Artifact", "ParseContext", "choose"]
