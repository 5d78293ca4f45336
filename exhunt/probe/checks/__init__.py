"""Registry of remote checks, run in this order against every target after the fingerprint."""

from __future__ import annotations

from exhunt.probe.checks.base import ProbeCheck
from exhunt.probe.checks.proxylogon import ProxyLogonSsrf
from exhunt.probe.checks.proxynotshell import ProxyNotShellMitigation
from exhunt.probe.checks.proxyshell import ProxyShellPathConfusion

CHECKS: tuple[ProbeCheck, ...] = (ProxyLogonSsrf(), ProxyShellPathConfusion(), ProxyNotShellMitigation())

__all__ = ["CHECKS", "ProbeCheck"]
