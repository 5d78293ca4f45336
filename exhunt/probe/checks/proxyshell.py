"""ProxyShell path confusion (CVE-2021-34473), read-only, as in the public ProxyShell scanners.

Sends exactly one request:

    GET /autodiscover/autodiscover.json?@x/mapi/nspi/?&Email=autodiscover/autodiscover.json%3F@x

Why it is safe: the path confusion makes a vulnerable front end forward the request, as the
machine account, to the back end's ``/mapi/nspi/`` endpoint; a GET there only returns the static
information page that Exchange's MAPI/HTTP handler writes: title and first paragraph
"Exchange MAPI/HTTP Connectivity Endpoint", then ``Version: 15.x.y.z`` (the back end's exact build,
which the fingerprint reads) and ``Vdir Path: /mapi/nspi/``. No MAPI session is opened, no address
book is read, no PowerShell endpoint is touched and nothing is written. A patched server rejects
(400) or redirects (302) the request instead.

Vulnerable: HTTP 200 with that text in the title or the body (the public scanners' matchers look for
the same words). An answer that breaks off before the text could appear is "unknown", never "not
vulnerable".
"""

from __future__ import annotations

from exhunt.findings.model import HostBuild
from exhunt.probe.checks.base import ProbeCheck, failed, undecidable
from exhunt.probe.wire import NOT_VULNERABLE, UNKNOWN, VULNERABLE, Outcome, Reply, RequestSpec

PATH = "/autodiscover/autodiscover.json?@x/mapi/nspi/?&Email=autodiscover/autodiscover.json%3F@x"
MARKER = b"Exchange MAPI/HTTP Connectivity Endpoint"


class ProxyShellPathConfusion(ProbeCheck):
    id = "probe.proxyshell_path"
    title = "ProxyShell path confusion reachable (CVE-2021-34473)"
    severity = "critical"
    description = ("Autodiscover forwards an attacker-chosen back-end path as the Exchange machine account: "
                   "the pre-authentication step of the ProxyShell chain (CVE-2021-34473, -34523, -31207), "
                   "exploited widely since August 2021.")
    cves = ("CVE-2021-34473", "CVE-2021-34523", "CVE-2021-31207")
    references = (
        "https://msrc.microsoft.com/update-guide/vulnerability/CVE-2021-34473",
        "https://www.cisa.gov/news-events/alerts/2021/08/21/urgent-protect-against-active-exploitation-proxyshell-vulnerabilities",
    )
    remediation = (
        "Install the latest CU and SU (the May 2021 SU or later fixes ProxyShell).",
        "Assume compromise if it was exposed after August 2021: look for web shells and new mailbox exports.",
    )
    requests = (RequestSpec("proxyshell-path", PATH),)

    def classify(self, replies: tuple[Reply, ...], build: HostBuild | None, exchange: bool) -> Outcome:
        bad = failed(replies)
        if bad is not None:
            return self.outcome(UNKNOWN, f"no response to the path-confusion request ({bad.describe()})",
                                replies)
        reply = replies[0]
        if reply.status == 200 and MARKER.lower() in reply.body.lower():
            return self.outcome(VULNERABLE, "back-end /mapi/nspi/ page returned to an anonymous client "
                                            f"({reply.describe()})", replies)
        if reply.incomplete:  # the marker may have been in the part that never arrived
            return self.outcome(UNKNOWN, f"the answer broke off after {len(reply.body)} bytes "
                                         f"({reply.describe()})", replies)
        if not exchange:
            return self.outcome(NOT_VULNERABLE, f"not an Exchange front end ({reply.describe()})", replies)
        why = undecidable(reply)
        if why is not None:
            return self.outcome(UNKNOWN, why, replies)
        return self.outcome(NOT_VULNERABLE, f"path confusion rejected ({reply.describe()})", replies)
