"""A Sigma hit's indicators hold values, never the placeholders Windows and IIS write for none."""

from __future__ import annotations

from exhunt.detections.sigma.engine import _hit


def test_placeholder_values_are_no_indicators() -> None:
    row = {"host": "h", "path": "Security.evtx", "source": "evtx", "ts": None, "line": None, "record_id": 7,
           "excerpt": "", "ioc_client_ip": "-", "ioc_user": "svc01", "ioc_user_agent": "", "ioc_image": None,
           "ioc_parent_image": "C:\\w3wp.exe"}
    assert _hit("sigma:x", row, "high").indicators == {"user": "svc01", "parent_image": "C:\\w3wp.exe"}
