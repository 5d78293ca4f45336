"""A STIX 2.1 bundle of what was observed, built with the ``stix2`` library.

Per finding: one ``observed-data`` over the SCOs it saw (web-shell files with their SHA-256 and
folder, attacker IPv4/IPv6 addresses), ``vulnerability`` and ``attack-pattern`` objects for its CVEs
and ATT&CK ids. Per distinct indicator value (file hash, file path, client IP, user agent, URL
path): one ``indicator`` with a STIX pattern, ``based-on`` the observed-data that saw it and
``indicates`` the attack patterns. User agents and URL paths appear only as indicator patterns: an
HTTP request SCO needs a method and URL per request, which a finding's indicator list does not keep.

File names are the files' real names, not the escaped form reports show (``names.real_name``): a
pattern or SCO naming ``cr\x0dx.aspx`` names a file no host has. A name no Unicode text can hold (an
undecodable byte, a lone surrogate) gets no name indicator and no name on its SCO: its SHA-256 says
which file it was.

Identifiers are UUIDv5 of their content and timestamps come from the document, so rendering the
same document twice gives the same bundle.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Sequence
from typing import Any, BinaryIO

import stix2

from exhunt import utctime
from exhunt.evidence.names import real_name
from exhunt.findings.addresses import remote_address
from exhunt.findings.model import AssessmentDocument, Finding
from exhunt.reports.case import Case

NAMESPACE = uuid.UUID("6f1c7a58-3f0e-5a3c-9a0e-8c4e7f2b9d11")


def _id(kind: str, *parts: str) -> str:
    return f"{kind}--{uuid.uuid5(NAMESPACE, chr(0).join((kind, *parts)))}"


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# a collection's drive folder (``C/inetpub/...``, as KAPE and exhunt's images lay a drive out) or a
# log's Windows path written with '/' (``C:/Program Files/...``)
DRIVE_RE = re.compile(r"^([A-Za-z]):?/")


def _split(path: str) -> tuple[str | None, str | None]:
    """Folder and name as the host names them (``C:\\inetpub\\wwwroot``): an indicator to share
    names the server's path, not the collection's, and one file is one directory object whichever log
    or inventory named it. A Windows path from a log (no '/') is real text split at backslashes; an
    evidence path is '/'-separated names as ``printable`` shows them, each read back to the real name.
    None for a folder or name no text can say."""
    parts: list[str | None] = [real_name(p) for p in path.split("/")] if "/" in path else [*path.split("\\")]
    *folder, name = parts
    return _host_folder(folder), name


def _host_folder(parts: Sequence[str | None]) -> str | None:
    """A folder's names joined as its host writes them: a drive folder (``C``, ``C:``) as ``C:\\``
    and backslashes after it (a collection's ``C/inetpub`` and a log's ``C:/inetpub`` are one folder)."""
    said = [part for part in parts if part is not None]
    if len(said) < len(parts):
        return None
    folder = "/".join(said)
    drive = DRIVE_RE.match(folder + "/")
    if drive:
        folder = f"{drive.group(1).upper()}:\\" + folder[drive.end():].replace("/", "\\")
    return folder


def pattern_for(kind: str, value: str) -> str | None:
    """The STIX pattern of one indicator value, or None where none is true (the server's own address,
    a file name no text can say: see the module's docstring)."""
    if kind == "sha256":
        return f"[file:hashes.'SHA-256' = {_literal(value.lower())}]"
    if kind == "file_path":
        folder, name = _split(value)
        if name is None:
            return None
        if folder:
            return f"[file:name = {_literal(name)} AND file:parent_directory_ref.path = {_literal(folder)}]"
        return f"[file:name = {_literal(name)}]"
    if kind == "client_ip":  # as the block list writes it: no port, brackets or IPv6 zone (a STIX
        # value holds none: '203.0.113.78:4444' had given no indicator, 'fe80::1%eth0' an invalid one)
        address = remote_address(value)
        if address is None:
            return None
        return f"[ipv{ipaddress.ip_address(address).version}-addr:value = {_literal(address)}]"
    if kind == "user_agent":
        header = "network-traffic:extensions.'http-request-ext'.request_header.'User-Agent'"
        return f"[{header} = {_literal(value)}]"
    if kind == "url_path":
        return f"[network-traffic:extensions.'http-request-ext'.request_value = {_literal(value)}]"
    return None


def _observables(f: Finding) -> list[Any]:
    objects: list[Any] = []
    hashes = f.indicators.get("sha256", [])
    for path in f.indicators.get("file_path", []) or ([""] if hashes else []):
        folder, name = _split(path)
        extra: dict[str, Any] = {}
        if folder:
            directory = stix2.Directory(path=folder)
            objects.append(directory)
            extra["parent_directory_ref"] = directory.id
        if len(hashes) == 1:
            extra["hashes"] = {"SHA-256": hashes[0].lower()}
        if name or extra.get("hashes"):
            objects.append(stix2.File(name=name or None, **extra))
    if len(hashes) > 1:
        objects.extend(stix2.File(hashes={"SHA-256": h.lower()}) for h in hashes)
    for ip in dict.fromkeys(a for v in f.indicators.get("client_ip", []) if (a := remote_address(v))):
        # (None: the server itself, or no address: no indicator to share)
        version = ipaddress.ip_address(ip).version
        objects.append(stix2.IPv4Address(value=ip) if version == 4 else stix2.IPv6Address(value=ip))
    return objects


def bundle(doc: AssessmentDocument) -> stix2.Bundle:
    created = doc.generated_at
    identity = stix2.Identity(id=_id("identity", "exhunt"), name="exhunt", identity_class="system",
                              created=created, modified=created)
    objects: dict[str, Any] = {identity.id: identity}
    indicators: dict[tuple[str, str], dict[str, Any]] = {}
    common = {"created": created, "modified": created, "created_by_ref": identity.id}
    for f in doc.findings:
        if f.category == "hygiene":
            continue
        refs: list[str] = []
        for cve in f.cves:
            vuln = stix2.Vulnerability(id=_id("vulnerability", cve), name=cve, external_references=[
                {"source_name": "cve", "external_id": cve}], **common)
            objects[vuln.id] = vuln
        for technique in f.attack:
            pattern = stix2.AttackPattern(id=_id("attack-pattern", technique), name=technique,
                                          external_references=[{"source_name": "mitre-attack",
                                                                "external_id": technique}], **common)
            objects[pattern.id] = pattern
            refs.append(pattern.id)
        observed_id = None
        scos = _observables(f)
        if scos:
            for sco in scos:
                objects[sco.id] = sco
            first = f.first_seen or created
            observed = stix2.ObservedData(
                id=_id("observed-data", f.id), first_observed=first, last_observed=f.last_seen or first,
                number_observed=max(f.count, 1), object_refs=list(dict.fromkeys(s.id for s in scos)),
                labels=[f.check], **common)
            objects[observed.id] = observed
            observed_id = observed.id
        for kind, values in sorted(f.indicators.items()):
            for value in values:
                pattern_text = pattern_for(kind, value)
                if pattern_text is None:
                    continue
                # one indicator per pattern: a file named as the server's path (C:\...) by one log and
                # as the evidence's (C/...) by YARA had given two indicators of one pattern
                entry = indicators.setdefault((kind, pattern_text), {
                    "value": value, "pattern": pattern_text, "valid_from": f.first_seen or created,
                    "findings": [], "observed": [], "attack": []})
                entry["findings"].append(f.title)
                entry["observed"] += [observed_id] if observed_id else []
                entry["attack"] += refs
                entry["valid_from"] = min(entry["valid_from"], f.first_seen or created, key=utctime.order)
    for (kind, _), entry in sorted(indicators.items()):
        value = entry["value"]
        titles = list(dict.fromkeys(entry["findings"]))
        indicator = stix2.Indicator(
            id=_id("indicator", kind, value), name=f"{kind}: {value}"[:250], pattern=entry["pattern"],
            pattern_type="stix", valid_from=entry["valid_from"], indicator_types=["malicious-activity"],
            description="Seen by exhunt in: " + "; ".join(titles), **common)
        objects[indicator.id] = indicator
        for target, rel in [(o, "based-on") for o in dict.fromkeys(entry["observed"])] + [
                (a, "indicates") for a in dict.fromkeys(entry["attack"])]:
            relationship = stix2.Relationship(id=_id("relationship", indicator.id, rel, target),
                                              relationship_type=rel, source_ref=indicator.id,
                                              target_ref=target, **common)
            objects[relationship.id] = relationship
    return stix2.Bundle(id=_id("bundle", created, *sorted(objects)), objects=list(objects.values()))


def render(case: Case, out: BinaryIO) -> None:
    out.write(bundle(case.document).serialize(pretty=True).encode("utf-8") + b"\n")
