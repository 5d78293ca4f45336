description = [[
exhunt's bench reference: the single-request ProxyLogon (CVE-2021-26855) SSRF check that the public
http-vuln-cve2021-26855 script performs, written for exhunt's probe benchmark (bench/bench_probe.py).

One GET of /owa/auth/x.js carrying the X-AnonResource / X-AnonResource-Backend / X-BEResource
cookies that name "localhost" as back end. A vulnerable front end tries to authenticate to that back
end and answers HTTP 500 whose body names NegotiateSecurityContext; anything else is reported as not
vulnerable. Every open TCP port is tried (the bench's fake Exchange front ends listen on random
loopback ports, so the usual http port rule would skip them).
]]

local http = require "http"
local stdnse = require "stdnse"

author = "exhunt"
license = "Same as Nmap--See https://nmap.org/book/man-legal.html"
categories = { "safe" }

portrule = function(host, port)
  return port.protocol == "tcp" and port.state == "open"
end

local COOKIE = "X-AnonResource=true; X-AnonResource-Backend=localhost/ecp/default.flt?~3; "
  .. "X-BEResource=localhost/owa/auth/logon.aspx?~3;"

action = function(host, port)
  local answer = http.generic_request(host, port, "GET", "/owa/auth/x.js",
    { header = { ["Cookie"] = COOKIE }, no_cache = true })
  if answer and answer.status == 500 and answer.body
      and answer.body:find("NegotiateSecurityContext", 1, true) then
    return "VULNERABLE: CVE-2021-26855 SSRF (HTTP 500 NegotiateSecurityContext)"
  end
  return "not vulnerable"
end
