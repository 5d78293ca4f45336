"""Sigma correlation rules (event_count, value_count, temporal) as DuckDB window queries.

Semantics, chosen to be exact for what the rules mean:

* the events are those matched by the referenced rules (each tagged with its rule name), grouped
  by ``group-by`` (aliases resolved per rule), rows without a timestamp left out, and rows without
  a value for a ``group-by`` field too (a missing user is nobody's, not one shared "empty" user);
* ``event_count`` counts events, not matches: an event two referenced rules match counts once;
* for ``gt``/``gte`` conditions a window of ``timespan`` starts at every event
  (``RANGE BETWEEN CURRENT ROW AND <timespan> FOLLOWING``): the rule fires when some window holds
  enough events (``event_count``), distinct values (``value_count``) or distinct referenced rules
  (``temporal``). Events further apart than the timespan never share a window, so they never fire
  together, however many there are;
* for ``lt``/``lte``/``eq``/``neq`` a window anchored at each event would always contain a
  "small" tail window, so those use tumbling windows of ``timespan`` (``time_bucket``);
* the result is every event of every firing window (the evidence), one row each.

``temporal_ordered`` and extended (boolean) temporal conditions are not supported: such rules
fail conversion with that reason and are listed in the report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sigma.correlations import (
    SigmaCorrelationCondition,
    SigmaCorrelationConditionOperator,
    SigmaCorrelationRule,
)
from sigma.exceptions import SigmaConversionError, SigmaFeatureNotSupportedByBackendError

from exhunt.detections.sigma import fields
from exhunt.sqltext import identifier, literal

if TYPE_CHECKING:
    from exhunt.detections.sigma.backend import DuckDBBackend

SLIDING = (SigmaCorrelationConditionOperator.GT, SigmaCorrelationConditionOperator.GTE)
SEPARATOR = "chr(31)"


def compile_correlation(backend: DuckDBBackend, rule: SigmaCorrelationRule, correlation_type: str) -> str:
    kind = correlation_type.lower().rsplit(".", 1)[-1]
    if kind not in ("event_count", "value_count", "temporal"):
        raise SigmaFeatureNotSupportedByBackendError(
            f"correlation type {kind} is not supported", source=rule.source
        )
    condition = rule.condition
    if not isinstance(condition, SigmaCorrelationCondition):
        raise SigmaFeatureNotSupportedByBackendError(
            "extended (boolean) correlation conditions are not supported", source=rule.source
        )
    aliases = {alias.alias: alias for alias in rule.aliases}

    def ref(name: str) -> str:
        return identifier(name) if name in aliases else fields.expression(name)

    selects = []
    for reference in rule.referenced_rules:
        referenced = reference.rule
        try:
            queries = referenced.get_conversion_result()
        except Exception as exc:  # noqa: BLE001 - pySigma raises a bare error when unconverted
            raise SigmaConversionError(
                rule, rule.source, f"referenced rule {reference.reference} did not convert: {exc}"
            ) from exc
        rule_name = str(referenced.name or referenced.id or reference.reference)
        alias_cols = "".join(
            f", {fields.expression(alias.mapping[reference]) if reference in alias.mapping else 'NULL'}"
            f" AS {identifier(name)}"
            for name, alias in aliases.items()
        )
        for query in queries:
            selects.append(
                f"SELECT *, rowid AS sigma_event, {literal(rule_name)} AS sigma_rule{alias_cols} "
                f"FROM {fields.TABLE} WHERE {query}"
            )
    if not selects:
        raise SigmaConversionError(rule, rule.source, "correlation references no converted rule")
    search = " UNION ALL BY NAME ".join(f"({s})" for s in selects)

    group = rule.group_by or []
    key = "concat_ws(" + SEPARATOR + ", " + ", ".join(ref(g) for g in group) + ")" if group else "''"
    grouped = "".join(f" AND {ref(g)} IS NOT NULL" for g in group)  # no value: in no group
    if kind == "event_count":
        metric = "count(DISTINCT sigma_event)"  # one event matched by two referenced rules is one event
    elif kind == "temporal":
        metric = "count(DISTINCT sigma_rule)"
    else:
        fieldref = condition.fieldref
        if not fieldref:
            raise SigmaConversionError(rule, rule.source, "value_count needs condition.field")
        names = [fieldref] if isinstance(fieldref, str) else list(fieldref)
        metric = (
            "count(DISTINCT "
            + (
                ref(names[0])
                if len(names) == 1
                else "concat_ws(" + SEPARATOR + ", " + ", ".join(ref(n) for n in names) + ")"
            )
            + ")"
        )
    op = backend.correlation_condition_mapping[condition.op]
    seconds = int(rule.timespan.seconds)
    span = f"INTERVAL {seconds} SECOND"
    if condition.op in SLIDING:
        windows = (
            f"w AS (SELECT sigma_key, ts AS w_start, ts + {span} AS w_end, "
            f"{metric} OVER (PARTITION BY sigma_key "
            f"ORDER BY ts RANGE BETWEEN CURRENT ROW AND {span} FOLLOWING) AS sigma_n FROM k)"
        )
        inside = "k.ts >= f.w_start AND k.ts <= f.w_end"
    else:
        windows = (
            f"w AS (SELECT sigma_key, time_bucket({span}, ts) AS w_start, "
            f"time_bucket({span}, ts) + {span} AS w_end, "
            f"{metric} AS sigma_n FROM k GROUP BY ALL)"
        )
        inside = "k.ts >= f.w_start AND k.ts < f.w_end"
    return (
        f"WITH s AS ({search}), "
        f"k AS (SELECT *, {key} AS sigma_key FROM s WHERE ts IS NOT NULL{grouped}), "
        f"{windows}, "
        f"f AS (SELECT DISTINCT sigma_key, w_start, w_end FROM w WHERE sigma_n {op} {condition.count}) "
        f"SELECT DISTINCT k.* EXCLUDE (sigma_key, sigma_event), k.sigma_key FROM k JOIN f "
        f"ON k.sigma_key = f.sigma_key AND {inside}"
    )
