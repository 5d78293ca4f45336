"""Correlation rules: counts only inside the timespan, per group, with the events of the window as
evidence. A burst spread wider than the timespan must not fire."""

from __future__ import annotations

from tests.detections.sigma.support import connect_rows, matched, ruleset_from_yaml

BASE = """
title: shell by worker
name: shell_by_worker
logsource: {category: process_creation, product: windows}
detection:
    sel: {Image|endswith: '\\cmd.exe'}
    condition: sel
"""
OTHER = """
title: whoami by worker
name: whoami_by_worker
logsource: {category: process_creation, product: windows}
detection:
    sel: {Image|endswith: '\\whoami.exe'}
    condition: sel
"""


def correlation(kind: str, condition: str, rules: str = "[shell_by_worker]", extra: str = "") -> str:
    return f"""
title: burst
correlation:
    type: {kind}
    rules: {rules}
    group-by: [Computer]
    timespan: 5m
    condition: {condition}
{extra}"""


def proc(ts: str, image: str = "c:\\cmd.exe", computer: str = "ex1", user: str = "u") -> dict:
    return {"kind": "process", "ts": ts, "image": image, "computer": computer, "user": user}


def test_event_count_inside_timespan_fires_with_window_events() -> None:
    rows = [
        proc("2024-01-01T10:00:00Z"),
        proc("2024-01-01T10:02:00Z"),
        proc("2024-01-01T10:04:59Z"),
        proc("2024-01-01T12:00:00Z"),
    ]
    result = matched(connect_rows(rows), ruleset_from_yaml(BASE, correlation("event_count", "{gte: 3}")))
    assert result == {"burst": [1, 2, 3]}


def test_event_count_outside_timespan_does_not_fire() -> None:
    rows = [
        proc("2024-01-01T10:00:00Z"),
        proc("2024-01-01T10:04:00Z"),
        proc("2024-01-01T10:08:00Z"),
        proc("2024-01-01T10:12:00Z"),
    ]
    result = matched(connect_rows(rows), ruleset_from_yaml(BASE, correlation("event_count", "{gte: 3}")))
    assert result == {}


def test_event_count_is_per_group() -> None:
    rows = [
        proc("2024-01-01T10:00:00Z", computer="a"),
        proc("2024-01-01T10:00:01Z", computer="b"),
        proc("2024-01-01T10:00:02Z", computer="a"),
    ]
    assert matched(connect_rows(rows), ruleset_from_yaml(BASE, correlation("event_count", "{gte: 3}"))) == {}
    assert matched(connect_rows(rows), ruleset_from_yaml(BASE, correlation("event_count", "{gte: 2}"))) == {
        "burst": [1, 3]
    }


def test_value_count_counts_distinct_values_in_window() -> None:
    rows = [
        proc("2024-01-01T10:00:00Z", user="a"),
        proc("2024-01-01T10:01:00Z", user="a"),
        proc("2024-01-01T10:02:00Z", user="b"),
        proc("2024-01-01T10:30:00Z", user="c"),
    ]
    fires = ruleset_from_yaml(BASE, correlation("value_count", "{gte: 2, field: User}"))
    assert matched(connect_rows(rows), fires) == {"burst": [1, 2, 3]}
    quiet = ruleset_from_yaml(BASE, correlation("value_count", "{gte: 3, field: User}"))
    assert matched(connect_rows(rows), quiet) == {}


def test_temporal_needs_every_rule_inside_timespan() -> None:
    rules = "[shell_by_worker, whoami_by_worker]"
    near = [proc("2024-01-01T10:00:00Z"), proc("2024-01-01T10:03:00Z", image="c:\\whoami.exe")]
    far = [proc("2024-01-01T10:00:00Z"), proc("2024-01-01T10:06:00Z", image="c:\\whoami.exe")]
    ruleset = ruleset_from_yaml(BASE, OTHER, correlation("temporal", "{gte: 2}", rules))
    assert matched(connect_rows(near), ruleset) == {"burst": [1, 2]}
    ruleset = ruleset_from_yaml(BASE, OTHER, correlation("temporal", "{gte: 2}", rules))
    assert matched(connect_rows(far), ruleset) == {}


def test_referenced_rules_do_not_fire_alone() -> None:
    rows = [proc("2024-01-01T10:00:00Z")]
    assert matched(connect_rows(rows), ruleset_from_yaml(BASE, correlation("event_count", "{gte: 2}"))) == {}


def test_lt_condition_uses_tumbling_windows() -> None:
    rows = [proc("2024-01-01T10:00:30Z"), proc("2024-01-01T10:01:00Z"), proc("2024-01-01T10:07:00Z")]
    result = matched(connect_rows(rows), ruleset_from_yaml(BASE, correlation("event_count", "{lt: 2}")))
    assert result == {"burst": [3]}


def test_temporal_ordered_is_reported_as_unsupported() -> None:
    ruleset = ruleset_from_yaml(
        BASE, OTHER, correlation("temporal_ordered", "{gte: 2}", "[shell_by_worker, whoami_by_worker]")
    )
    assert any("temporal_ordered" in f["reason"] for f in ruleset.failed)


CMD_LINE = """
title: whoami on a command line
name: whoami_cmdline
logsource: {category: process_creation, product: windows}
detection:
    sel: {CommandLine|contains: whoami}
    condition: sel
"""


def test_event_count_counts_an_event_two_rules_match_once() -> None:
    rows = [{**proc("2024-01-01T10:00:00Z"), "command_line": "cmd /c whoami"},
            proc("2024-01-01T11:00:00Z")]
    both = "[shell_by_worker, whoami_cmdline]"
    rules = ruleset_from_yaml(BASE, CMD_LINE, correlation("event_count", "{gte: 2}", both))
    assert matched(connect_rows(rows), rules) == {}
    rows.append(proc("2024-01-01T10:01:00Z"))  # a second event in the window: now it fires
    assert matched(connect_rows(rows), rules) == {"burst": [1, 3]}


def test_events_without_a_group_by_value_are_in_no_group() -> None:
    """Two unrelated events that both lack the field are not "the same computer"."""
    rows = [{**proc("2024-01-01T10:00:00Z"), "computer": None},
            {**proc("2024-01-01T10:01:00Z", image="c:\\whoami.exe"), "computer": None},
            proc("2024-01-01T10:02:00Z", computer="ex1"),
            proc("2024-01-01T10:03:00Z", image="c:\\whoami.exe", computer="ex1")]
    both = "[shell_by_worker, whoami_by_worker]"
    rules = ruleset_from_yaml(BASE, OTHER, correlation("temporal", "{gte: 2}", both))
    assert matched(connect_rows(rows), rules) == {"burst": [3, 4]}
