"""ProxyLogon SSRF (CVE-2021-26855), the same test as the public nmap ``http-vuln-cve2021-26855``.

Sends exactly one request:

    GET /owa/auth/x.js HTTP/1.1
    Cookie: X-AnonResource=true; X-AnonResource-Backend=localhost/ecp/default.flt?~3;
            X-BEResource=localhost/owa/auth/logon.aspx?~3

Why it is safe: it is an anonymous GET of a static-resource path; the cookies only ask the front
end to fetch the OWA logon page (itself an anonymous, read-only page) from the host named
``localhost``. No authentication, no body, no ECP/EWS action, nothing is written. A vulnerable
front end honours the cookie and says so in the ``X-CalculatedBETarget`` response header; a
patched one ignores it.
"""

from __future__ import annotations

from exhunt.findings.model import HostBuild
from exhunt.probe.checks.base import ProbeCheck, failed, undecidable
from exhunt.probe.wire import NOT_VULNERABLE, UNKNOWN, VULNERABLE, Outcome, Reply, RequestSpec

COOKIE = ("X-AnonResource=true; X-AnonResource-Backend=localhost/ecp/default.flt?~3; "
          "X-BEResource=localhost/owa/auth/logon.aspx?~3")


class ProxyLogonSsrf(ProbeCheck):
    id = "probe.proxylogon_ssrf"
    title = "ProxyLogon SSRF reachable (CVE-2021-26855)"
    severity = "critical"
    description = ("The Exchange front end honours X-BEResource cookies from anonymous clients and proxies "
                   "to a back end the client names: the unauthenticated entry point of the ProxyLogon chain, "
                   "exploited at scale since March 2021.")
    cves = ("CVE-2021-26855",)
    references = (
        "https://msrc.microsoft.com/update-guide/vulnerability/CVE-2021-26855",
        "https://github.com/microsoft/CSS-Exchange/tree/main/Security",
    )
    remediation = (
        "Install the latest CU and SU now; until then restrict the server to trusted networks.",
        "Assume compromise if it was exposed after 2021-03-02: run exhunt scan on its logs and web folders.",
    )
    requests = (RequestSpec("proxylogon-ssrf", "/owa/auth/x.js", headers=(("Cookie", COOKIE),)),)

    def classify(self, replies: tuple[Reply, ...], build: HostBuild | None, exchange: bool) -> Outcome:
        bad = failed(replies)
        if bad is not None:
            return self.outcome(UNKNOWN, f"no response to the SSRF request ({bad.describe()})", replies)
        reply = replies[0]
        target = reply.header("X-CalculatedBETarget")
        if target is not None and "localhost" in target.lower():
            return self.outcome(VULNERABLE, f"front end routed to the cookie's back end "
                                            f"(X-CalculatedBETarget: {target[:80]})", replies)
        if not exchange:
            return self.outcome(NOT_VULNERABLE, f"not an Exchange front end ({reply.describe()}, "
                                                "no Exchange headers)", replies)
        why = undecidable(reply)
        if why is not None:
            return self.outcome(UNKNOWN, why, replies)
        if target is None and reply.status == 500:  # what a vulnerable front end answers, less the header
            return self.outcome(UNKNOWN, f"the front end failed on the cookie's back end ({reply.describe()}) but "
                                         "sent no X-CalculatedBETarget header to tell (a proxy may strip it)", replies)
        shown = f"X-CalculatedBETarget: {target[:80]}" if target else "no X-CalculatedBETarget header"
        return self.outcome(NOT_VULNERABLE, f"cookie back end ignored ({reply.describe()}, {shown})", replies)
