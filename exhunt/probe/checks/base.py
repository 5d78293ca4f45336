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

    def follow_up(self, replies: tuple[Reply, ...]) -> RequestSpec | None:
        """One more request this check needs after its own were answered (``replies``), or None (the
        default): only where the answers so far cannot tell two causes apart."""
        return None

    def outcome(self, verdict: str, reason: str, replies: tuple[Reply, ...]) -> Outcome:
        return Outcome(self.id, verdict, reason, replies)


def failed(replies: tuple[Reply, ...]) -> Reply | None:
    """The first reply that got no response at all."""
    return next((r for r in replies if not r.ok), None)


BLOCKED = (403, 429, 503)  # refused or throttled in front of the application (a WAF, a rate limit)


def undecidable(reply: Reply) -> str | None:
    """Why an answer tells nothing about the check, or None: a block or throttle in front of the
    application (a WAF's 403 had read as "patched"), or a body encoded though the probe asked for
    none (a proxy that compresses anyway: the marker cannot be seen)."""
    if reply.status in BLOCKED:
        return f"blocked or throttled before the application could answer ({reply.describe()})"
    encoding = (reply.header("Content-Encoding") or "").strip().lower()
    if encoding and encoding != "identity":
        return f"a {encoding}-encoded body the probe did not ask for and cannot read ({reply.describe()})"
    return None
