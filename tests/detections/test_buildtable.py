"""parse_build: every accepted spelling, garbage, and a property test."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exhunt.detections.buildtable import Build, parse_build
from exhunt.errors import UsageError

ACCEPTED = [
    ("15.2.792.10", Build(15, 2, 792, 10)),
    ("15.02.0792.010", Build(15, 2, 792, 10)),
    ("Version 15.2 (Build 792.10)", Build(15, 2, 792, 10)),
    ("version 15.1 (build 2375.7)", Build(15, 1, 2375, 7)),
    ("  Version   15.2  ( Build 986.5 ) ", Build(15, 2, 986, 5)),
    ("15.1.2176", Build(15, 1, 2176, None)),
    ("15.01.2176", Build(15, 1, 2176, None)),
    (" 15.1.2375.7\n", Build(15, 1, 2375, 7)),
    ("15 . 2 . 1118 . 25", Build(15, 2, 1118, 25)),
    ("14.03.0513.000", Build(14, 3, 513, 0)),
]
GARBAGE = ["", "   ", "garbage", "15", "15.2", "15.2.792.10.1", "15.2.x.10", "v15.2.792.10", "15.2.792.",
           "Version 15.2", "Version 15.2 (Build 792)", "15.2.792.10abc", "１５.2.792.10", "15.2.999999.1",
           "15.2.792.99999", "100.2.792.1", "15,2,792,10", "15.2.792.10 15.2.792.11", "\x00"]


@pytest.mark.parametrize(("text", "expected"), ACCEPTED)
def test_accepted_spellings(text: str, expected: Build) -> None:
    assert parse_build(text) == expected


@pytest.mark.parametrize("text", GARBAGE)
def test_garbage_is_one_line_usage_error(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_build(text)
    assert "\n" not in str(info.value) and "not an Exchange build number" in str(info.value)


def test_order_and_forms() -> None:
    cu_only, base, su = parse_build("15.2.1118"), parse_build("15.2.1118.7"), parse_build("15.2.1118.25")
    assert cu_only < base < su < parse_build("15.2.1258.12")
    assert sorted([su, cu_only, base]) == [cu_only, base, su]
    assert str(su) == "15.2.1118.25" and su.long == "15.02.1118.025" and cu_only.long == "15.02.1118"
    assert cu_only.cu_only and not su.cu_only and su.line == cu_only.line
    assert parse_build("15.01.2375.007") == parse_build("15.1.2375.7")


builds = st.builds(Build, st.integers(0, 99), st.integers(0, 99), st.integers(0, 99999),
                   st.none() | st.integers(0, 9999))


@given(builds)
def test_round_trip(build: Build) -> None:
    assert parse_build(str(build)) == build
    assert parse_build(build.long) == build
    if build.revision is not None:
        admin = f"Version {build.major}.{build.minor} (Build {build.build}.{build.revision})"
        assert parse_build(admin) == build


@given(st.text(max_size=40))
def test_never_raises_anything_but_usage_error(text: str) -> None:
    try:
        result = parse_build(text)
    except UsageError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(result, Build)
        assert parse_build(str(result)) == result
