"""Writes objects the way Windows PowerShell and PowerShell 7 export them (invented values only).

- ``csv``: ``Export-Csv`` of 5.1 (``#TYPE`` line, every value quoted, UTF-8 here);
- ``csv7``: PowerShell 7 (no ``#TYPE``);
- ``json``: ``ConvertTo-Json`` of 5.1 (``/Date(ms)/`` dates, an array, 4-space indent, UTF-16LE);
- ``json7``: PowerShell 7 (ISO dates with offset; one object alone is not wrapped in an array);
- ``clixml``: ``Export-Clixml`` (UTF-16LE with BOM, type names, multi-valued properties as ``LST``).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape, quoteattr

FORMS = ("csv", "csv7", "json", "json7", "clixml")
Obj = dict[str, Any]  # str, bool, int, datetime, list[str] or None


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "System.Collections.ArrayList" if value else ""
    if isinstance(value, datetime):
        hour = value.hour % 12 or 12
        return f"{value.month}/{value.day}/{value.year} {hour}:{value:%M:%S} {'PM' if value.hour >= 12 else 'AM'}"
    return str(value)


def _join_lists(obj: Obj) -> Obj:
    """What a responder's Select-Object @{n=..;e={$_.X -join ';'}} does to multi-valued columns."""
    return {k: ";".join(v) if isinstance(v, list) else v for k, v in obj.items()}


def to_csv(objects: list[Obj], type_name: str | None, join: bool = True) -> bytes:
    objects = [_join_lists(o) if join else o for o in objects]
    columns = list(objects[0])
    lines = [f"#TYPE {type_name}"] if type_name else []
    lines.append(",".join(f'"{c}"' for c in columns))
    for obj in objects:
        lines.append(",".join('"' + _csv_value(obj.get(c)).replace('"', '""') + '"' for c in columns))
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _json_value(value: Any, ps7: bool) -> Any:
    if isinstance(value, datetime):
        return value.isoformat() if ps7 else f"/Date({int(value.timestamp() * 1000)})/"
    return value


def to_json(objects: list[Obj], ps7: bool = False) -> bytes:
    data: Any = [{k: _json_value(v, ps7) for k, v in o.items()} for o in objects]
    if ps7 and len(data) == 1:
        data = data[0]
    text = json.dumps(data, indent=4 if not ps7 else 2, ensure_ascii=False)
    return text.encode("utf-8") if ps7 else b"\xff\xfe" + text.replace("\n", "\r\n").encode("utf-16-le")


def _clixml_value(name: str, value: Any, ref: list[int]) -> str:
    n = quoteattr(name)
    if value is None:
        return f"<Nil N={n} />"
    if isinstance(value, bool):
        return f"<B N={n}>{'true' if value else 'false'}</B>"
    if isinstance(value, int):
        return f"<I32 N={n}>{value}</I32>"
    if isinstance(value, datetime):
        return f"<DT N={n}>{value.isoformat()}</DT>"
    if isinstance(value, list):
        ref[0] += 1
        items = "".join(f"<S>{escape(v)}</S>" for v in value)
        return (f'<Obj N={n} RefId="{ref[0]}"><TN RefId="{ref[0]}"><T>Deserialized.Microsoft.Exchange.Data.'
                f"MultiValuedProperty`1[[System.String]]</T><T>Deserialized.System.Object</T></TN>"
                f"<LST>{items}</LST></Obj>")
    return f"<S N={n}>{escape(str(value))}</S>"


def to_clixml(objects: list[Obj], type_name: str) -> bytes:
    ref = [0]
    parts = ['<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">']
    for number, obj in enumerate(objects):
        ref[0] += 1
        types = (f'<TN RefId="{ref[0]}"><T>Deserialized.{type_name}</T><T>Deserialized.System.Object</T></TN>'
                 if number == 0 else '<TNRef RefId="1" />')
        props = "".join(_clixml_value(k, v, ref) for k, v in obj.items())
        parts.append(f'  <Obj RefId="{ref[0]}">{types}<ToString>{escape(str(obj.get("Name", "")))}</ToString>\r\n'
                     f"    <Props>{props}</Props>\r\n  </Obj>")
    parts.append("</Objs>")
    return b"\xff\xfe" + "\r\n".join(parts).encode("utf-16-le")


def export(objects: list[Obj], form: str, type_name: str) -> bytes:
    """``objects`` written in ``form`` (one of FORMS)."""
    if form == "csv":
        return to_csv(objects, type_name)
    if form == "csv7":
        return to_csv(objects, None)
    if form in ("json", "json7"):
        return to_json(objects, ps7=form == "json7")
    return to_clixml(objects, type_name)
