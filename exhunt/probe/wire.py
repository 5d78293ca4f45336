"""What goes over the wire: one request a check wants sent, and what came back (or why nothing did).

Checks and the fingerprint are pure functions of ``Reply`` objects, so they are tested without any
network, and the runner is the only code that talks HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_BODY_CAP = 64 * 1024  # bytes read at most from any response body
HEADER_VALUE_CHARS = 200
EVIDENCE_HEADERS = 24

# Error kinds a Reply can carry instead of a response.
TIMEOUT = "timeout"
CONNECT = "connect"  # refused, unreachable, DNS failure
DISCONNECTED = "disconnected"  # the server closed or reset the connection before a full response head
TLS = "tls"  # handshake or certificate failure
MALFORMED = "malformed"  # not parseable as HTTP/1.1
PROXY = "proxy"


@dataclass(frozen=True)
class RequestSpec:
    """One GET (or HEAD) the probe sends. ``path`` is already percent-encoded and sent verbatim."""

    name: str
    path: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body_cap: int = DEFAULT_BODY_CAP
    retries: int | None = None  # None: the runner's default
    backoff: float | None = None  # seconds before the first retry, doubled after; None: the runner's

    def request_line(self, host: str) -> str:
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {host}"]
        lines += [f"{k}: {v}" for k, v in self.headers]
        return "\n".join(lines)


@dataclass(frozen=True)
class Reply:
    """A response head plus at most ``body_cap`` bytes of body, or an error kind and message."""

    spec: RequestSpec
    status: int | None = None
    reason: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    truncated: bool = False  # the body was longer than the cap and the connection was dropped
    error: str | None = None
    message: str = ""
    attempts: int = 1
    elapsed: float = 0.0
    incomplete: bool = False  # the body broke off (reset, short of its Content-Length): partial bytes

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None

    def header(self, name: str) -> str | None:
        lname = name.lower()
        for k, v in self.headers:
            if k.lower() == lname:
                return v
        return None

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def describe(self) -> str:
        if self.ok:
            return f"HTTP {self.status} {self.reason}".rstrip()
        return f"{self.error}: {self.message}" if self.message else str(self.error)

    def evidence(self, host: str) -> str:
        """Request line and headers, then the response status and headers (values capped)."""
        out = [self.spec.request_line(host), "->"]
        if not self.ok:
            out.append(f"no response ({self.describe()}) after {self.attempts} attempt(s)")
            return "\n".join(out)
        out.append(f"HTTP/1.1 {self.status} {self.reason}".rstrip())
        for k, v in self.headers[:EVIDENCE_HEADERS]:
            out.append(f"{k}: {v[:HEADER_VALUE_CHARS]}")
        if len(self.headers) > EVIDENCE_HEADERS:
            out.append(f"... {len(self.headers) - EVIDENCE_HEADERS} more headers")
        out.append(f"[body: {len(self.body)} bytes read{', truncated at cap' if self.truncated else ''}]")
        return "\n".join(out)

    def to_dict(self, host: str) -> dict[str, Any]:
        return {"request": self.spec.name, "evidence": self.evidence(host), "status": self.status,
                "error": self.error, "attempts": self.attempts, "elapsed": round(self.elapsed, 4)}


@dataclass(frozen=True)
class Outcome:
    """A check's answer for one host: vulnerable | not vulnerable | unknown, with the reason."""

    check: str
    verdict: str
    reason: str
    replies: tuple[Reply, ...] = field(default=(), repr=False)


VULNERABLE = "vulnerable"
NOT_VULNERABLE = "not vulnerable"
UNKNOWN = "unknown"
