"""``exhunt scan`` options for YARA packs, IOC lists, baselines and the YARA size limit."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from exhunt.cli import scan as scan_cli


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    scan_cli.register(parser.add_subparsers())
    return parser.parse_args(["scan", "ev", *argv])


def test_repeatable_paths_and_size() -> None:
    args = _parse(
        "--yara",
        "a.yar",
        "--yara",
        "packs",
        "--iocs",
        "i.txt",
        "--baseline",
        "b.csv",
        "--yara-max-size",
        "5M",
    )
    assert args.yara == [Path("a.yar"), Path("packs")] and args.iocs == [Path("i.txt")]
    assert args.baseline == [Path("b.csv")] and args.yara_max_size == 5 << 20


@pytest.mark.parametrize(
    "text,value", [("100", 100), ("512K", 512 << 10), ("2g", 2 << 30), ("1.5MB", 3 << 19)]
)
def test_sizes(text: str, value: int) -> None:
    assert _parse("--yara-max-size", text).yara_max_size == value


def test_bad_size_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exc:
        _parse("--yara-max-size", "lots")
    assert exc.value.code == 2


def test_unset_sizes_get_the_scan_defaults() -> None:
    from exhunt.detections.yara import DEFAULT_MAX_SIZE
    from exhunt.parallel.limits import DEFAULT_MEMORY_LIMIT
    from exhunt.parallel.pool import DEFAULT_FILE_TIMEOUT
    from exhunt.parallel.ranges import DEFAULT_SPLIT_SIZE

    args = _parse()
    scan_cli.fill_defaults(args)
    assert (args.yara_max_size, args.split_size, args.memory_limit, args.file_timeout) == (
        DEFAULT_MAX_SIZE, DEFAULT_SPLIT_SIZE, DEFAULT_MEMORY_LIMIT, DEFAULT_FILE_TIMEOUT)
    assert _parse("--split-size", "1M").split_size == 1 << 20
