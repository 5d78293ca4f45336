"""The web-shell request check's prefilter: every line whose uri the query could keep is stored, and
the known pages in their home (the OWA logon page: nearly every line the old pattern stored) are
not."""

from __future__ import annotations

import random
import re

from exhunt.artifacts.linefilter import LineSelector, compile_patterns
from exhunt.detections.checks.webshells import KNOWN_URL_HOME_RE, URL_FOLDER_RE, WebShellRequests, known_web_files
from tests.detections.test_tunnels import httpproxy_line, iis_line

FOLDERS = ["/owa/auth/", "/ecp/auth/", "/aspnet_client/", "/oab/", "/owa/", "/ecp/", "/owa/auth/15.1.2176/",
           "/aspnet_client/system_web/", "/owa/auth/current/themes/resources/"]
EXTENSIONS = ["aspx", "ashx", "asmx", "asp", "js", "asax", "aspx.bak"]


def query_keeps(uri: str) -> bool:
    """The check's WHERE clause on one uri (webshells.WebShellRequests.sql)."""
    low = uri.lower()
    if not re.search(URL_FOLDER_RE, low):
        return False
    name = low.rsplit("/", 1)[-1]
    return not (name in known_web_files() and re.search(KNOWN_URL_HOME_RE, low))


def _uris(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    stems = [n.rsplit(".", 1)[0] for n in known_web_files()] + ["shell", "x", "", "logo", "logonn", "errorfe2"]
    out = []
    for _ in range(count):
        if rng.random() < 0.2:  # a known page in its home, as most Exchange logs are full of
            uri = rng.choice(FOLDERS[:2]) + rng.choice(known_web_files())
            out.append(uri.upper() if rng.random() < 0.2 else uri)
            continue
        stem = list(rng.choice(stems) + rng.choice(["", "", "1", "_", "-a"]))
        if stem and rng.random() < 0.2:
            del stem[rng.randrange(len(stem))]
        uri = rng.choice(FOLDERS) + "".join(stem) + "." + rng.choice(EXTENSIONS)
        out.append(uri.upper() if rng.random() < 0.2 else uri)
    return out


def test_every_uri_the_query_keeps_is_selected_and_known_pages_at_home_are_not() -> None:
    selector = LineSelector(compile_patterns(WebShellRequests.prefilter or ()).blob)
    kept = dropped = 0
    for uri in _uris(4000, 21):
        row = {"method": "GET", "uri": uri, "client_ip": "203.0.113.9", "user_agent": "Mozilla/5.0 (x)",
               "uri_query": "a=/b.aspx"}
        for line in (iis_line(row), httpproxy_line(row)):
            selected = bool(selector.spans(line + b"\r\n"))
            if query_keeps(uri):
                kept += 1
                assert selected, line
            elif re.search(r"^/(owa|ecp)/auth/[^/]+\.aspx$", uri.lower()):
                dropped += 1
                assert not selected, line
    assert kept > 500 and dropped > 500
