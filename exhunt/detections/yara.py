"""YARA through yara-x: compile once (cached by SHA-256 of the rule texts), scan many, in workers.

Compilation happens once per scan in the parent process; the compiled ``Rules`` are serialized
(``Rules.serialize_into``) and shipped to every worker, which builds one ``Scanner`` (the binding
holds the GIL while scanning, so processes scale and threads do not). Compiled rules and their load
report are cached under ``$EXHUNT_CACHE/yara`` (default ``~/.cache/exhunt/yara``), keyed by the
SHA-256 of the yara-x version, the externals and every rule text, so a second scan of the same packs
skips compilation.

A rule that does not compile is never fatal: yara-x's ``ignore_invalid_rules`` drops it with its
reason, and a file with a syntax error is dropped as a whole; both are listed in the report.

Externals expected by public packs (signature-base, THOR/LOKI conventions) are defined for every
scan: ``filename`` (base name), ``filepath`` (the folder, Windows separators, as THOR gives it),
``extension`` (lower-case, with the dot), ``filetype`` (a short magic-based label such as ``EXE``)
and ``owner`` (empty: evidence copies rarely keep it).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import orjson
import yara_x

from exhunt.artifacts import LOG_ARTIFACTS  # each artifact says whether it is a log
from exhunt.errors import UsageError

EXTERNALS = ("filename", "filepath", "extension", "filetype", "owner")
RULE_SUFFIXES = (".yar", ".yara", ".rule", ".rules")
DEFAULT_MAX_SIZE = 100 << 20
SCAN_TIMEOUT_S = 60
MAX_STRINGS_PER_RULE = 20
EXCERPT_BYTES = 48
RULE_NAME_RE = re.compile(rb"^\s*(?:(?:private|global)\s+)*rule\s+([A-Za-z_][A-Za-z0-9_]*)", re.M)

MAGIC_TYPES: tuple[tuple[bytes, str], ...] = (
    (b"MZ", "EXE"),
    (b"PK\x03\x04", "ZIP"),
    (b"7z\xbc\xaf\x27\x1c", "7Z"),
    (b"Rar!", "RAR"),
    (b"\x1f\x8b", "GZIP"),
    (b"GIF8", "GIF"),
    (b"\xff\xd8", "JPEG"),
    (b"\x89PNG", "PNG"),
    (b"%PDF", "PDF"),
    (b"\xd0\xcf\x11\xe0", "CAB"),
    (b"ElfFile", "EVTX"),
    (b"\x7fELF", "ELF"),
)


@dataclass(frozen=True)
class RuleSource:
    origin: str  # file path (or "exhunt:<name>" for the bundled pack)
    namespace: str
    text: bytes


@dataclass
class CompiledRules:
    """Serialized rules plus the load report that goes into ``document.rules``."""

    blob: bytes
    report: dict[str, Any] = field(default_factory=dict)

    def rules(self) -> yara_x.Rules:
        return yara_x.Rules.deserialize_from(io.BytesIO(self.blob))


def engine_version() -> str:
    try:
        return version("yara-x")
    except PackageNotFoundError:
        return "unknown"


def cache_dir() -> Path:
    base = os.environ.get("EXHUNT_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "exhunt") / "yara"


def builtin_sources() -> list[RuleSource]:
    """exhunt's own pack (``exhunt/data/yara/*.yar``)."""
    folder = resources.files("exhunt").joinpath("data", "yara")
    out = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(RULE_SUFFIXES):
            stem = entry.name.rsplit(".", 1)[0]
            out.append(RuleSource(f"exhunt:{entry.name}", f"exhunt.{stem}", entry.read_bytes()))
    return out


def collect_sources(paths: Sequence[Path]) -> tuple[list[RuleSource], list[dict[str, str]]]:
    """Rule files from files or folders (recursively); unreadable ones are reported, not fatal."""
    sources: list[RuleSource] = []
    problems: list[dict[str, str]] = []
    used: set[str] = set()
    for path in paths:
        if not path.exists():
            raise UsageError(f"--yara {path}: no such file or folder")
        files = (
            [path]
            if path.is_file()
            else sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in RULE_SUFFIXES)
        )
        for file in files:
            try:
                text = file.read_bytes()
            except OSError as exc:
                reason = f"cannot read: {exc.strerror or exc}"
                problems.append({"origin": str(file), "rule": "*", "reason": reason})
                continue
            namespace = re.sub(r"\W", "_", file.stem) or "rules"
            base, n = namespace, 1
            while namespace in used:
                n += 1
                namespace = f"{base}_{n}"
            used.add(namespace)
            sources.append(RuleSource(str(file), namespace, text))
    return sources, problems


