"""Which client addresses name another machine (a block list's or a shared indicator's)."""

from __future__ import annotations

import pytest

from exhunt.findings.addresses import remote_address


@pytest.mark.parametrize(("value", "expected"), [
    ("203.0.113.9", "203.0.113.9"), ("203.0.113.9:443", "203.0.113.9"), ("[2001:db8::7]:443", "2001:db8::7"),
    ("fe80::1%12", "fe80::1"), ("10.0.0.5", "10.0.0.5"),  # an internal machine can be the attacker's
    ("127.0.0.1", None), ("::1", None), ("0.0.0.0", None), ("::", None), ("::ffff:127.0.0.1", None),
    ("-", None), ("", None), (None, None), ("localhost", None), ("not an address", None),
])
def test_remote_address(value: str | None, expected: str | None) -> None:
    assert remote_address(value) == expected
