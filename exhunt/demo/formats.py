"""Real header formats of the logs the demo writes (Exchange 2016 CU19, IIS 10), CRLF endings."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from datetime import datetime

HTTPPROXY_FIELDS = (
    "DateTime,RequestId,MajorVersion,MinorVersion,BuildVersion,RevisionVersion,ClientRequestId,Protocol,"
    "UrlHost,UrlStem,ProtocolAction,AuthenticationType,IsAuthenticated,AuthenticatedUser,Organization,"
    "AnchorMailbox,UserAgent,ClientIpAddress,ServerHostName,HttpStatus,BackEndStatus,ErrorCode,Method,"
    "ProxyAction,TargetServer,TargetServerVersion,RoutingType,RoutingHint,BackEndCookie,"
    "ServerLocatorHost,ServerLocatorLatency,RequestBytes,ResponseBytes,TargetOutstandingRequests,"
    "AuthModulePerfContext,HttpPipelineLatency,CalculateTargetBackEndLatency,GlsLatencyBreakup,"
    "TotalGlsLatency,AccountForestLatencyBreakup,TotalAccountForestLatency,ResourceForestLatencyBreakup,"
    "TotalResourceForestLatency,ADLatency,SharedCacheLatencyBreakup,TotalSharedCacheLatency,"
    "ActivityContextLifeTime,ModuleToHandlerSwitchingLatency,ClientReqStreamLatency,"
    "BackendReqInitLatency,BackendReqStreamLatency,BackendProcessingLatency,BackendRespInitLatency,"
    "BackendRespStreamLatency,ClientRespStreamLatency,KerberosAuthHeaderLatency,HandlerCompletionLatency,"
    "RequestHandlerLatency,HandlerToModuleSwitchingLatency,ProxyTime,CoreLatency,RoutingLatency,"
    "HttpProxyOverhead,TotalRequestTime,RouteRefresherLatency,UrlQuery,BackEndGenericInfo,GenericInfo,"
    "GenericErrors,EdgeTraceId,DatabaseGuid,UserADObjectGuid,PartitionEndpointLookupLatency,RoutingStatus"
).split(",")
IIS_FIELDS = (
    "date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) "
    "cs(Referer) sc-status sc-substatus sc-win32-status time-taken"
).split()
ECP_SERVER_FIELDS = ["TimeStamp", "ServerName", "EventId", "EventData"]
OABGEN_FIELDS = ["DateTime", "ThreadId", "Level", "Organization", "Message"]


def exchange_iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def exchange_log(version: str, log_type: str, fields: list[str], start: datetime,
                 rows: Iterable[Mapping[str, str]]) -> bytes:
    """An Exchange CSV log: its #-header block, then RFC 4180 quoted rows, CRLF endings."""
    out = io.StringIO()
    out.write(f"#Software: Microsoft Exchange Server\r\n#Version: {version}\r\n#Log-type: {log_type}\r\n"
              f"#Date: {exchange_iso(start)}\r\n#Fields: {','.join(fields)}\r\n")
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow([row.get(f, "") for f in fields])
    return out.getvalue().encode("utf-8")


def iis_log(start: datetime, rows: Iterable[Mapping[str, str]]) -> bytes:
    out = io.StringIO()
    out.write(f"#Software: Microsoft Internet Information Services 10.0\r\n#Version: 1.0\r\n"
              f"#Date: {start:%Y-%m-%d %H:%M:%S}\r\n#Fields: {' '.join(IIS_FIELDS)}\r\n")
    for row in rows:
        out.write(" ".join(row.get(f) or "-" for f in IIS_FIELDS) + "\r\n")
    return out.getvalue().encode("utf-8")
