-- spec/socket/compare.lua: one LuaSocket session, printed in a stable form.
-- socket_spec runs it with `lua5.4` and Debian's lua-socket, and with
-- goluarun after goluarun.socket.install(); the outputs must be equal.
-- Blocking style on purpose (it must run under plain lua5.4).
local socket = require "socket"

local function show(...)
  local out = {}
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    if type(v) == "table" then v = getmetatable(v) and "socket" or "table"
    elseif type(v) == "string" then v = string.format("%q", v):gsub("0x%x+", "ADDR") end
    out[#out + 1] = tostring(v)
  end
  print(table.concat(out, " "))
end
local function cls(s) return (tostring(s):gsub(": 0x%x+", "")) end
local function perr(f, ...) local ok, e = pcall(f, ...); show(ok, (tostring(e):gsub("^.-:%d+: ", ""))) end

print(socket._VERSION)
local m = socket.tcp()
print(cls(m), m:getfd())
show(m:getsockname())
local srv = assert(socket.bind("127.0.0.1", 0))
print(cls(srv))
local ip, port = srv:getsockname()
show(ip, math.type(port))
local c = socket.tcp()
show(c:settimeout(2))
show(c:connect(ip, port))
print(cls(c))
local a = srv:accept()
print(cls(a))
show(c:getpeername() == ip, select(3, c:getpeername()))

-- send indices
show(c:send("hello\r\nwor\rld\nabc"))
show(a:receive())
show(a:receive("*l"))
show(c:send("abcdef", 2, 4))
show(c:send("abcdef", -2))
show(c:send("abc", 5))
show(c:send("abc", 0, -5))
show(c:send(12.5))
a:settimeout(0.05)
show(a:receive(5))          -- "abc" + "bcd" + "ef" + "12.5"... exact count
show(a:receive(2, "xy"))
show(a:receive(1, "xyz"))
show(a:receive(4, "p"))
show(a:receive("*a"))       -- nothing left: timeout, ""
show(a:receive(0))
show(a:dirty())
-- partial results on timeout, block and total modes
c:send("part")
show(a:receive("*l"))
c:send("ial\r\nrest")
show(a:receive("*l", "pre"))
show(a:receive(10))
a:settimeout(nil); a:settimeout(0.08, "t")
c:send("xy")
show(a:receive(4))
a:settimeout(-1, "t"); a:settimeout(0)
show(a:receive(1))
c:send("z")
socket.sleep(0.05)
show(a:receive(1))
-- bad arguments
perr(function() return a:receive("x") end)
perr(function() return a:receive({}) end)
perr(function() return a:receive(-1) end)
perr(function() return a:settimeout("x") end)
perr(function() return m:send("x") end)
perr(function() return c:accept() end)
perr(function() return c:shutdown("bogus") end)
perr(function() return c:setoption("bogus", 1) end)
-- select
show(#socket.select({ a, srv }, nil, 0.05), select(3, socket.select({ a, srv }, nil, 0.05)))
c:send("line\n")
local r, w, e = socket.select({ a, srv }, { c }, 1)
show(#r, r[1] == a, r[a], #w, w[1] == c, e)
show(a:receive())
-- half close, then close (a waits until the FIN is there: with a's timeout
-- 0, a receive made before the kernel delivered it races in both)
show(c:shutdown("send"))
socket.select({ a }, nil, 2)
show(a:receive("*a"))
show(a:receive())
show(c:setoption("tcp-nodelay", true), c:getoption("tcp-nodelay"))
show(c:close(), cls(c))
show(c:send("x"))
show(c:receive())
show(c:getsockname())
show(c:getfd())
c = assert(socket.connect(ip, port))
a = srv:accept()
c:send("tail")
c:close()
show(a:receive("*a"))
show(a:receive("*a"))
show(a:receive(3))
show(a:send("x"))
a:close()
show(socket.connect("127.0.0.1", 1))
show(socket.dns.toip("localhost"))
show(socket.dns.tohostname("127.0.0.1"))
show(socket.dns.toip("no.such.host.invalid"))
show(type(socket.gettime()), type(socket.dns.gethostname()))
show(socket.sleep(0.001))
-- exceptions
show(socket.skip(1, 1, 2, 3))
show(socket.protect(function() socket.try(nil, "boom") end)())
show(socket.protect(function() return socket.try(1, 2) end)())
local fin = 0
show(socket.protect(function() socket.newtry(function() fin = fin + 1 end)(false, "e") end)())
show(fin)
perr(socket.protect(function() error("raw", 0) end))
-- udp
local u = socket.udp()
print(cls(u))
show(u:setsockname("127.0.0.1", 0))
local uip, uport = u:getsockname()
local u2 = socket.udp()
show(u2:setpeername(uip, uport))
print(cls(u2))
show(u2:send("dgram"))
local d, fip = u:receivefrom()
show(d, fip)
u:settimeout(0.05)
show(u:receive())
show(u2:setpeername("*"))
print(cls(u2))
show(u:close(), u2:close(), srv:close(), m:close())
show(socket.select({}, {}, 0.01))
