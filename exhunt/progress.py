"""Rich progress on stderr, off when stderr is not a terminal or with --quiet."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when a bar is shown: before its workers start, a scan has no bar to draw
    from rich.progress import Progress as RichProgress


class Progress:
    """A byte-based progress bar that degrades to nothing; never writes to stdout."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._rich: RichProgress | None = None

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, TextColumn, TimeRemainingColumn, TransferSpeedColumn
            from rich.progress import Progress as RichProgress

            self._rich = RichProgress(
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                TimeRemainingColumn(), console=Console(stderr=True), transient=True,
            )
            self._rich.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._rich is not None:
            self._rich.__exit__(*exc)

    def task(self, description: str, total: float | None) -> int:
        return int(self._rich.add_task(description, total=total)) if self._rich else 0

    def advance(self, task: int, amount: float) -> None:
        if self._rich is not None:
            self._rich.advance(task, amount)  # type: ignore[arg-type]
