"""Worker hook for the hung-file test: IIS parsing of any file named ``*hang*`` never returns."""

from __future__ import annotations

import time
from typing import Any

from exhunt.artifacts.iis import IisLog

_original = IisLog.parse.__func__  # type: ignore[attr-defined]


def _parse(cls: Any, ctx: Any, stream: Any) -> None:
    if "hang" in ctx.file.rel:
        while True:  # like pyevtx-rs spinning on a corrupt chunk
            time.sleep(1)
    _original(cls, ctx, stream)


def install() -> None:
    IisLog.parse = classmethod(_parse)  # type: ignore[method-assign, assignment]
