"""Native checks, one module per campaign; ``CHECKS`` is the explicit registry."""

from __future__ import annotations

from exhunt.detections.base import Check
from exhunt.detections.checks import postexploit, proxylogon, vulnerable_build, webshells

CHECKS: tuple[type[Check], ...] = (
    proxylogon.SsrfAnchorMailbox,
    proxylogon.SsrfStaticResourcePost,
    proxylogon.EcpVirtualDirectoryScript,
    proxylogon.EcpResetVirtualDirectory,
    proxylogon.OabGeneratorDownloadFailed,
    webshells.WebShellByPlacement,
    webshells.OabExportWithScript,
    webshells.WebShellRequests,
    postexploit.LsassDump,
    postexploit.StagedArchive,
    vulnerable_build.VulnerableBuild,
)
