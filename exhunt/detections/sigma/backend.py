"""A pySigma backend that turns Sigma rules into DuckDB predicates over the ``events`` table.

Why our own backend: ``pysigma-backend-duckdb`` (0.1.4, checked) writes values into ``ILIKE``
patterns without escaping, so a literal ``%`` or ``_`` in a rule (``=cmd%20/c%``, ``__VIEWSTATE=``)
becomes a wildcard; it rejects keyword (fieldless) detections, which every MSExchange Management
rule uses; and its ``event_count`` query ignores the timespan altogether. This backend is
pySigma's ``TextQueryBackend`` with ClassVar tokens plus overrides where SQL needs them:

* strings are case-insensitive by default: ``lower(field)`` against the lower-cased literal,
  with ``contains``/``starts_with``/``ends_with`` where a single leading/trailing wildcard allows
  it and ``LIKE ... ESCAPE '\\'`` with escaped literals otherwise; ``|cased`` drops the ``lower``;
* ``NOT`` is written ``NOT coalesce(x, false)`` so an absent field (NULL) makes a filter false and
  its negation true, as Sigma means it (plain SQL would drop the row);
* numbers compare the typed column when the field is one, otherwise the text;
* ``|cidr`` is an exact numeric range test on IPv4 (wildcard expansion is not exact for /25 etc.);
* keywords search the row's keyword text (message, every raw value, every unnamed <Data> value).

Each rule converts into ``(<logsource predicate>) AND (<detection>)``. The logsource predicate comes
from the processing pipelines (``set_state`` key ``logsource``); a rule whose logsource no pipeline
maps fails conversion with that reason instead of silently matching every row. Correlation rules
are compiled by :mod:`exhunt.detections.sigma.correlation`.
"""

from __future__ import annotations

import ipaddress
from typing import Any, ClassVar

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionItem,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.conversion.base import TextQueryBackend
from sigma.conversion.state import ConversionState
from sigma.correlations import SigmaCorrelationConditionOperator, SigmaCorrelationRule
from sigma.exceptions import SigmaConversionError, SigmaError, SigmaFeatureNotSupportedByBackendError
from sigma.rule import SigmaRule
from sigma.types import (
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SpecialChars,
)

from exhunt.detections.sigma import fields
from exhunt.detections.sigma.queries import CompiledQuery
from exhunt.sqltext import literal

LOGSOURCE_STATE = "logsource"


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def string_match(field: str, value: SigmaString, cased: bool = False) -> str:
    """SQL for ``field`` matching a Sigma string with wildcards (``*``, ``?``, escapes resolved by
    pySigma into parts)."""
    parts = list(value.s)
    for part in parts:
        if not isinstance(part, (str, SpecialChars)):
            raise SigmaFeatureNotSupportedByBackendError(f"unexpanded placeholder in value '{value}'")
    norm = (lambda s: s) if cased else (lambda s: s.lower())
    subject = field if cased else f"lower({field})"
    plain = [p for p in parts if isinstance(p, str)]
    specials = [p for p in parts if not isinstance(p, str)]
    if not specials:
        return f"{subject} = {literal(norm(''.join(plain)))}"
    star = SpecialChars.WILDCARD_MULTI
    inner = parts[1:-1] if len(parts) >= 2 else []
    if len(parts) == 2 and parts[0] == star and isinstance(parts[1], str):
        return f"ends_with({subject}, {literal(norm(parts[1]))})"
    if len(parts) == 2 and parts[1] == star and isinstance(parts[0], str):
        return f"starts_with({subject}, {literal(norm(parts[0]))})"
    if len(parts) == 3 and parts[0] == star and parts[2] == star and all(isinstance(p, str) for p in inner):
        return f"contains({subject}, {literal(norm(parts[1]))})"
    pattern = "".join(
        _like_escape(norm(p)) if isinstance(p, str) else ("%" if p == star else "_") for p in parts
    )
    return f"{subject} LIKE {literal(pattern)} ESCAPE '\\'"


def _ipv4_int(field: str) -> str:
    return (
        f"(CASE WHEN regexp_full_match({field}, '\\d{{1,3}}\\.\\d{{1,3}}\\.\\d{{1,3}}\\.\\d{{1,3}}') THEN "
        f"list_reduce(list_transform(string_split({field}, '.'), lambda x: CAST(x AS BIGINT)), "
        f"lambda a, b: a * 256 + b) END)"
    )


