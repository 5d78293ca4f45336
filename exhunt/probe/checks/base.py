"""A remote check: metadata for its findings, the requests it sends, and a pure ``classify``.

Every check module documents, in its docstring, exactly what it sends and why that is safe: only
GET requests of fixed paths, no credentials, no request body, nothing that creates, changes or
deletes state on the server, and no redirect is followed (the probe never leaves the target).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from exhunt.findings.model import HostBuild
from exhunt.probe.wire import Outcome, Reply, RequestSpec


class ProbeCheck:
    id: ClassVar[str]
    title: ClassVar[str]
    severity: ClassVar[str]
    description: ClassVar[str]
    cves: ClassVar[tuple[str, ...]] = ()
    references: ClassVar[tuple[str, ...]] = ()
    remediation: ClassVar[tuple[str, ...]] = ()
    requests: ClassVar[tuple[RequestSpec, ...]]

    def classify(self, replies: tuple[Reply, ...], build: HostBuild | None, exchange: bool) -> Outcome:
        """``replies`` are in ``requests`` order; ``exchange`` says whether any reply looked like Exchange."""
        raise NotImplementedError

    def stand_in(self, spec: RequestSpec, sent: Mapping[str, Reply]) -> Reply | None:
        """An answer this host already gave (``sent``: by request name) that serves as ``spec``'s, so
        that ``spec`` is not sent at all; None (the default) sends it. Fewer requests per host is most
        of the probe's speed: only return one whose answer proves exactly what ``spec``'s would."""
        return None

    def outcome(self, verdict: str, reason: str, replies: tuple[Reply, ...]) -> Outcome:
        return Outcome(self.id, verdict, reason, replies)


def failed(replies: tuple[Reply, ...]) -> Reply | None:
    """The first reply that got no response at all."""
    return next((r for r in replies if not r.ok), None)
