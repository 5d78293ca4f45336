"""The probe pipeline, top to bottom: targets -> (resume) -> concurrent probe -> JSON lines -> document.

Printing is the caller's business: ``on_result`` sees each result as it arrives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exhunt.findings.model import AssessmentDocument
from exhunt.probe import output, runner
from exhunt.probe.runner import ProbeOptions
from exhunt.probe.targets import Target


@dataclass
class SweepResult:
    document: AssessmentDocument
    probed: int  # targets probed in this run
    resumed: int  # targets taken from the earlier run's JSON lines
    results: list[dict[str, Any]] = field(default_factory=list, repr=False)


def sweep(targets: list[Target], options: ProbeOptions, jsonl: Path | None = None, resume: bool = False,
          on_result: Callable[[dict[str, Any]], None] | None = None) -> SweepResult:
    options.validate()
    previous: list[dict[str, Any]] = []
    offset: int | None = None
    if resume and jsonl is not None:
        previous, offset = output.load_results(jsonl)
    wanted = {t.origin for t in targets}
    previous = [r for r in previous if r["target"] in wanted]
    done = {r["target"] for r in previous}
    todo = [t for t in targets if t.origin not in done]
    results = list(previous)

    def collect(result: dict[str, Any], write: Callable[[dict[str, Any]], None] | None) -> None:
        results.append(result)
        if write is not None:
            write(result)
        if on_result is not None:
            on_result(result)

    if jsonl is not None:
        with output.JsonlWriter(jsonl, resume_from=offset if resume else None) as writer:
            runner.run(todo, options, lambda r: collect(r, writer.write))
    else:
        runner.run(todo, options, lambda r: collect(r, None))
    return SweepResult(output.document(results), len(todo), len(previous), results)