class DuckDBBackend(TextQueryBackend):
    """Sigma -> DuckDB SQL predicates over exhunt's normalized events (see module docstring)."""

    name: ClassVar[str] = "exhunt DuckDB backend"
    identifier: ClassVar[str] = "exhunt_duckdb"
    formats: ClassVar[dict[str, str]] = {"default": "CompiledQuery objects (predicate + logsource)"}
    requires_pipeline: ClassVar[bool] = True
    correlation_methods: ClassVar[dict[str, str]] = {
        "default": "sliding windows anchored at each event (RANGE frames), tumbling for lt/lte/eq/neq",
    }

    precedence: ClassVar[tuple[type[ConditionItem], type[ConditionItem], type[ConditionItem]]] = (
        ConditionNOT,
        ConditionAND,
        ConditionOR,
    )
    group_expression: ClassVar[str] = "({expr})"
    parenthesize = True

    token_separator = " "
    or_token: ClassVar[str] = "OR"
    and_token: ClassVar[str] = "AND"
    not_token: ClassVar[str] = "NOT"
    eq_token: ClassVar[str] = " = "

    str_quote: ClassVar[str] = "'"
    escape_char: ClassVar[str] = "\\"
    wildcard_multi: ClassVar[str] = "%"
    wildcard_single: ClassVar[str] = "_"
    add_escaped: ClassVar[str] = "\\"
    bool_values: ClassVar[dict[bool, str | None]] = {True: "true", False: "false"}

    # Regular expressions: RE2 through regexp_matches; flags as an inline (?i) prefix. Only the
    # SQL quote needs escaping inside the literal.
    re_expression: ClassVar[str] = "regexp_matches({field}, '{regex}')"
    re_escape_char: ClassVar[str] = "'"
    re_escape: ClassVar[list[str]] = ["'"]
    re_escape_escape_char = False
    re_flag_prefix = True

    compare_op_expression: ClassVar[str] = "TRY_CAST({field} AS DOUBLE) {operator} {value}"
    compare_operators: ClassVar[dict[Any, str]] = {  # type: ignore[assignment]
        SigmaCompareExpression.CompareOperators.LT: "<",
        SigmaCompareExpression.CompareOperators.LTE: "<=",
        SigmaCompareExpression.CompareOperators.GT: ">",
        SigmaCompareExpression.CompareOperators.GTE: ">=",
    }

    field_null_expression: ClassVar[str] = "{field} IS NULL"
    field_exists_expression: ClassVar[str] = "{field} IS NOT NULL"
    field_not_exists_expression: ClassVar[str] = "{field} IS NULL"

    field_equals_field_expression: ClassVar[str] = "lower({field1}) = lower({field2})"
    field_equals_field_startswith_expression: ClassVar[str] = "starts_with(lower({field1}), lower({field2}))"
    field_equals_field_endswith_expression: ClassVar[str] = "ends_with(lower({field1}), lower({field2}))"
    field_equals_field_contains_expression: ClassVar[str] = "contains(lower({field1}), lower({field2}))"

    correlation_condition_mapping: ClassVar[dict[SigmaCorrelationConditionOperator, str | None]] = {
        SigmaCorrelationConditionOperator.LT: "<",
        SigmaCorrelationConditionOperator.LTE: "<=",
        SigmaCorrelationConditionOperator.GT: ">",
        SigmaCorrelationConditionOperator.GTE: ">=",
        SigmaCorrelationConditionOperator.EQ: "=",
        SigmaCorrelationConditionOperator.NEQ: "<>",
    }

    # -- fields ---------------------------------------------------------------------------------
    def escape_and_quote_field(self, field_name: str) -> str:
        return fields.expression(field_name)

    # -- boolean structure -------------------------------------------------------------------------
    def convert_condition_not(self, cond: ConditionNOT, state: ConversionState) -> Any:
        expr = self.convert_condition(cond.args[0], state)
        if expr is None:
            return None
        return f"NOT coalesce(({expr}), false)"

    # -- values ------------------------------------------------------------------------------------
    def convert_condition_field_eq_val_str(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        value = cond.value
        assert isinstance(value, SigmaString)
        return string_match(self.escape_and_quote_field(cond.field), value, cased=False)

    def convert_condition_field_eq_val_str_case_sensitive(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        value = cond.value
        assert isinstance(value, SigmaCasedString)
        return string_match(self.escape_and_quote_field(cond.field), value, cased=True)

    def convert_condition_field_eq_val_num(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        value = cond.value
        assert isinstance(value, SigmaNumber)
        column = fields.numeric_column(cond.field)
        if column is not None:
            return f"{column} = {value.number}"
        return f"{self.escape_and_quote_field(cond.field)} = {literal(str(value.number))}"

    def convert_condition_field_eq_val_bool(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        return f"lower({self.escape_and_quote_field(cond.field)}) = '{str(bool(cond.value)).lower()}'"

    def convert_value_re(self, r: SigmaRegularExpression, state: ConversionState) -> Any:
        return r.escape(["'"], "'", False, True)

    def convert_condition_field_eq_val_cidr(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> Any:
        value = cond.value
        assert isinstance(value, SigmaCIDRExpression)
        network = ipaddress.ip_network(value.network, strict=False)
        field = self.escape_and_quote_field(cond.field)
        if network.version == 6:
            raise SigmaFeatureNotSupportedByBackendError(f"IPv6 cidr {network} is not supported")
        low, high = int(network.network_address), int(network.broadcast_address)
        return f"({_ipv4_int(field)} BETWEEN {low} AND {high})"

    def convert_condition_val_str(self, cond: ConditionValueExpression, state: ConversionState) -> Any:
        value = cond.value
        assert isinstance(value, SigmaString)
        star = SpecialChars.WILDCARD_MULTI
        parts = list(value.s)
        if not parts or parts[0] != star:
            parts.insert(0, star)
        if parts[-1] != star:
            parts.append(star)
        keyword = SigmaString.from_str("")
        keyword.s = tuple(parts)  # type: ignore[assignment]
        return string_match(fields.expression(fields.KEYWORDS), keyword)

    def convert_condition_val_num(self, cond: ConditionValueExpression, state: ConversionState) -> Any:
        return f"contains(lower({fields.expression(fields.KEYWORDS)}), {literal(str(cond.value))})"

    def convert_condition_val_re(self, cond: ConditionValueExpression, state: ConversionState) -> Any:
        value = cond.value
        assert isinstance(value, SigmaRegularExpression)
        return (
            f"regexp_matches({fields.expression(fields.KEYWORDS)}, '{self.convert_value_re(value, state)}')"
        )

    # -- query assembly ----------------------------------------------------------------------------
    def finish_query(self, rule: SigmaRule | SigmaCorrelationRule, query: Any, state: ConversionState) -> Any:
        if isinstance(rule, SigmaCorrelationRule):
            return query
        logsource = state.processing_state.get(LOGSOURCE_STATE)
        if not logsource:
            raise SigmaConversionError(
                rule, rule.source, f"no pipeline maps logsource {rule.logsource.to_dict()} to exhunt events"
            )
        return f"({logsource}) AND ({query})"

    def finalize_query_default(
        self, rule: SigmaRule | SigmaCorrelationRule, query: Any, index: int, state: ConversionState
    ) -> CompiledQuery[SigmaRule | SigmaCorrelationRule]:
        if isinstance(rule, SigmaCorrelationRule):
            needs = tuple(
                str(st.processing_state.get(LOGSOURCE_STATE))
                for ref in rule.referenced_rules
                for st in ref.rule.get_conversion_states()
            )
            return CompiledQuery(rule, "", "", query, needs)
        logsource = str(state.processing_state.get(LOGSOURCE_STATE))
        prefix = f"({logsource}) AND ("
        predicate = query[len(prefix) : -1] if query.startswith(prefix) else query
        return CompiledQuery(rule, logsource, predicate, query)

    def finalize_output_default(
        self, queries: list[CompiledQuery[SigmaRule | SigmaCorrelationRule]]
    ) -> list[CompiledQuery[SigmaRule | SigmaCorrelationRule]]:
        return queries

    # -- correlation ---------------------------------------------------------------------------------
    def convert_correlation_rule(
        self,
        rule: SigmaCorrelationRule,
        output_format: str | None = None,
        method: str | None = None,
        callback: Any = None,
    ) -> list[Any]:
        """pySigma collects errors of detection rules only; do the same for correlations."""
        try:
            return super().convert_correlation_rule(rule, output_format, method, callback)
        except (SigmaError, NotImplementedError) as exc:
            if not self.collect_errors:
                raise
            error = exc if isinstance(exc, SigmaError) else SigmaFeatureNotSupportedByBackendError(str(exc))
            self.errors.append((rule, error))  # type: ignore[arg-type]
            return []

    def convert_correlation_rule_from_template(
        self, rule: SigmaCorrelationRule, correlation_type: Any, method: str
    ) -> list[str]:
        from exhunt.detections.sigma.correlation import compile_correlation

        return [compile_correlation(self, rule, str(correlation_type))]
