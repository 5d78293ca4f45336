"""Necessary literals of Sigma rules: texts one of which every event a rule matches must hold.

Generic over logsources: an AND needs one child's literals (the most selective child is taken),
an OR needs all of its children's, a NOT or a value that is no plain text (number, regex, CIDR,
null, exists, field reference) has none. A value's literal is its longest run of plain ASCII text
between wildcards (3+ characters), so a caseless byte search for it cannot miss a
case-insensitive match. The EVTX chunk prefilter (``exhunt.artifacts.evtx_chunks``) searches for
them as UTF-16LE; a text-log prefilter can search for the same texts as bytes.

Some values never appear as text in the source: Windows stores ``Level``, ``EventID``, GUIDs,
SIDs, hex and decimal numbers, booleans and times as binary values that the parser renders. Those
fields and such values have no literal here (a rule on them falls back on its other children, its
channel or provider name, or a full parse).

For Windows events a rule's raw EventData field is itself a text (``field_names``): a record that
matches ``TargetSid: S-1-5-32-544`` or ``SamAccountName|exists: true`` holds the field's name, as a
``<Data Name="TargetSid">`` value of its template (UTF-16LE in the chunk) and as a key of its JSON.
Such names are taken only when a rule has no value literal (a value is the more selective text),
never for web rules (a W3C line holds no field names), and never for the normalized columns, the
virtual fields and the System values (their names are not the record's): a Security rule on an
EventID and a SID then needs the events that have the field, not every Security event.
"""

from __future__ import annotations

import re
import re._parser as regex_parser  # the stdlib's own regex parser (sre_parse before 3.11)
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.rule import SigmaRule
from sigma.types import SigmaExists, SigmaNull, SigmaRegularExpression, SigmaString

from exhunt.detections.patterns import dedupe  # noqa: F401 - also this module's, for its callers

MIN_LITERAL = 3
# Sigma names and exhunt columns of values a Windows event stores as binary (rendered by the parser)
RENDERED_FIELDS = frozenset(name.lower() for name in (
    "EventID", "event_id", "Level", "x_level", "Keywords", "Task", "Opcode", "Version", "Qualifiers",
    "EventRecordID", "record_id", "TimeCreated", "SystemTime", "ts", "ProcessID", "ThreadID",
    "Execution_ProcessID", "Execution_ThreadID", "ActivityID", "RelatedActivityID", "UserID",
    "Security_UserID", "Provider_Guid", "Guid", "status",
))
# whole runs that may be a rendered binary value (number, hex, GUID part, SID, boolean, time)
RENDERED_VALUE = re.compile(
    r"(0x)?[0-9a-f]+|[0-9a-f-]+|\{?[0-9a-f-]+\}?|s-1-[0-9-]+|true|false|[0-9:./ tz+-]+", re.IGNORECASE
)
TEXT_RUN = re.compile(r"[\x20-\x7e]+")
# a raw field name usable as a literal: the EventData names Windows writes (letters, digits, '_')
FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{2,}")
SYSTEM_NAMES = frozenset(name.lower() for name in (  # System values stored under Sigma's names
    "EventID", "Channel", "Provider_Name", "Computer", "EventRecordID", "SystemTime", "Level"))
CHANNEL_NAME = re.compile(r"""lower\("(?:channel|provider)"\) = '((?:[^']|'')+)'""")


def _usable(run: str) -> str | None:
    runs = TEXT_RUN.findall(run)
    best = max(runs, key=len, default="")
    return None if len(best) < MIN_LITERAL or RENDERED_VALUE.fullmatch(best.strip()) else best


def value_literals(value: Any, spaces_end_runs: bool = False) -> list[str] | None:
    """Texts one of which a matching value holds: the longest plain-text run of a string, or what
    a regular expression needs (see ``regex_literals``); None for anything else. ``spaces_end_runs``:
    of a keyword, whose text the engine may find across an event's unnamed ``<Data>`` values (the
    ``message`` column joins them with spaces, while the record holds each value apart): a run
    then ends at a space too, since each run must lie within one value of the record."""
    if isinstance(value, SigmaRegularExpression):
        regexp = value.regexp  # a SigmaString in current pySigma, a str in older ones
        return regex_literals(regexp if isinstance(regexp, str) else str(getattr(regexp, "original", regexp)))
    if not isinstance(value, SigmaString):
        return None
    text = "\n".join(part for part in value.s if isinstance(part, str))  # runs end at wildcards
    literal = _usable(text.replace(" ", "\n") if spaces_end_runs else text)
    return [literal] if literal else None


