"""ProxyNotShell (CVE-2022-41040/41082): is the URL-rewrite mitigation in place, and does it matter?

Sends two requests, neither of which can trigger the SSRF:

    GET /autodiscover/autodiscover.json?@exhunt.invalid&Protocol=Autodiscoverv1   (baseline)
    GET /autodiscover/autodiscover.json?@exhunt.invalid&Protocol=Powershell       (trigger)

Why it is safe: the SSRF needs an ``Email=autodiscover/autodiscover.json?@...`` parameter that makes
the front end strip the prefix and forward the rest of the path; these requests carry no ``Email``
parameter and no back-end path, so an unmitigated server handles both as an ordinary anonymous
Autodiscover query (an error or a login challenge). Nothing reaches the PowerShell endpoint.
The trigger matches every published version of Microsoft's mitigation rule
(``.*autodiscover\\.json.*\\@.*Powershell.*`` and the later ``(?=.*autodiscover)(?=.*powershell)``),
whose action aborts the request: a mitigated server drops the connection (or, with a custom rule,
answers 403) to the trigger while answering the baseline.

The baseline is usually not sent: the ProxyShell check's request
(``/autodiscover/autodiscover.json?@x/mapi/nspi/?&Email=...``, see proxyshell.py) has the same
``autodiscover.json?@`` shape, no ``Powershell`` for any mitigation rule to match, and is sent first,
so its complete answer (any status but 403) shows that such requests are answered just as well. Only
when that request got no complete answer (or a 403, or the ProxyShell check is not run) is the
baseline above sent itself.

A dropped trigger is sent once more, at once, on a fresh connection: the same host has just answered
the requests before it, so it is up, and a second drop shows the rule rather than a glitch. Backing
off first (the runner's default for connection failures) bought nothing here and held a worker for
~0.25 s per mitigated host: on a fleet with a fifth mitigated, most of a sweep's wall time. Then the
baseline's request is sent once more (``follow_up``; mitigated hosts only): the rule drops only what
names PowerShell, while a rate limit (IIS Dynamic IP Restrictions' "abort request") or a failing server
drops that too. Without it a rate limit had read as the mitigation.

Verdict: mitigated -> not vulnerable. No mitigation -> depends on the build: vulnerable when the
build table says the build lacks the November 2022 fixes, not vulnerable when it has them, unknown
when the build (or its SU level) is unknown.
"""

from __future__ import annotations

from collections.abc import Mapping

from exhunt.findings.model import HostBuild
from exhunt.probe.checks.base import BLOCKED, ProbeCheck, undecidable
from exhunt.probe.checks.proxyshell import ProxyShellPathConfusion
from exhunt.probe.wire import DISCONNECTED, NOT_VULNERABLE, UNKNOWN, VULNERABLE, Outcome, Reply, RequestSpec

CVES = ("CVE-2022-41040", "CVE-2022-41082")
BASELINE = "/autodiscover/autodiscover.json?@exhunt.invalid&Protocol=Autodiscoverv1"
TRIGGER = "/autodiscover/autodiscover.json?@exhunt.invalid&Protocol=Powershell"
BASELINE_STAND_IN = ProxyShellPathConfusion.requests[0].name


class ProxyNotShellMitigation(ProbeCheck):
    id = "probe.proxynotshell_mitigation"
    title = "ProxyNotShell exposed: unpatched build without the URL-rewrite mitigation (CVE-2022-41040)"
    severity = "high"
    description = ("The server runs a build without the November 2022 fixes for ProxyNotShell and the "
                   "emergency URL-rewrite mitigation does not answer, so authenticated attackers can reach "
                   "remote PowerShell through Autodiscover (exploited since September 2022).")
    cves = CVES
    references = (
        "https://msrc.microsoft.com/blog/2022/09/customer-guidance-for-reported-zero-day-vulnerabilities-in-microsoft-exchange-server/",
        "https://msrc.microsoft.com/update-guide/vulnerability/CVE-2022-41040",
    )
    remediation = (
        "Install the latest CU and SU (Nov 2022 SU or later).",
        "Until then enable Exchange Emergency Mitigation (EEMS) or apply the URL-rewrite rule with EOMT.",
    )
    requests = (
        RequestSpec("proxynotshell-baseline", BASELINE),
        RequestSpec("proxynotshell-trigger", TRIGGER, retries=1, backoff=0.0),
    )

    def follow_up(self, replies: tuple[Reply, ...]) -> RequestSpec | None:
        baseline, trigger = replies[:2]
        if baseline.ok and not trigger.ok and trigger.error == DISCONNECTED:
            return RequestSpec("proxynotshell-recheck", baseline.spec.path, retries=0)
        return None

    def stand_in(self, spec: RequestSpec, sent: Mapping[str, Reply]) -> Reply | None:
        earlier = sent.get(BASELINE_STAND_IN) if spec == self.requests[0] else None
        if earlier is None or not earlier.ok or earlier.incomplete or earlier.status == 403:
            return None
        return earlier

    def classify(self, replies: tuple[Reply, ...], build: HostBuild | None, exchange: bool) -> Outcome:
        baseline, trigger = replies[:2]
        recheck = replies[2] if len(replies) > 2 else None
        if not baseline.ok:
            return self.outcome(UNKNOWN, "no answer to the baseline Autodiscover request "
                                         f"({baseline.describe()})", replies)
        if not exchange:
            return self.outcome(NOT_VULNERABLE, f"not an Exchange server ({baseline.describe()})", replies)
        if baseline.status in BLOCKED:  # the trigger's answer has nothing to differ from
            return self.outcome(UNKNOWN, f"the baseline request was {undecidable(baseline)}", replies)
        if not trigger.ok and trigger.error == DISCONNECTED:
            if recheck is not None and not recheck.ok:
                return self.outcome(UNKNOWN, "the trigger was dropped, and so was the baseline's request sent "
                                             f"again ({recheck.describe()}): a rate limit or a failing server, "
                                             "not the URL-rewrite rule alone", replies)
            return self.outcome(NOT_VULNERABLE, "URL-rewrite mitigation answers: request aborted while the "
                                                f"baseline got {baseline.describe()}", replies)
        if not trigger.ok:
            return self.outcome(UNKNOWN, f"trigger request failed ({trigger.describe()})", replies)
        if trigger.status == 403 and baseline.status != 403:
            return self.outcome(NOT_VULNERABLE, "a blocking rule answers: trigger got HTTP 403 while the "
                                                f"baseline got {baseline.describe()}", replies)
        statuses = {c.cve: c for c in (build.cves if build else ()) if c.cve in CVES}
        shown = build.build if build and build.build else "unknown build"
        if any(c.status == "vulnerable" for c in statuses.values()):
            return self.outcome(VULNERABLE, f"no mitigation answered and {shown} lacks the ProxyNotShell fix",
                                replies)
        if statuses and all(c.status == "fixed" for c in statuses.values()):
            return self.outcome(NOT_VULNERABLE, f"no mitigation needed: {shown} has the ProxyNotShell fix",
                                replies)
        return self.outcome(UNKNOWN, f"no mitigation answered; ProxyNotShell status of {shown} unknown",
                            replies)
