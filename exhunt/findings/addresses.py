"""Client addresses as indicators: which ones name another machine, worth a block or a shared IOC.

A finding's ``client_ip`` is what the log wrote. The server's own requests (health probes, a
ProxyLogon request relayed to ``localhost``) carry loopback addresses, and some records carry the
unspecified ``0.0.0.0`` or ``::``. Telling a responder to block ``127.0.0.1``, or sharing it as an
indicator, is wrong advice, so these are left out of the block list and the STIX bundle. The
findings themselves keep them, as evidence.
"""

from __future__ import annotations

import ipaddress


def remote_address(value: str | None) -> str | None:
    """``value`` as an IP address that names another machine, with brackets, port and IPv6 zone
    dropped; None for what is no address, a loopback or an unspecified one."""
    text = (value or "").strip()
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.split(":", 1)[0]
    text = text.split("%", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return None if names_no_other_machine(address) else str(address)


def names_no_other_machine(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Loopback or unspecified, an IPv4 address mapped into IPv6 (``::ffff:127.0.0.1``) included."""
    mapped = getattr(address, "ipv4_mapped", None)
    target = mapped if mapped is not None else address
    return bool(target.is_loopback or target.is_unspecified)
