"""Terminal side of a sweep: a rich progress bar and one line per host as results arrive (stderr),
then a tally. stdout stays free for ``--json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from exhunt.findings.model import AssessmentDocument

VERDICT_STYLE = {"vulnerable": "bold red", "unknown": "yellow", "not vulnerable": "green"}


def host_line(result: dict[str, Any]) -> str:
    fp = result.get("fingerprint") or {}
    build = result.get("build") or {}
    if not result.get("reachable"):
        what = f"[dim]unreachable: {escape(str(result.get('error')))}[/]"
    elif not result.get("exchange"):
        what = "[dim]not Exchange[/]"
    else:
        label = " ".join(x for x in (build.get("product"), build.get("cu"), build.get("update")) if x)
        what = f"{escape(label or 'Exchange')} {fp.get('build') or 'build unknown'}"
        if fp.get("confidence"):
            what += f" ({fp['confidence']})"
    vulnerable = [c["check"].removeprefix("probe.") for c in result.get("checks", [])
                  if c["verdict"] == "vulnerable"]
    tail = f"  [bold red]VULNERABLE: {', '.join(vulnerable)}[/]" if vulnerable else ""
    return f"{escape(result['target'])}  {what}{tail}"


class Live:
    """Progress bar plus streamed per-host lines; silent when disabled."""

    def __init__(self, total: int, enabled: bool = True, color: bool = True) -> None:
        self.enabled = enabled
        self.console = Console(stderr=True, no_color=not color, highlight=False)
        self.progress: Progress | None = None
        self.total = total
        self.task = 0

    def __enter__(self) -> Live:
        if self.enabled and self.console.is_terminal:
            self.progress = Progress(TextColumn("probing"), BarColumn(), MofNCompleteColumn(),
                                     TimeRemainingColumn(), console=self.console, transient=True)
            self.progress.__enter__()
            self.task = int(self.progress.add_task("probe", total=self.total))
        return self

    def add(self, result: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.console.print(host_line(result))
        if self.progress is not None:
            self.progress.advance(self.task)  # type: ignore[arg-type]

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(None, None, None)


def print_tally(doc: AssessmentDocument, probed: int, resumed: int, color: bool = True,
                case_dir: Path | None = None) -> None:
    console = Console(stderr=True, no_color=not color, highlight=False)
    summary = doc.rules.get("probe", {})
    console.print(f"{summary.get('targets', 0)} targets ({probed} probed, {resumed} resumed): "
                  f"{summary.get('reachable', 0)} reachable, {summary.get('exchange', 0)} Exchange")
    for check, verdicts in summary.get("verdicts", {}).items():
        parts = ", ".join(f"[{VERDICT_STYLE.get(v, '')}]{n} {v}[/]" for v, n in verdicts.items())
        console.print(f"  {check}: {parts}")
    console.print(f"{len(doc.findings)} finding(s)" + (f"; written to {case_dir}" if case_dir else ""))
