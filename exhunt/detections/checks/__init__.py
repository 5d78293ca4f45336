"""Native checks, one module per campaign; ``CHECKS`` is the explicit registry."""

from __future__ import annotations

from exhunt.detections.base import Check
from exhunt.detections.checks import (
    cve_2020_0688,
    exchange_config,
    mailflow,
    owassrf,
    postexploit,
    proxylogon,
    proxynotshell,
    proxyshell,
    proxytoken,
    tunnels,
    vulnerable_build,
    webshells,
)

CHECKS: tuple[type[Check], ...] = (
    proxylogon.SsrfAnchorMailbox,
    proxylogon.SsrfBackendCookie,
    proxylogon.SsrfStaticResourcePost,
    proxylogon.EcpVirtualDirectoryScript,
    proxylogon.EcpResetVirtualDirectory,
    proxylogon.OabGeneratorDownloadFailed,
    webshells.WebShellByPlacement,
    webshells.OabExportWithScript,
    webshells.WebShellRequests,
    tunnels.TunnelRequests,
    tunnels.TunnelTraffic,
    postexploit.LsassDump,
    postexploit.StagedArchive,
    proxyshell.ProxyShellAutodiscover,
    proxyshell.ProxyShellPowerShellSystem,
    proxyshell.MailboxExportToWebFolder,
    proxyshell.MailboxImportExportRole,
    proxynotshell.ProxyNotShellAutodiscover,
    owassrf.OwaPowerShell,
    proxytoken.ProxyTokenInboxRule,
    cve_2020_0688.EcpViewState,
    vulnerable_build.VulnerableBuild,
    mailflow.InboxRuleForwarding,
    mailflow.MailboxForwarding,
    mailflow.InboxRuleHiding,
    exchange_config.MailboxExportRequest,
    exchange_config.MailboxExportCmdlet,
    exchange_config.MailboxPermissionGrant,
    exchange_config.ImpersonationRole,
)
