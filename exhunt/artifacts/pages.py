"""Which file names are server-side code in a web root: one list, with why each member is on it.

The web-root artifact, the content heuristics, the normalised page scan and the known-good baseline
comparison all ask "is this a page?"; they used four lists with different members.
"""

from __future__ import annotations

# Files IIS hands to ASP.NET or classic ASP and runs on the server: a web shell is one of them.
SERVER_PAGES = (
    ".aspx",  # Web Forms page: China Chopper and most public shells
    ".ashx",  # generic handler
    ".asmx",  # web service (ASMX shells, EWS's own Exchange.asmx)
    ".asp",  # classic ASP page
    ".asa",  # classic ASP application file (global.asa runs on application events)
    ".asax",  # Global.asax: runs on every request of the application
    ".ascx",  # user control: compiled and run inside the pages that use it
    ".master",  # master page: likewise
    ".svc",  # WCF service endpoint
    ".cshtml",  # Razor view (C#)
    ".vbhtml",  # Razor view (VB)
)
# web.config registers handlers and holds the machine keys (CVE-2020-0688): read like a page.
PAGES_AND_CONFIG = (*SERVER_PAGES, ".config")
# What the pages load, compared against known-good baselines too: scripts and assemblies.
WEB_CODE = (*PAGES_AND_CONFIG, ".js", ".dll")