def regex_literals(pattern: str) -> list[str] | None:
    """What every match of a regex holds: its longest top-level run of literal characters, or a
    top-level group of alternatives that each begin with one (whichever has the longer shortest
    text). Unparseable, or nothing of 3+ characters: None. The engine matches with DuckDB's RE2,
    whose POSIX classes (``[[:alpha:]]``) Python's parser reads as a set and a literal ``]``: such
    a pattern gives no literal (``smart[[:alpha:]]creen`` had required the text ``]creen``)."""
    if "[[:" in pattern:
        return None
    try:
        items = list(regex_parser.parse(pattern))
    except (re.error, RecursionError, ValueError, TypeError):
        return None
    candidates: list[list[str]] = []
    run: list[str] = []
    for op, arg in [*items, (None, None)]:
        if op is regex_parser.LITERAL:
            run.append(chr(arg))
            continue
        if run and (literal := _usable("".join(run))):
            candidates.append([literal])
        run = []
        if op is regex_parser.SUBPATTERN and arg[-1] and list(arg[-1])[0][0] is regex_parser.BRANCH:
            prefixes = [_branch_prefix(branch) for branch in list(arg[-1])[0][1][1]]
            if prefixes and all(prefixes):
                candidates.append([p for p in prefixes if p])
    if not candidates:
        return None
    return max(candidates, key=lambda texts: (min(map(len, texts)), -len(texts)))


def _branch_prefix(branch: Any) -> str | None:
    chars = []
    for op, arg in branch:
        if op is not regex_parser.LITERAL:
            break
        chars.append(chr(arg))
    return _usable("".join(chars))


def necessary(node: Any, field_names: bool = False) -> list[str] | None:
    """Texts one of which every event the condition node matches holds, or None when it has none.
    ``field_names``: a raw Windows field compared with a value that has no literal gives its name
    (an AND still takes a child's value literals when one has any)."""
    if isinstance(node, ConditionAND):  # one child suffices: the one whose shortest text is longest
        found = [texts for texts in (necessary(arg) for arg in node.args) if texts]
        if not found and field_names:
            found = [texts for texts in (necessary(arg, True) for arg in node.args) if texts]
        return max(found, key=lambda texts: (min(map(len, texts)), -len(texts))) if found else None
    if isinstance(node, ConditionOR):
        parts = [necessary(arg, field_names) for arg in node.args]
        if not parts or any(not part for part in parts):
            return None
        return [text for part in parts for text in part or ()]
    if isinstance(node, ConditionFieldEqualsValueExpression):
        if (node.field or "").lower() in RENDERED_FIELDS:
            return None
        values = value_literals(node.value)
        return values or (field_name(node.field, node.value) if field_names else None)
    if isinstance(node, ConditionValueExpression):  # a keyword: anywhere in the event
        return value_literals(node.value, spaces_end_runs=True)
    return None  # ConditionNOT and anything else


def field_name(field: str | None, value: Any) -> list[str] | None:
    """The name of a raw Windows field that a matching record must have (see the module's notes):
    not a normalized column, a virtual field or a System value, and a value that needs the field
    present (not ``null``, not ``|exists: false``)."""
    from exhunt.detections.sigma.fields import COLUMNS, NUMERIC, VIRTUAL

    if (not field or not FIELD_NAME.fullmatch(field) or field in COLUMNS or field in NUMERIC or field in VIRTUAL
            or field.lower() in SYSTEM_NAMES or field.lower().startswith("eventdata_")):
        return None
    if isinstance(value, SigmaNull) or (isinstance(value, SigmaExists) and not value.exists):
        return None
    return [field]


def rule_literals(rule: SigmaRule, field_names: bool = False) -> tuple[list[str] | None, str]:
    """(literals, why none): over every condition of the rule (a rule of several fires on any).
    ``field_names``: of Windows events, whose records hold their fields' names (``necessary``)."""
    texts: list[str] = []
    for condition in rule.detection.parsed_condition:
        try:
            found = necessary(condition.parsed)
            if not found and field_names:
                found = necessary(condition.parsed, True)
        except Exception as exc:  # noqa: BLE001 - a condition pySigma cannot parse fails the rule later
            return None, f"condition not parsed: {exc}"
        if not found:
            return None, "no text every match must hold (negations, numbers, regexes or short values)"
        texts.extend(found)
    return texts, ""


def logsource_names(predicate: str) -> list[str]:
    """Channel and provider names a logsource predicate of the Windows pipeline selects on (any of
    them is in every event it selects); empty when it selects otherwise (e.g. by row kind)."""
    names = [name.replace("''", "'") for name in CHANNEL_NAME.findall(predicate)]
    rest = CHANNEL_NAME.sub("NAME", predicate)
    while "NAME OR NAME" in rest:  # alternatives of names are fine; an OR with anything else is not
        rest = rest.replace("NAME OR NAME", "NAME")
    return names if names and " OR " not in rest.upper() else []
