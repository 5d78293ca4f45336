/*
 * exhunt own pack: Exchange-specific droppings, tunnels and credential-theft tooling.
 * Written for exhunt (see SOURCE.md).
 */

rule exhunt_exchange_oab_export_script : webshell exchange
{
    meta:
        description = "Exported OAB/ECP virtual directory settings whose ExternalUrl/InternalUrl holds server-side script (ProxyLogon CVE-2021-27065 file write)"
        severity = "critical"
        attack = "T1505.003, T1190"
        cve = "CVE-2021-27065"
        author = "exhunt"
    strings:
        $url_script = /(External|Internal)Url[^\r\n]{0,300}<script[^>]{0,200}runat\s*=\s*["']?server/ nocase
        $url_code = /(External|Internal)Url[^\r\n]{0,300}<%/ nocase
        $oab1 = "OABVirtualDirectory" nocase
        $oab2 = "msExchOAB" nocase
        $oab3 = "OfflineAddressBook" nocase
        $oab4 = /FrontEnd\\HttpProxy|ClientAccess\\oab/ nocase
    condition:
        filesize < 10MB and ($url_script or ($url_code and any of ($oab*)))
}

rule exhunt_webshell_socket_tunnel : webshell tunnel
{
    meta:
        description = "Page relays TCP through HTTP (reGeorg, Neo-reGeorg, Tunna, ABPTTS style socket tunnels)"
        severity = "critical"
        attack = "T1505.003, T1090, T1572"
        author = "exhunt"
    strings:
        $sock1 = /new\s+(System\.Net\.Sockets\.)?Socket\s*\(/ nocase
        $sock2 = /new\s+(System\.Net\.Sockets\.)?TcpClient\s*\(/ nocase
        $sock3 = /(AddressFamily\.InterNetwork|SocketType\.Stream|ProtocolType\.Tcp)/ nocase
        $sock4 = /CreateObject\s*\(\s*["'](MSWinsock|Winsock)/ nocase
        $ctl1 = /["']X-(CMD|STATUS|TARGET|ERROR|REDIRECT|Anchor)["']/ nocase
        $ctl2 = /["'](CONNECT|DISCONNECT|FORWARD|READ)["']/
        $ctl3 = /Session\s*(\.\s*Add\s*\(|\[)\s*["'][A-Za-z0-9_]{0,20}(sock|socket|conn)/ nocase
        $io1 = /Request\s*\.\s*(InputStream|BinaryRead|Headers|ContentLength)/ nocase
        $io2 = /\.\s*(Receive|Send|Connect)\s*\(/ nocase
    condition:
        filesize < 2MB and (
            (any of ($sock1, $sock2, $sock4) and any of ($ctl*) and any of ($io*))
            or ($sock3 and 2 of ($ctl*) and $io1)
        )
}

rule exhunt_tool_lsass_dump : credential_access
{
    meta:
        description = "Script or command that dumps LSASS memory (comsvcs.dll MiniDump, procdump, MiniDumpWriteDump)"
        severity = "critical"
        attack = "T1003.001"
        author = "exhunt"
    strings:
        $comsvcs = /comsvcs(\.dll)?["']?\s*,?\s*(#\s*\+?\s*0*24|MiniDump)/ nocase
        $comsvcs_w = "comsvcs.dll, MiniDump" wide nocase
        $procdump = /procdump(64)?(\.exe)?\s+[^\r\n]{0,80}(-ma|\/ma)\s+[^\r\n]{0,40}lsass/ nocase
        $procdump2 = /procdump(64)?(\.exe)?\s+[^\r\n]{0,80}lsass[^\r\n]{0,80}(-ma|\/ma)\b/ nocase
        $api = "MiniDumpWriteDump" nocase
        $api_w = "MiniDumpWriteDump" wide
        $lsass = "lsass" nocase
        $lsass_w = "lsass" wide nocase
        $sekurlsa = "sekurlsa::" nocase
    condition:
        filesize < 20MB and (
            $comsvcs or $comsvcs_w or $procdump or $procdump2 or $sekurlsa
            or (any of ($api, $api_w) and any of ($lsass, $lsass_w))
        )
}