def cache_key(sources: Sequence[RuleSource]) -> str:
    digest = hashlib.sha256()
    digest.update(f"yara-x {engine_version()} {','.join(EXTERNALS)}\n".encode())
    for source in sources:
        digest.update(f"{source.origin}\0{source.namespace}\0{len(source.text)}\0".encode())
        digest.update(source.text)
    return digest.hexdigest()


def _declared_rules(text: bytes) -> list[str]:
    return [m.decode() for m in RULE_NAME_RE.findall(text)]


def compile_sources(sources: Sequence[RuleSource], problems: Iterable[dict[str, str]] = ()) -> CompiledRules:
    """Compile with invalid rules skipped; the report lists every rule or file dropped and why."""
    compiler = yara_x.Compiler()
    for name in EXTERNALS:
        compiler.define_global(name, "")
    compiler.ignore_invalid_rules(True)
    skipped = list(problems)
    declared = 0
    failed_files: set[str] = set()
    origin_of: dict[str, str] = {}
    for source in sources:
        compiler.new_namespace(source.namespace)
        before = len(compiler.errors())
        try:
            compiler.add_source(source.text.decode("utf-8", "replace"), origin=source.origin)
        except yara_x.CompileError as exc:  # older bindings raise on the first error
            skipped.append({"origin": source.origin, "rule": "*", "reason": str(exc).splitlines()[0]})
            failed_files.add(source.origin)
            continue
        names = _declared_rules(source.text)
        for name in names:
            origin_of.setdefault(name, source.origin)
        for error in compiler.errors()[before:]:
            if error.get("type") == "SyntaxError" or error.get("code") == "E001":
                failed_files.add(source.origin)
                skipped.append(
                    {
                        "origin": source.origin,
                        "rule": "*",
                        "reason": f"syntax error at line {error.get('line')}: {error.get('title')}; "
                        f"{len(names)} rules of this file skipped",
                    }
                )
        if source.origin not in failed_files:
            declared += len(names)
    for ignored in compiler.ignored_rules():  # type: ignore[misc]
        name, reason = _ignored(ignored)
        skipped.append({"origin": origin_of.get(name, ""), "rule": name, "reason": reason})
    warning_list = compiler.warnings()
    titles: dict[str, int] = {}
    for warning in warning_list:
        title = str(warning.get("title", "")) if isinstance(warning, dict) else str(warning)
        titles[title] = titles.get(title, 0) + 1
    rules = compiler.build()
    buffer = io.BytesIO()
    rules.serialize_into(buffer)
    per_rule = [s for s in skipped if s["rule"] != "*"]
    report = {
        "engine": f"yara-x {engine_version()}",
        "files": [s.origin for s in sources],
        "declared": declared,
        "loaded": declared - len(per_rule),
        "skipped_count": len(per_rule)
        + sum(len(_declared_rules(s.text)) for s in sources if s.origin in failed_files),
        "skipped": skipped,
        "warnings": len(warning_list),
        "warning_kinds": dict(sorted(titles.items(), key=lambda kv: -kv[1])[:10]),
        "externals": list(EXTERNALS),
    }
    return CompiledRules(buffer.getvalue(), report)


def _ignored(item: Any) -> tuple[str, str]:
    if isinstance(item, tuple):
        return str(item[0]), str(item[1])
    name = getattr(item, "identifier", None) or getattr(item, "name", None) or getattr(item, "rule", "")
    reason = getattr(item, "message", "") or getattr(item, "reason", "")
    return str(name), " ".join(str(reason).split())[:300]


def _cache_paths(sources: Sequence[RuleSource], cache: Path | None = None) -> tuple[Path, Path]:
    """The compiled rules' file and their report's in the rule cache."""
    key = cache_key(sources)
    folder = cache if cache is not None else cache_dir()
    return folder / f"{key}.yarc", folder / f"{key}.json"


