"""Sigma through pySigma: a DuckDB backend, YAML pipelines onto the events schema, an engine.

``sigma_engine`` is the entry registered in ``exhunt.detections.runner.ENGINES``: exhunt's own
pack (exhunt/data/sigma/rules) plus every ``--sigma PATH`` file or folder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from exhunt.findings.model import Finding

if TYPE_CHECKING:
    import duckdb


def sigma_engine(
    con: duckdb.DuckDBPyConnection, context: Any, hit_rows: list[dict]
) -> tuple[list[Finding], dict[str, Any]]:
    from exhunt.detections.sigma.engine import run

    return run(con, list(getattr(context, "sigma", []) or []), True, hit_rows, int(getattr(context, "jobs", 1) or 1))


__all__ = ["sigma_engine"]
