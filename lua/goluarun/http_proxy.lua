-- http_proxy.lua: http.proxy of goluarun.http (internal module: goluarun.http
-- installs it; use it as require "goluarun.http").
--
--   local up = { addr = "127.0.0.1:8081", timeout = 5 } -- made once, kept
--   http.serve(":8080", function(req, res)
--     local ok, err = http.proxy(req, res, up)
--     if ok == nil then res:status(502):send("bad gateway: " .. err .. "\n") end
--   end)
--
-- http.proxy(req, res, up [, target [, timeout]]) -> true | nil, err | false, err
--   sends the server's request req on to an HTTP/1.1 upstream and its
--   answer back through res (one request of Go's httputil.ReverseProxy).
--   up: the upstream, a table read at its first use (keep it and pass it
--   again; another table for other settings):
--     addr          "host:port" (required)
--     tls           nil/false: http; true or a TLS config (net's): https,
--                   verified as http.request verifies
--     pool          the net.pool of its keep-alive conns (net.defaultpool)
--     timeout       seconds from the call to the answer's head (none)
--     body_timeout  seconds for each read of the answer's body (none)
--     buffer_body   bytes (65536): a request body up to this size is read
--                   whole before it goes out (a failed try can be sent
--                   again, to this upstream or another); a larger one, or
--                   a chunked one, streams (chunked). An answer body up to
--                   this size goes out whole with Content-Length, a larger
--                   one piece by piece as it comes (with the upstream's
--                   Content-Length when it gave one, else chunked)
--     drop          request fields not sent on: a string of up to 16
--                   comma-separated lower-case names, or a set table
--     forwarded     false: no X-Forwarded-* fields; else X-Forwarded-For
--                   gets the client's address appended, X-Forwarded-Proto
--                   ("http"/"https") and X-Forwarded-Host (the Host) are
--                   set, received ones replaced
--   target: the request target sent (req.target); timeout: this call's
--   instead of up.timeout (what is left of a retried request's).
--   The request's fields go on as received (names' case kept), minus the
--   hop-by-hop ones and those a Connection field names; the answer's as
--   well, minus Date and Server (the server's own).
--   true: the answer went out (whatever its status). nil, err: nothing
--   went out: the upstream could not be reached or gave no valid head
--   (http.request's errors: "connection refused: ADDR", "timeout", "bad
--   response: ..."); answer it (502, 504) or try another upstream; "request
--   body: ERR": the client's body failed (return without answering: the
--   server answers 400/408/413 itself); "request body already sent": an
--   earlier call streamed it. false, err: the answer's head went out, then
--   the upstream's body or the client failed: the client's connection is
--   closed after the handler, the body cut short (never ended as if whole).
-- A reused pooled conn that fails before any byte of the answer is tried
-- again on another, as http.request does. The common exchange (http, a
-- body of up to buffer_body bytes, an answer that comes whole with its
-- head) takes no table: the request and answer heads are relayed from
-- their bytes, one write each way.
local go = require "go"
local net = require "net"
local httpparse = require "goluarun.httpparse"
local httpread = require "goluarun.httpread"
local client = require "goluarun.http_client"

local relay_fields, read_response = httpparse.relay, httpread.readresponse
local find, match = string.find, string.match
local type, tonumber, error, pairs, setmetatable, math_type =
  type, tonumber, error, pairs, setmetatable, math.type
local now = go.now

local M = {}

local H            -- goluarun.http
local answer_lines -- the server's answer from relayed lines (install)
local STATUS_LINE  -- code -> the server's status line (install)
local answer_plain -- whether the server's answer is the common one (install)
local answer_tail  -- the common answer from readresponse's (install)
local sized        -- a streamed answer keeps its Content-Length (install)
local abort        -- the server's answer cut short (install)
local streamed, Headers, RETRY = client._streamed, client._Headers, client._RETRY

-- the answer's fields a proxy reads (framing); the rest are relayed from
-- the bytes (a sorted name string: readresponse reads it without a table
-- walk), and the answer's fields the server replaces
local CLIENT_READS = "connection,content-length,location,transfer-encoding"
local NO_VALUES = {} -- (http.request's only_headers: CLIENT_READS)
local RELAY_EXCEPT = "date,server"
local FORWARDED = "x-forwarded-for,x-forwarded-proto,x-forwarded-host"
local MAX_HEADER_BYTES, MAX_HEADERS = 16384, 100

-- bounded caches of strings made from what clients send
local CACHE_MAX = 1024
local function cache_put(c, k, v)
  if c.n >= CACHE_MAX then
    c.t, c.n = {}, 0
  end
  c.n = c.n + 1
  c.t[k] = v
  return v
end
local function new_cache() return { t = {}, n = 0 } end

---------------------------------------------------------------------------
-- The upstream: up's fields checked once
---------------------------------------------------------------------------

-- raises at http.proxy's caller: depth, the frames between bad and
-- http.proxy (prepare's 2, the helpers prepare calls 3)
local function bad(msg, depth) error("http.proxy: " .. msg, (depth or 2) + 2) end

local function opt_positive(up, k)
  local v = up[k]
  if v ~= nil and (type(v) ~= "number" or not (v > 0)) then
    bad("up." .. k .. " must be a positive number", 3)
  end
  return v
end

-- the drop set with the X-Forwarded names: a string while it can be one
local function drop_of(drop, forwarded)
  if drop == nil then return forwarded and FORWARDED or nil end
  if type(drop) == "string" then
    if not find(drop, "^[%l%d!#$%%&'*+%-.^_`|~,]*$") then
      bad("up.drop must be lower-case names separated by commas", 3)
    end
    if not forwarded then return drop end
    local s = drop == "" and FORWARDED or drop .. "," .. FORWARDED
    local _, commas = s:gsub(",", "")
    if commas < 16 then return s end
    drop = {}
    for name in s:gmatch("[^,]+") do drop[name] = true end
    return drop
  end
  if type(drop) ~= "table" then bad("up.drop must be a string or a set table", 3) end
  local set = {}
  for k, v in pairs(drop) do
    if type(k) ~= "string" or k ~= k:lower() then
      bad("up.drop: keys must be lower-case names", 3)
    end
    set[k] = v and true or nil
  end
  if forwarded then
    for name in FORWARDED:gmatch("[^,]+") do set[name] = true end
  end
  return set
end

local ups = setmetatable({}, { __mode = "k" })
local function prepare(up)
  if type(up) ~= "table" then bad("up must be a table") end
  local addr = up.addr
  if type(addr) ~= "string" or not find(addr, "^[^/%s]+:%d+$") then
    bad("up.addr must be \"host:port\"")
  end
  local tls = up.tls
  if tls ~= nil and type(tls) ~= "boolean" and type(tls) ~= "table" then
    bad("up.tls must be a boolean or a TLS config table")
  end
  local pool = up.pool or net.defaultpool
  if type(pool) ~= "table" or type(pool.dial) ~= "function" then bad("up.pool must be a net.pool") end
  local buffer = up.buffer_body or 65536
  if math_type(buffer) ~= "integer" or buffer < 0 then
    bad("up.buffer_body must be a non-negative integer")
  end
  local fwd = up.forwarded
  if fwd ~= nil and type(fwd) ~= "boolean" then bad("up.forwarded must be a boolean") end
  local p = {
    addr = addr, tls = tls or nil, pool = pool, take = not tls and pool._take or nil,
    put = pool._put, timeout = opt_positive(up, "timeout"),
    body_timeout = opt_positive(up, "body_timeout"), buffer = buffer,
    drop = drop_of(up.drop, fwd ~= false), forwarded = fwd ~= false,
    hostline = "Host: " .. addr .. "\r\n", base = (tls and "https://" or "http://") .. addr,
    lines = {}, -- method -> a cache of target -> request line
  }
  if p.tls == true then p.tls = nil end -- (http.request's default: verified)
  ups[up] = p
  return p
end

-- "METHOD target HTTP/1.1\r\n" (cached per upstream and method)
local function request_line(p, method, target)
  local c = p.lines[method]
  if not c then
    c = new_cache()
    p.lines[method] = c
  end
  return c.t[target] or cache_put(c, target, method .. " " .. target .. " HTTP/1.1\r\n")
end

---------------------------------------------------------------------------
-- The request's fields and body
---------------------------------------------------------------------------

-- per client conn: its X-Forwarded-For address and X-Forwarded-Proto line
local conns = setmetatable({}, { __mode = "k" })
local function conn_state(conn)
  local ra = conn:remoteaddr()
  local ip = ra and (match(ra, "^%[(.*)%]:%d+$") or match(ra, "^(.*):%d+$") or ra) or "unknown"
  local proto = conn:tlsinfo() and "\r\nX-Forwarded-Proto: https\r\n"
    or "\r\nX-Forwarded-Proto: http\r\n"
  -- tail: after a received X-Forwarded-For's value; line: without one
  local cs = { tail = ip .. proto, line = "X-Forwarded-For: " .. ip .. proto }
  conns[conn] = cs
  return cs
end

local host_lines = new_cache() -- Host value -> "X-Forwarded-Host: H\r\n"

-- the request's field lines as they go on: string | nil (too many)
local function request_fields(req, p)
  local head, hpos = req._head, req._hpos -- (req:rawhead()'s, without its call)
  if not p.forwarded then return relay_fields(head, hpos, p.drop) end
  local rh = req.headers
  local conn = req.conn
  local cs = conns[conn] or conn_state(conn)
  local xff, host = rh["x-forwarded-for"], rh.host
  local hostl = ""
  if host then
    hostl = host_lines.t[host] or cache_put(host_lines, host, "X-Forwarded-Host: " .. host .. "\r\n")
  end
  if xff then
    return relay_fields(head, hpos, p.drop, "X-Forwarded-For: ", xff, ", ", cs.tail, hostl)
  end
  return relay_fields(head, hpos, p.drop, cs.line, hostl)
end

-- the body to send on: nil (none), a string (read whole: can be sent
-- again), or a function streaming it; nil, err when it cannot be
local function body_of(req, p)
  local h = req.headers
  local cl = h["content-length"]
  if cl then
    local n = tonumber(cl)
    if n == 0 then return "" end
    if n <= p.buffer then
      local b, err = req:body()
      if not b then return nil, "request body: " .. err end
      return b
    end
  elseif not h["transfer-encoding"] then
    return nil
  end
  if req._proxy_streamed then return nil, "request body already sent" end
  return function()
    req._proxy_streamed = true
    local d, err = req:read()
    if err then error("request body: " .. err, 0) end
    return d
  end
end

---------------------------------------------------------------------------
-- The answer
---------------------------------------------------------------------------

-- a HEAD's answer: the upstream's Content-Length (the GET's) goes on in
-- the lines (seen bit 16), not the server's own for an empty body (0)
local function head_lines(code, lines, seen, cl)
  -- (digits only: a repeated one's table, "0x10" or "1e3" sends none)
  if code == 204 or code == 304 or type(cl) ~= "string" or #cl > 15 or not find(cl, "^%d+$") then
    return lines, seen
  end
  return lines .. "Content-Length: " .. cl .. "\r\n", seen | 16
end

-- the length of a client response's body when its framing gives one (a
-- Content-Length: the state's count before any read, or the body that came
-- whole with the head; none: 0), else nil (chunked, or until close)
local function body_length(up)
  local st = up._st
  if st then
    local mode = st.mode
    if mode == "length" then return st.left end
    return mode == "none" and 0 or nil
  end
  local b = up._body or up.body
  return b and #b or nil
end

-- a streamed answer that failed after its head went out
local function cut(res, up, err)
  up:close()
  abort(res)
  return false, err
end

-- sends a client response (http.request's, or streamed's) on
local function relay(res, up, p, method)
  local code = up.status
  if code < 200 or code > 599 then
    up:close()
    return nil, "bad response: status " .. code
  end
  if method == "HEAD" or code == 204 or code == 304 then
    up:close()
    local ok, err
    if method == "HEAD" and up._relay then
      local lines, seen = head_lines(code, up._relay, up._rseen, up.headers["content-length"])
      ok, err = answer_lines(res, code, STATUS_LINE[code], lines, seen, "")
    else
      ok, err = res:forward(up, "")
    end
    if ok then return true end
    return false, err
  end
  local n = body_length(up)
  up:settimeout(p.body_timeout) -- the body: per read, not the whole
  if n and n <= p.buffer then
    local body, err = up:readall()
    if not body then return nil, err end
    local ok, werr = res:forward(up, body)
    if ok then return true end
    return false, werr
  end
  res:status(code):relay(up)
  if n then sized(res, n) end -- (its Content-Length kept, not chunked)
  while true do
    local d, err = up:read()
    if not d then
      if err then return cut(res, up, err) end
      break
    end
    local ok, werr = res:write(d)
    if not ok then return cut(res, up, werr) end
  end
  local ok, err = res:finish()
  if ok then return true end
  return false, err
end

-- the answer whose head was read on conn (readresponse's results)
local function answer(res, p, conn, method, status, reason, minor, h, rawhead, mode, left,
                      close, whole, rlines, rseen)
  if status < 200 or status > 599 or not rlines then
    conn:close()
    p.pool:put(conn)
    return nil, rlines and "bad response: status " .. status or "headers too large"
  end
  if whole or mode == "none" then -- the conn is done: back to the pool
    if close then conn:close() end
    local put = p.put
    if not (put and put(conn)) then p.pool:put(conn) end
    if method == "HEAD" and h then
      rlines, rseen = head_lines(status, rlines, rseen, h["content-length"])
    end
    local ok, err = answer_lines(res, status, STATUS_LINE[status], rlines, rseen, whole or "")
    if ok then return true end
    return false, err
  end
  local up, err = streamed(conn, p.pool, method, status, reason, minor, h, rawhead, mode, left,
    close, whole, rlines, rseen)
  if not up then return nil, err end
  return relay(res, up, p, method)
end

---------------------------------------------------------------------------
-- The exchange
---------------------------------------------------------------------------

local CONTENT_LENGTH_LINE = setmetatable({}, { __index = function(t, n)
  local l = "Content-Length: " .. n .. "\r\n"
  if n < 4096 then t[n] = l end
  return l
end })

-- a new conn to the upstream (none idle in the pool), its deadline set:
-- conn | nil, err
local function dial(p, deadline)
  local timeout
  if deadline then
    timeout = deadline - now()
    if timeout <= 0 then return nil, "timeout" end
  end
  local conn, err = p.pool:dial(p.addr, timeout)
  if not conn then return nil, err end
  if deadline then conn:setdeadline(deadline) end
  return conn
end

-- a plain upstream, no body or a string: the head and body in one write,
-- the answer's head read in one C step (its lines made for the relay)
local function exchange(res, p, method, line, hostl, lines, body, deadline)
  -- the server's answer is the common one: made after its status line in C
  -- (res._simple, the server's mark of a request whose answer nothing has
  -- changed yet, says so without a call for all but HEAD)
  local plain = res._simple and method ~= "HEAD" or answer_plain(res)
  local framing = ""
  if body and (#body > 0 or method == "POST" or method == "PUT" or method == "PATCH") then
    framing = CONTENT_LENGTH_LINE[#body]
  end
  local take, err = p.take, nil
  for _ = 1, 3 do
    local conn = take and take(p.addr, deadline) -- (an idle one, its deadline set)
    if not conn then
      conn, err = dial(p, deadline)
      if not conn then return nil, err end
    end
    local ok, got
    ok, err = conn:write(line, hostl, lines, framing, "\r\n", body or "")
    if ok then
      local status, reason, minor, h, rawhead, mode, left, close, whole, rlines, rseen, tail =
        read_response(conn, MAX_HEADER_BYTES, MAX_HEADERS, CLIENT_READS, method == "HEAD",
          p.buffer, RELAY_EXCEPT, Headers, plain)
      if tail then -- the common answer: the conn is done, the rest made in C
        if close then conn:close() end
        local put = p.put
        if not (put and put(conn)) then p.pool:put(conn) end
        local wok, werr = answer_tail(res, status, tail)
        if wok then return true end
        return false, werr
      end
      if status then
        return answer(res, p, conn, method, status, reason, minor, h, rawhead, mode, left, close,
          whole, rlines, rseen)
      end
      err, got = reason, minor
    end
    local retry = not got and RETRY[err] and conn:reused() > 0
    conn:close()
    p.pool:put(conn)
    if not retry then break end
  end
  return nil, err
end

-- https, or a streamed body: through http.request
local function request(res, p, method, target, lines, body, timeout)
  local up, err = H.request({
    method = method, url = p.base .. target, fields = lines, body = body, timeout = timeout,
    pool = p.pool, tls = p.tls, stream = true, only_headers = NO_VALUES, relay = RELAY_EXCEPT,
  })
  if not up then return nil, err end
  return relay(res, up, p, method)
end

local function check_target(target)
  if type(target) ~= "string" or not find(target, "^[/*][!-~]*$") then
    error("http.proxy: target must be a request target (\"/path?query\")", 3)
  end
end

--- http.proxy(req, res, up [, target [, timeout]]) -> true | nil, err | false, err
function M.proxy(req, res, up, target, timeout)
  local p = ups[up] or prepare(up)
  if res._sent then error("http.proxy: the response's head was already sent", 2) end
  if target == nil then target = req.target else check_target(target) end
  if timeout == nil then
    timeout = p.timeout
  elseif type(timeout) ~= "number" then
    error("http.proxy: timeout must be a number", 2)
  elseif timeout <= 0 then
    return nil, "timeout"
  end
  local method = req.method
  local lines, seen = request_fields(req, p)
  if not lines then return nil, "bad request: too many header fields to relay" end
  local body, berr -- (none: no call)
  local rh = req.headers
  if rh["content-length"] or rh["transfer-encoding"] then
    body, berr = body_of(req, p)
    if berr then return nil, berr end
  end
  if p.tls or (body and type(body) == "function") then
    return request(res, p, method, target, lines, body, timeout)
  end
  local hostl = seen & 1 == 0 and p.hostline or "" -- (no Host received: HTTP/1.0)
  local lc = p.lines[method] -- (a hit: no call)
  local line = lc and lc.t[target] or request_line(p, method, target)
  return exchange(res, p, method, line, hostl, lines, body, timeout and now() + timeout)
end

--- install(http, server): adds http.proxy; server: the server's parts it
--- answers with (answer: an answer from relayed lines, status_line: code
--- -> its status line, plain: whether an answer is the common one, tail:
--- the common answer from readresponse's, sized: a streamed answer of a
--- known length, abort: an answer cut short)
function M.install(http, server)
  H = http
  answer_lines, STATUS_LINE, abort = server.answer, server.status_line, server.abort
  answer_plain, answer_tail, sized = server.plain, server.tail, server.sized
  http.proxy = M.proxy
end

return M