def cached_rules(user_paths: Sequence[Path] = ()) -> bytes | None:
    """``load_rules(user_paths)``' compiled blob when the cache holds it; None rather than compiling
    (the fork server's preload, ``parallel.serverrules``: the scan process compiles on a miss)."""
    user, _ = collect_sources(user_paths)
    blob_path, report_path = _cache_paths(builtin_sources() + user)
    try:
        return blob_path.read_bytes() if report_path.exists() else None
    except OSError:
        return None


def load_rules(
    user_paths: Sequence[Path] = (),
    builtin: bool = True,
    cache: Path | None = None,
    extra: Sequence[RuleSource] = (),
) -> CompiledRules:
    """Bundled pack plus user packs (and ``extra`` texts such as CHIRP rules), cached by content."""
    user, problems = collect_sources(user_paths)
    sources = (builtin_sources() if builtin else []) + user + list(extra)
    blob_path, report_path = _cache_paths(sources, cache)
    try:
        cached = CompiledRules(blob_path.read_bytes(), orjson.loads(report_path.read_bytes()))
        cached.report["skipped"] = list(problems) + [
            s for s in cached.report["skipped"] if "cannot read" not in s["reason"]
        ]
        cached.report["cache"] = "hit"
        return cached
    except (OSError, orjson.JSONDecodeError):
        pass
    compiled = compile_sources(sources, problems)
    try:
        blob_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = blob_path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(compiled.blob)
        tmp.replace(blob_path)
        report_path.write_bytes(orjson.dumps(compiled.report))
        compiled.report["cache"] = "stored"
    except OSError:
        compiled.report["cache"] = "unavailable"
    return compiled


def filetype(head: bytes) -> str:
    for magic, label in MAGIC_TYPES:
        if head.startswith(magic):
            return label
    return "UNKNOWN"


def externals_for(rel: str, head: bytes) -> dict[str, str]:
    win = rel.replace("/", "\\")
    folder, _, name = win.rpartition("\\")
    dot = name.rfind(".")
    return {
        "filename": name,
        "filepath": folder,
        "extension": name[dot:].lower() if dot > 0 else "",
        "filetype": filetype(head),
        "owner": "",
    }


def escape_excerpt(data: bytes) -> str:
    """Printable ASCII as is, everything else as \\xNN: safe to show in any report."""
    out = []
    for b in data:
        if b == 0x5C:
            out.append("\\\\")
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out)


