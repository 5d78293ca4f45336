/*
 * exhunt own pack: ASP / ASP.NET web shells.
 * Written for exhunt (see SOURCE.md). Each rule describes a behaviour, not a sample: the code a page
 * needs in order to run attacker input, not the names or strings of any one shell.
 */

private rule exhunt_server_page
{
    meta:
        description = "Server-side script: ASP/ASP.NET directives, code blocks or runat=server script"
    strings:
        $open = "<%"
        $runat = /runat\s*=\s*["']?server/ nocase
        $handler = /<%@\s*(WebHandler|WebService|Page|Control|Application)\b/ nocase
        $xsl = "msxsl:script" nocase
        // Razor (.cshtml, .vbhtml): no <% and no runat. Not "@{" alone: every PowerShell hashtable is one
        $razor = /@(functions\s*\{|using\s+System\b)/
    condition:
        filesize < 8MB and any of them
}

rule exhunt_webshell_eval_request : webshell
{
    meta:
        description = "Page evaluates data from the HTTP request (China Chopper family, JScript/VBScript eval/Execute)"
        severity = "critical"
        attack = "T1505.003"
        author = "exhunt"
    strings:
        // JScript.NET eval of request data, or eval(..., "unsafe") which only makes sense for dynamic code
        $js_eval_req = /\beval\s*\(\s*(System\.Web\.HttpContext\.Current\.)?Request\s*(\.\s*(Item|Form|QueryString|Params|Headers|Cookies)\s*)?[\[\(]/ nocase
        $js_unsafe = /\beval\s*\([^\r\n]{0,400}["']unsafe["']\s*\)/ nocase
        // eval(code, mode) with the "unsafe" mode held in a variable: JScript.NET's dynamic-code form
        $js_eval_two = /\beval\s*\(\s*[a-z_$][a-z0-9_$]{0,30}\s*,\s*[a-z_$][a-z0-9_$]{0,30}\s*\)/ nocase
        $js_unsafe_word = /["']unsafe["']/ nocase
        // VBScript: eval/execute/executeglobal of request(...) with or without parentheses
        $vb_eval_req = /\b(eval|execute|executeglobal)\b[\s\(]*request\s*[\(\.]/ nocase
        // VBScript indirection: x = request("p") ... eval x
        $vb_eval_var = /(^|[\r\n:%>])\s*(eval|execute|executeglobal)(\s+|\s*\(\s*)[a-z_][a-z0-9_]{0,30}\s*\)?\s*($|[\r\n:%])/ nocase
        $vb_request = /=\s*request\s*(\.\s*(form|querystring|item)\s*)?\(/ nocase
        // eval of decoded text: unescape / base64 / byte arrays
        $decode_eval1 = /\b(eval|execute|executeglobal)\s*\(\s*(unescape|decodeURIComponent|System\.Text\.Encoding|Encoding\.)/ nocase
        $decode_eval2 = /\beval\s*\([^;]{0,200}FromBase64String/ nocase
        // "eval" hidden by concatenation, hex or percent escapes
        $split1 = /["'](e|ev|eva)["']\s*[+&]\s*["'](val|al|l)["']/ nocase
        $split2 = /["'](ex|exe|exec|execu|execut)["']\s*[+&]\s*["'](ecute|cute|ute|te|e)["']/ nocase
        $hex_eval = /\\x65\\x76\\x61\\x6c/ nocase
        $pct_eval = "%65%76%61%6c" nocase
        $uni_eval = /\\u0065\\u0076\\u0061\\u006c/ nocase
        // eval looked up by its name: this["eval"], what "ev"+"al" or "\x65val" become once undone
        $name_eval = /\[\s*["'](eval|execute|executeglobal)["']\s*\]/ nocase
        $b64_evalreq = "eval(Request" base64
        $b64_evalreq2 = "eval(Request" base64wide
        $b64_execreq = "execute(request" base64
        // a value taken from the request: what a hidden eval runs in a page of any size (a shell
        // written after 200 KB of padding had passed the size bound alone)
        $req_value = /\bRequest\s*(\.\s*(Item|Form|QueryString|Params)\s*)?\[\s*["']/ nocase
    condition:
        exhunt_server_page and (
            $js_eval_req or $js_unsafe or $vb_eval_req or $decode_eval1 or $decode_eval2
            or ($vb_eval_var and $vb_request)
            or ($js_eval_two and $js_unsafe_word and $req_value)
            or (any of ($split*, $hex_eval, $pct_eval, $uni_eval, $name_eval) and
                (filesize < 200KB or $req_value))
            or any of ($b64_*)
        )
}

rule exhunt_webshell_process_from_page : webshell
{
    meta:
        description = "Page starts operating-system processes (cmd/powershell shells, command runners)"
        severity = "high"
        attack = "T1505.003, T1059"
        author = "exhunt"
    strings:
        $net_psi = "ProcessStartInfo" nocase
        $net_startinfo = /\.?StartInfo\s*(\.\s*FileName|\r?\n|\s*$)/ nocase
        $net_start = /\bProcess\s*\.\s*Start\s*\(/ nocase
        $net_new = /new\s+(System\.Diagnostics\.)?Process\s*\(/ nocase
        $net_ps = /(PowerShell\s*\.\s*Create\s*\(|RunspaceFactory\s*\.\s*CreateRunspace|System\.Management\.Automation)/ nocase
        $asp_shell = /CreateObject\s*\(\s*["'](WScript\.Shell|Shell\.Application|WScript\.Network)["']/ nocase
        $asp_run = /\.\s*(Run|Exec|ShellExecute)\b/ nocase
        // the program and its arguments straight from the request (no cmd.exe named)
        $net_start_req = /\bProcess\s*\.\s*Start\s*\(\s*(System\.Web\.HttpContext\.Current\.|c(ontext)?\.)?Request\s*(\.\s*(Item|Form|QueryString|Params)\s*)?[\[\(]/ nocase
        $vb_shell_req = /\bShell\s*\([^\r\n)]{0,200}\brequest\s*(\.\s*(form|querystring|item)\s*)?\(/ nocase
        $cmd1 = "cmd.exe" nocase
        $cmd2 = /\bcmd\s*\/c\b/ nocase
        $cmd3 = "powershell" nocase
        $cmd4 = "COMSPEC" nocase
        $cmd5 = /\/c\s*["']?\s*\+/ nocase
        $io1 = "RedirectStandardOutput" nocase
        $io2 = /StandardOutput\s*\.\s*ReadToEnd/ nocase
        $io3 = "Invoke-Expression" nocase
        $in1 = /Request\s*(\.\s*(Item|Form|QueryString|Params|Headers)\s*)?[\[\(]/ nocase
        $in2 = /\.Text\b/ nocase
        $in3 = /\[\s*WebMethod\b/ nocase  // a web service's method: its parameters are the request
    condition:
        exhunt_server_page and (
            (any of ($net_*) and (any of ($cmd*) or any of ($io*)) and any of ($in*))
            or ($net_ps and any of ($in*))
            or ($asp_shell and $asp_run and any of ($cmd*))
            or $net_start_req or $vb_shell_req
        )
}

rule exhunt_webshell_assembly_loader : webshell
{
    meta:
        description = "Page loads a .NET assembly from decrypted or decoded request data (Godzilla, Behinder, AntSword loaders)"
        severity = "critical"
        attack = "T1505.003, T1620"
        author = "exhunt"
    strings:
        $load1 = /Assembly\s*\)?\s*\.\s*Load\s*\(/ nocase
        $load2 = /GetMethod\s*\(\s*["']Load["']/ nocase
        $load3 = /\.\s*CreateInstance\s*\(\s*["'][A-Za-z0-9_]{1,16}["']\s*\)\s*\.\s*Equals\s*\(/
        $dec1 = "CreateDecryptor" nocase
        $dec2 = "TransformFinalBlock" nocase
        $dec3 = /(RijndaelManaged|AesManaged|AesCryptoServiceProvider|DESCryptoServiceProvider|TripleDES|Aes\.Create)/ nocase
        $dec4 = "FromBase64String" nocase
        $dec5 = /\^\s*[a-z_][a-z0-9_]{0,20}\s*\[\s*[a-z_][a-z0-9_]{0,20}\s*[+&%]\s*[0-9a-z_.]{1,30}\s*(&\s*[0-9]{1,3}\s*)?\]/ nocase
        $dec6 = /\^\s*[a-z_][a-z0-9_]{0,20}\s*\[\s*\(?\s*[a-z_][a-z0-9_]{0,20}\s*\+\s*1\s*\)?\s*&\s*15\s*\]/ nocase
        $req1 = /Request\s*(\.\s*(Item|Form|QueryString|Params|Headers|Cookies)\s*)?[\[\(]/ nocase
        $req2 = /Request\s*\.\s*(BinaryRead|InputStream|ContentLength|TotalBytes)/ nocase
        $req3 = /Context\s*\.\s*Request\s*\[/ nocase
        $sess = /Session\s*\[\s*["'][A-Za-z0-9_]{1,20}["']\s*\]/
        // the request body itself loaded as an assembly, no decoding step
        $raw_load = /Assembly\s*\)?\s*\.\s*Load\s*\(\s*(Request\s*\.\s*BinaryRead|[a-z_][a-z0-9_]{0,20}\s*\.\s*ToArray\s*\(\s*\))/ nocase
        $raw_in = /Request\s*\.\s*(BinaryRead|InputStream)/ nocase
        // a DLL carried in the page itself: the Base64 of a PE header ("MZ\x90\0\x03\0\0\0\x04\0")
        $pe_b64 = "TVqQAAMAAAAEAAAA"
    condition:
        exhunt_server_page and (
            (any of ($load*) and any of ($dec*) and (any of ($req*) or ($sess and $load3)))
            or ($raw_load and $raw_in)
            or ($load1 and $dec4 and $pe_b64)
        )
}

rule exhunt_webshell_xslt_script : webshell
{
    meta:
        description = "Page runs an XSLT stylesheet with embedded msxsl:script under TrustedXslt (script execution via XslCompiledTransform)"
        severity = "high"
        attack = "T1505.003"
        author = "exhunt"
    strings:
        $script = "msxsl:script" nocase
        $trusted1 = "XsltSettings.TrustedXslt" nocase
        $trusted2 = /new\s+XsltSettings\s*\(\s*true\s*,\s*true/ nocase
        $xct = "XslCompiledTransform" nocase
        $req = /Request\s*(\.\s*(Item|Form|QueryString|Params)\s*)?[\[\(]/ nocase
    condition:
        exhunt_server_page and $script and $xct and (any of ($trusted*) or $req)
}

rule exhunt_webshell_file_manager : webshell
{
    meta:
        description = "Page combines host-administration features typical of shell kits (drives, processes, registry, services, SQL exec, uploads)"
        severity = "high"
        attack = "T1505.003"
        author = "exhunt"
    strings:
        $f1 = /DriveInfo\s*\.\s*GetDrives|GetLogicalDrives|Directory\s*\.\s*GetLogicalDrives/ nocase
        $f2 = /Process\s*\.\s*GetProcesses|Win32_Process/ nocase
        $f3 = /Registry\s*\.\s*(LocalMachine|Users|CurrentUser)\s*\.\s*OpenSubKey/ nocase
        $f4 = /ServiceController\s*\.\s*GetServices|Win32_Service/ nocase
        $f5 = /xp_cmdshell|sp_oacreate/ nocase
        $f6 = /File\s*\.\s*Delete\s*\(\s*Request/ nocase
        $f7 = /Response\s*\.\s*(WriteFile|TransmitFile)\s*\(\s*Request/ nocase
        $f8 = /\.\s*SaveAs\s*\(/ nocase
        $f9 = /cmd\.exe|net\s+user|whoami/ nocase
        $f10 = /(GetTempName|File\s*\.\s*SetCreationTime|File\s*\.\s*SetLastWriteTime|\.CreationTime\s*=)/ nocase
        $f11 = /ManagementObjectSearcher|PortScan|port\s*scan/ nocase
    condition:
        exhunt_server_page and 4 of ($f*)
}

rule exhunt_webshell_image_polyglot : webshell
{
    meta:
        description = "Image header followed by server-side script: a page disguised as a picture"
        severity = "high"
        attack = "T1505.003, T1036"
        author = "exhunt"
    strings:
        $code1 = /<%[^>]{0,400}(eval|execute|request)/ nocase
        $code2 = /<script[^>]{0,100}runat\s*=\s*["']?server/ nocase
    condition:
        (uint32(0) == 0x38464947 or uint16(0) == 0xD8FF or uint32(0) == 0x474E5089 or uint16(0) == 0x4D42)
        and any of them
}

rule exhunt_webshell_dynamic_compile : webshell
{
    meta:
        description = "Page compiles or evaluates code at run time from request data (CodeDom compilers, Microsoft.JScript.Eval)"
        severity = "critical"
        attack = "T1505.003, T1027.004"
        author = "exhunt"
    strings:
        $cc1 = /CompileAssemblyFrom(Source|File|Dom)\s*\(/ nocase
        $cc2 = /(CSharpCodeProvider|VBCodeProvider|JScriptCodeProvider|CodeDomProvider\s*\.\s*CreateProvider)/ nocase
        $js1 = /Microsoft\.JScript\.Eval\s*\.\s*JScriptEvaluate/ nocase
        $js2 = /JScriptEvaluate\s*\(/ nocase
        $run = /(\.\s*CompiledAssembly|\.\s*CreateInstance\s*\(|\.\s*Invoke\s*\(|GetMethod\s*\()/ nocase
        $req = /Request\s*(\.\s*(Item|Form|QueryString|Params|Headers|Cookies)\s*)?[\[\(]/ nocase
        $req2 = /Request\s*\.\s*(BinaryRead|InputStream)/ nocase
    condition:
        exhunt_server_page and any of ($req*) and (any of ($js*) or (any of ($cc*) and $run))
}

rule exhunt_webshell_reflection_by_name : webshell
{
    meta:
        description = "Page reaches process, assembly-loading or script-engine types by name through reflection (hides Process.Start, Assembly.Load, JScript eval)"
        severity = "critical"
        attack = "T1505.003, T1027"
        author = "exhunt"
    strings:
        $type = /["'](System\.Diagnostics\.Process|System\.Diagnostics\.ProcessStartInfo|System\.Reflection\.Assembly|System\.Management\.Automation\.PowerShell|Microsoft\.JScript\.Eval|Microsoft\.CSharp\.CSharpCodeProvider)["']/ nocase
        $member = /(GetMethod|InvokeMember|GetMember|GetProperty|CallByName)\s*\(\s*[^;]{0,120}["'](Start|Load|LoadFrom|LoadFile|JScriptEvaluate|CompileAssemblyFromSource|Create|AddScript|Invoke)["']/ nocase
        $resolve = /(Type\s*\.\s*GetType|Activator\s*\.\s*CreateInstance|GetTypeFromProgID|Assembly\s*\.\s*Load\w*\s*\([^;]{0,200}\.\s*GetType)\s*\(\s*["']/ nocase
        $req1 = /Request\s*(\.\s*(Item|Form|QueryString|Params|Headers|Cookies)\s*)?[\[\(]/ nocase
        $req2 = /Request\s*\.\s*(BinaryRead|InputStream)/ nocase
    condition:
        exhunt_server_page and $type and ($member or $resolve) and any of ($req*)
}