def _meta_value(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value




# yara-x's binding decodes every imported module's output after every scan, with ``json.loads(text,
# object_hook=..., strict=False)`` and a decoder made per call, although exhunt reads none of them. A
# module with nothing to say writes this text (``math``, the one module signature-base imports, on
# every file): ~8 us of a ~100 us page, 0.16 CPU s on 20,000 pages. While exhunt's own scan call
# runs, ``json.loads`` answers exactly that call (those bytes, no other argument than the hook and
# ``strict``) as it would, the hook applied to an empty object, and passes every other call on
# unchanged (``_scan_results``).
EMPTY_MODULE_OUTPUT = b"{\n    \n}"
_JSON_LOADS = json.loads
_BINDING_ARGUMENTS = frozenset({"object_hook", "strict"})


def _loads_module_output(text: Any, *args: Any, **kwargs: Any) -> Any:
    if type(text) is bytes and text == EMPTY_MODULE_OUTPUT and not args and _BINDING_ARGUMENTS.issuperset(kwargs):
        hook = kwargs.get("object_hook")
        return hook({}) if hook is not None else {}
    return _JSON_LOADS(text, *args, **kwargs)


def _scan_results(scanner: yara_x.Scanner, data: bytes) -> yara_x.ScanResults:
    """``scanner.scan(data)`` with the empty module outputs decoded without a decoder each. Swapped
    only when ``json.loads`` is the standard one and put back only if still ours: another thread
    scanning meanwhile keeps a working ``json.loads`` either way."""
    if json.loads is not _JSON_LOADS:
        return scanner.scan(data)
    try:
        json.loads = _loads_module_output  # type: ignore[assignment]  # that call answered alike
        return scanner.scan(data)
    finally:
        if json.loads is _loads_module_output:
            json.loads = _JSON_LOADS


def _rules_of(blob: bytes) -> yara_x.Rules:
    """The rules of a compiled blob: the fork server's copy when it loaded these (``serverrules``)."""
    from exhunt.parallel.serverrules import rules_for

    preloaded = rules_for(blob)
    return preloaded if preloaded is not None else yara_x.Rules.deserialize_from(io.BytesIO(blob))


class FileScanner:
    """One per worker process: a yara-x Scanner over the shipped rules, externals set per file."""

    def __init__(self, blob: bytes, max_size: int = DEFAULT_MAX_SIZE, scan_logs: bool = False) -> None:
        self.max_size = max_size
        self.scan_logs = scan_logs  # also scan files parsed as logs (see LOG_ARTIFACTS)
        self._blob = blob
        self._scanner: yara_x.Scanner | None = None
        self.own: yara_x.Scanner | None = None  # exhunt's pack alone, see scan_own
        self._set: dict[str, str] = {}  # the externals each scanner holds (``_scan``)
        self._own_set: dict[str, str] = {}

    @property
    def scanner(self) -> yara_x.Scanner:
        """Built at the first file to scan: loading the rules costs ~75 ms per worker, which a
        scan of event and text logs only (no file to content-scan) need not pay."""
        if self._scanner is None:
            self._scanner = yara_x.Scanner(_rules_of(self._blob))
            self._scanner.set_timeout(SCAN_TIMEOUT_S)
        return self._scanner

    def preload(self) -> None:
        """Build the scanner now (a worker waiting for its first unit), not at the first file."""
        _ = self.scanner

    def wants(self, size: int) -> bool:
        return size <= self.max_size

    def skips(self, artifact: str | None) -> bool:
        """Files parsed as logs are not content-scanned unless asked: exhunt's pack targets pages,
        tools and dumps, the log detections read every line, and YARA over logs cost more than
        parsing them (measured: 2.2 of 14.4 CPU seconds on the scale benchmark's corpus)."""
        return not self.scan_logs and artifact in LOG_ARTIFACTS

    def scan(self, data: bytes, rel: str, host: str, sha256: str) -> list[dict[str, Any]]:
        """Match rows for the ``matches`` table; raises yara_x.ScanError/TimeoutError to the caller."""
        return self._scan(self.scanner, data, rel, host, sha256, self._set)

    def scan_own(self, data: bytes, rel: str, host: str, sha256: str) -> list[dict[str, Any]]:
        """exhunt's own pack alone (for normalised page views, which user packs were not written for);
        loaded on first use, once per process, from the rule cache (compiling cost 35-45 ms per worker)."""
        if self.own is None:
            self.own = yara_x.Scanner(_rules_of(load_rules().blob))
            self.own.set_timeout(SCAN_TIMEOUT_S)
        return self._scan(self.own, data, rel, host, sha256, self._own_set)

    @staticmethod
    def _scan(scanner: yara_x.Scanner, data: bytes, rel: str, host: str, sha256: str,
              current: dict[str, str]) -> list[dict[str, Any]]:
        """``current``: the externals ``scanner`` holds (a scanner keeps them from scan to scan; pages
        of one folder share most of them: set only what changed, ~1 us a page of 5 calls)."""
        rel = rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")  # odd names
        for name, value in externals_for(rel, data[:16]).items():
            if current.get(name) != value:
                scanner.set_global(name, value)
                current[name] = value
        results = _scan_results(scanner, data)
        rows = []
        for rule in results.matching_rules:
            strings: list[dict[str, Any]] = []
            for pattern in rule.patterns:
                for match in pattern.matches:
                    if len(strings) >= MAX_STRINGS_PER_RULE:
                        break
                    chunk = data[match.offset : match.offset + min(match.length, EXCERPT_BYTES)]
                    strings.append(
                        {
                            "identifier": pattern.identifier,
                            "offset": match.offset,
                            "length": match.length,
                            "excerpt": escape_excerpt(chunk),
                        }
                    )
            rows.append(
                {
                    "host": host,
                    "path": rel,
                    "engine": "yara",
                    "rule": rule.identifier,
                    "namespace": rule.namespace,
                    "tags": ",".join(rule.tags),
                    "meta": orjson.dumps({k: _meta_value(v) for k, v in rule.metadata}).decode(),
                    "strings": orjson.dumps(strings).decode(),
                    "sha256": sha256,
                }
            )
        return rows
