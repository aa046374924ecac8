-- http.lua: an HTTP/1.1 server for goluarun (RFC 9110 / 9112).
--
--   local http = require "goluarun.http"
--   local app = http.router()
--   app:get("/", function(req, res) res:send("hello\n") end)
--   app:post("/echo", function(req, res) res:send(req:body()) end)
--   app:get("/users/:id", function(req, res) res:json({ id = req.params.id }) end)
--   local ln = assert(http.serve(":8080", app, { max_body = 8 * 1024 * 1024 }))
--
-- http.serve(addr, handler, opts) -> listener | nil, err   (net.serve)
-- http.handle(conn, handler, opts)  serves one connection until it ends,
--                                    then closes it
-- handler: a function(req, res) or a router (http.router()).
--
-- opts (all optional; read when serve/handle is called):
--   max_header_bytes  request line + header bytes            (16384)  -> 431
--   max_headers       number of header fields                  (100)  -> 431
--   max_body          request body bytes                   (1 MiB)   -> 413
--   header_timeout    seconds from the first byte of a request to the end
--                     of its head                              (10)  -> 408
--   idle_timeout      seconds a keep-alive connection may stay idle, and
--                     the per-operation timeout of every later read/write
--                     (body reads, response writes)            (60)  -> close
--   linger_timeout    seconds spent draining the client's unread input
--                     after an error response, before closing   (2)
--   date              send a Date header                      (true)
--   on_error          function(err, req) for handler errors (default:
--                     a line on stderr)
--   backlog, reuseport  passed to net.listen
--   tls               a TLS config (net's: cert, key, sni, ca, verify,
--                     min_version, ...; docs/API.md "TLS"): http.serve
--                     serves HTTPS; alpn defaults to { "http/1.1" }.
--                     req.conn:tlsinfo() tells the handler about it
--
-- req: method, path (without the query), query_string (raw, or nil),
--   query (table: name -> value, or a list when a name repeats; percent-
--   and "+"-decoded), target (path plus "?query"), headers (lower-case
--   names; repeated fields joined with ", "), version ("1.0" / "1.1"),
--   params (router path parameters; else an empty read-only table),
--   conn, trailers (after a chunked body); version "1.1", an empty query
--   and empty params are inherited (http.Request), not stored in each
--   request: pairs(req) does not list them,
--   req:body() -> the whole body (string) | nil, err  (err: "body too
--   large", "bad chunked encoding", "timeout", "eof", ...). The body is
--   read only when asked for ("100 Continue" is sent then, if the client
--   expects it); an unread body is discarded after the handler returns.
--   req:read() -> the next piece of the body | nil at its end | nil, err:
--   the body as it arrives, instead of req:body() (proxies).
--   req:rawhead() -> s, pos: the head as received starts at s:sub(pos).
--
-- The client (http.request, http.get, http.post) lives in
-- lua/goluarun/http_client.lua, which this module installs: see its API
-- there; both sides parse with the grammar below. http.proxy (a reverse
-- proxy's request: the server's request on to an upstream, its answer
-- back) lives in lua/goluarun/http_proxy.lua.
-- res: res:status(code [, reason]) -> res, res:header(name, value) -> res
--   (sets; value nil removes; a list value sends several lines),
--   res:headers(t [, except]) -> res (every field of t whose lower-case
--   name is not a key of except, in one step; Content-Length, Transfer-
--   Encoding, Connection skipped; not merged with res:header's fields),
--   res:relay(head [, pos [, drop]]) -> res (a received head's fields, names
--   as received, minus hop-by-hop ones and drop's; no default Content-Type),
--   res:forward(r [, body]) -> true | nil, err | false (r a client
--   response: res:status(r.status):relay(r):send(body) in one call; no
--   body: r's that is at hand, else false and nothing sent),
--   res:send([body]) -> true | nil, err, res:json(value) -> same;
--   streaming: res:write(...) sends the head and then one chunk per call
--   ("Transfer-Encoding: chunked"; HTTP/1.0: until close), res:finish()
--   ends the body (also done when the handler returns).
--   res:hijack() -> conn, buffered: takes the connection over from the
--   server (a protocol upgrade, e.g. goluarun.websocket): nothing more is
--   sent or read as HTTP, `buffered` is what the server had read past
--   this request's head (the new protocol's first bytes), the conn's
--   timeout is cleared; the conn stays open until the handler returns.
--   A response has Content-Length unless streamed; a handler that returns
--   without sending sends its status with an empty body. An error in a handler
--   gives 500 (or the body error's status, e.g. 413) and closes the
--   connection. res:send(req:body()) therefore answers 413/400/408 itself
--   when the body cannot be read.
--
-- router = http.router(): router:get/post/put/delete/patch/head/options(
--   path, fn), router:all(path, fn) (any method), router:route(method,
--   path, fn); each returns the router. Paths are matched on req.path as
--   received (not percent-decoded); ":name" segments and a last "*" segment
--   are captured, decoded, into req.params. Unknown path: 404; known path,
--   other method: 405 with Allow; HEAD uses the GET handler (no body is
--   sent). Defining a method/path twice raises.
-- Other: http.parse_query(s), http.unescape(s), http.reasons[code].
--
-- Each connection runs in its own goroutine and its requests are handled
-- one after the other, so pipelined requests are answered in order. Bare
-- LF line ends are accepted, empty lines before a request line ignored.
--
-- Server answers: 400 malformed request (request line, header syntax,
-- obs-fold, bare CR, control characters, bad Content-Length, both
-- Content-Length and Transfer-Encoding, bad chunked encoding, missing
-- Host in HTTP/1.1), 408 head not complete within header_timeout, 413
-- body too large, 417 unknown Expect, 431 head too large / too many
-- fields, 501 unknown transfer coding, 505 HTTP major version other than 1;
-- each of these closes the connection ("Connection: close").
local lpeg = require "lpeg"
local go = require "go"
local net = require "net"
local httpparse = require "goluarun.httpparse"
local parse_request, field_block, relay_fields = httpparse.request, httpparse.block,
  httpparse.relay

local P, R, S, C, Cc, Cf, Cg, Ct, Cp =
  lpeg.P, lpeg.R, lpeg.S, lpeg.C, lpeg.Cc, lpeg.Cf, lpeg.Cg, lpeg.Ct, lpeg.Cp
local match = lpeg.match
local find, sub, byte, lower, gsub, gmatch, char, format =
  string.find, string.sub, string.byte, string.lower, string.gsub,
  string.gmatch, string.char, string.format
local concat = table.concat
local type, tostring, tonumber, error, xpcall, setmetatable, getmetatable,
  pairs, ipairs, select =
  type, tostring, tonumber, error, xpcall, setmetatable, getmetatable,
  pairs, ipairs, select
local math_type = math.type
local os_time, os_date = os.time, os.date
local traceback = debug.traceback
local now = go.now

local M = {}

---------------------------------------------------------------------------
-- Status codes
---------------------------------------------------------------------------

local REASON = {
  [100] = "Continue", [101] = "Switching Protocols",
  [200] = "OK", [201] = "Created", [202] = "Accepted",
  [203] = "Non-Authoritative Information", [204] = "No Content",
  [205] = "Reset Content", [206] = "Partial Content",
  [300] = "Multiple Choices", [301] = "Moved Permanently", [302] = "Found",
  [303] = "See Other", [304] = "Not Modified", [307] = "Temporary Redirect",
  [308] = "Permanent Redirect",
  [400] = "Bad Request", [401] = "Unauthorized", [402] = "Payment Required",
  [403] = "Forbidden", [404] = "Not Found", [405] = "Method Not Allowed",
  [406] = "Not Acceptable", [408] = "Request Timeout", [409] = "Conflict",
  [410] = "Gone", [411] = "Length Required", [412] = "Precondition Failed",
  [413] = "Content Too Large", [414] = "URI Too Long",
  [415] = "Unsupported Media Type", [416] = "Range Not Satisfiable",
  [417] = "Expectation Failed", [421] = "Misdirected Request",
  [422] = "Unprocessable Content", [426] = "Upgrade Required",
  [428] = "Precondition Required", [429] = "Too Many Requests",
  [431] = "Request Header Fields Too Large",
  [500] = "Internal Server Error", [501] = "Not Implemented",
  [502] = "Bad Gateway", [503] = "Service Unavailable",
  [504] = "Gateway Timeout", [505] = "HTTP Version Not Supported",
}
M.reasons = REASON

-- "HTTP/1.1 200 OK\r\n" per code (codes are validated integers 200..599)
local STATUS_LINE = setmetatable({}, { __index = function(t, code)
  local s = "HTTP/1.1 " .. code .. " " .. (REASON[code] or "") .. "\r\n"
  t[code] = s
  return s
end })

---------------------------------------------------------------------------
-- Grammar (compiled once, at load)
---------------------------------------------------------------------------

local DIGIT = R"09"
local HEX = R("09", "af", "AF")
local TCHAR = R("09", "az", "AZ") + S"!#$%&'*+-.^_`|~"
local TOKEN = TCHAR^1
local VCHAR = R"\33\126"
local FCHAR = VCHAR + R"\128\255" -- field-vchar: VCHAR / obs-text
local WS = S" \t"
local EOL = P"\r"^-1 * "\n"
local LEADING = S"\r\n"^0 -- empty lines before a request line are ignored

-- lower-cased field names, cached (bounded: names come from clients)
local nlower = 0
local LOWER = setmetatable({}, { __index = function(t, k)
  local l = lower(k)
  if nlower < 2000 then
    nlower = nlower + 1
    t[k] = l
  end
  return l
end })

-- repeated fields are combined with ", " (RFC 9110 5.3)
local function fold(t, k, v)
  local old = t[k]
  if old == nil then t[k] = v else t[k] = old .. ", " .. v end
  return t
end

-- request-line = method SP request-target SP HTTP-version CRLF
local TARGET = C((VCHAR - "?")^1) * ("?" * C(VCHAR^0) + Cc(nil))
local REQUEST_LINE = C(TOKEN) * " " * TARGET * " HTTP/" * C(DIGIT) * "."
  * C(DIGIT) * EOL
-- field-line = field-name ":" OWS field-value OWS CRLF; the value is
-- captured without its surrounding whitespace. No obs-fold, no bare CR,
-- no control characters.
local FIELD_VALUE = C((FCHAR^1 * (WS^1 * FCHAR^1)^0)^-1)
local FIELD = Cg(TOKEN / LOWER * ":" * WS^0 * FIELD_VALUE * WS^0 * EOL)
-- the same without captures, unbounded: tells "too many fields" from
-- "malformed"
local HEAD_ANY = LEADING * (TOKEN * " " * (VCHAR - "?")^1 * ("?" * VCHAR^0)^-1
  * " HTTP/" * DIGIT * "." * DIGIT * EOL)
  * (TOKEN * ":" * WS^0 * (FCHAR^1 * (WS^1 * FCHAR^1)^0)^-1 * WS^0 * EOL)^0
  * EOL

-- head: method, path, query|nil, major, minor, headers, position after it.
-- This grammar is the reference: the server and the client parse heads
-- with goluarun.httpparse (bindings/lhttp.c), its C transcription, which
-- spec/httpparse_spec.lua checks against it (same bytes, same captures).
local head_patterns = {}
local function head_pattern(n)
  local p = head_patterns[n]
  if not p then
    p = LEADING * REQUEST_LINE * Cf(Ct"" * FIELD^-n, fold) * EOL * Cp()
    head_patterns[n] = p
  end
  return p
end

-- The client's side of the same grammar (lua/goluarun/http_client.lua):
-- status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF;
-- the same field lines, but a repeated field becomes a list.
local STATUS_LINE_P = P"HTTP/" * C(DIGIT) * "." * C(DIGIT) * " "
  * (C(DIGIT * DIGIT * DIGIT) / tonumber) * (" " * C((FCHAR + WS)^0) + Cc(""))
  * EOL
local function listfold(t, k, v)
  local old = t[k]
  if old == nil then
    t[k] = v
  elseif type(old) == "table" then
    old[#old + 1] = v
  else
    t[k] = { old, v }
  end
  return t
end
-- response head: major, minor, status, reason, headers, position after it
local response_patterns = {}
local function response_pattern(n)
  local p = response_patterns[n]
  if not p then
    p = STATUS_LINE_P * Cf(Ct"" * FIELD^-n, listfold) * EOL * Cp()
    response_patterns[n] = p
  end
  return p
end

local LEADING_END = LEADING * Cp()
local CONTENT_LENGTH = DIGIT^1 * -1
-- chunk = chunk-size [ chunk-ext ] CRLF (the line without its "\n")
local CHUNK_LINE = C(HEX^1) * (WS^0 * ";" * (FCHAR + WS)^0)^-1 * P"\r"^-1 * -1
local TRAILER_LINE = TOKEN / LOWER * ":" * WS^0 * FIELD_VALUE * WS^0
  * P"\r"^-1 * -1
local TOKEN_ONLY = TOKEN * -1

-- query strings: a=1&b=x+y&c=%41
local function unescape(s)
  if find(s, "[%%+]") then
    s = gsub(gsub(s, "+", " "), "%%(%x%x)", function(h)
      return char(tonumber(h, 16))
    end)
  end
  return s
end
M.unescape = unescape

local function qfold(t, k, v)
  if k == "" then return t end
  local old = t[k]
  if old == nil then
    t[k] = v
  elseif type(old) == "table" then
    old[#old + 1] = v
  else
    t[k] = { old, v }
  end
  return t
end
local QPAIR = Cg(C((1 - S"&=")^0) / unescape
  * ("=" * C((1 - P"&")^0) / unescape + Cc("")))
local QUERY = Cf(Ct"" * QPAIR * ("&" * QPAIR)^0, qfold)

--- http.parse_query("a=1&b=2") -> { a = "1", b = "2" }
function M.parse_query(s)
  if type(s) ~= "string" then error("http.parse_query: string expected", 2) end
  return match(QUERY, s)
end

local EMPTY = setmetatable({}, { __newindex = function()
  error("http: this table is read-only (shared empty table)", 2)
end })

local function has_token(v, tok)
  v = lower(v)
  if v == tok then return true end
  if not find(v, tok, 1, true) then return false end -- (most values)
  for t in gmatch(v, "[^,%s]+") do
    if t == tok then return true end
  end
  return false
end

---------------------------------------------------------------------------
-- Configuration
---------------------------------------------------------------------------

local DEFAULTS = {
  max_header_bytes = 16384,
  max_headers = 100,
  max_body = 1024 * 1024,
  header_timeout = 10,
  idle_timeout = 60,
  linger_timeout = 2,
  date = true,
}
local INTEGER_OPT = { max_header_bytes = true, max_headers = true, max_body = true }

local function default_on_error(err)
  io.stderr:write("http: handler error: ", tostring(err), "\n")
  io.stderr:flush()
end

-- opts.tls: a copy of the caller's TLS config (net checks its fields) that
-- offers HTTP/1.1 over ALPN unless the caller chose the protocols
local function tls_config(t, level)
  if t == nil then return nil end
  if type(t) ~= "table" then error("http: opts.tls must be a table", level + 1) end
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  if c.alpn == nil then c.alpn = { "http/1.1" } end
  return c
end

local cfg_cache = setmetatable({}, { __mode = "k" })
local NOOPTS = {}

local function config(opts, level)
  if opts == nil then opts = NOOPTS end
  if type(opts) ~= "table" then error("http: opts must be a table", level + 1) end
  local c = cfg_cache[opts]
  if c then return c end
  c = {}
  for k, d in pairs(DEFAULTS) do
    local v = opts[k]
    if v == nil then v = d end
    if k == "date" then
      c[k] = v and true or false
    else
      if type(v) ~= "number" or v ~= v or v <= 0
        or (INTEGER_OPT[k] and math_type(v) ~= "integer") then
        error("http: opts." .. k .. " must be a positive "
          .. (INTEGER_OPT[k] and "integer" or "number"), level + 1)
      end
      c[k] = v
    end
  end
  if opts.on_error ~= nil and type(opts.on_error) ~= "function" then
    error("http: opts.on_error must be a function", level + 1)
  end
  c.on_error = opts.on_error or default_on_error
  if opts.backlog ~= nil or opts.reuseport ~= nil or opts.tls ~= nil then
    c.listen = { backlog = opts.backlog, reuseport = opts.reuseport,
      tls = tls_config(opts.tls, level + 1) }
  end
  cfg_cache[opts] = c
  return c
end

---------------------------------------------------------------------------
-- Date header, cached per second
---------------------------------------------------------------------------

local date_sec, date_hdr = -1, ""
local function date()
  local t = os_time()
  if t ~= date_sec then
    date_sec = t
    date_hdr = os_date("!Date: %a, %d %b %Y %H:%M:%S GMT\r\n", t)
  end
  return date_hdr
end

---------------------------------------------------------------------------
-- Connection state and input
---------------------------------------------------------------------------
-- st: one per connection
--   conn, cfg
--   buf, pos     bytes read but not consumed: buf:sub(pos); anything the
--                conn itself buffers comes after them
--   blen         unread body of the current request: bytes, -1 = chunked
--                (not yet read), 0 = none / consumed
--   expect       "100 Continue" still owed before reading the body
--   close        close after this response
--   keep10       HTTP/1.0 keep-alive (answer "Connection: keep-alive")
--   head         HEAD request (no body in the response)
--   req          the current request
--   hijacked     res:hijack() took the conn over: the loop ends, no answer

-- Drains what the client still sends (bounded in time and bytes) after
-- FIN, so that closing does not reset the connection before the client
-- has read our answer.
local LINGER_MAX = 4 * 1024 * 1024
local function linger(st)
  local conn = st.conn
  if not conn:closewrite() then return end
  conn:setreaddeadline(now() + st.cfg.linger_timeout)
  local total = 0
  while total < LINGER_MAX do
    local d = conn:read()
    if not d then break end
    total = total + #d
  end
end

-- A server-generated answer (an error); closes the connection afterwards.
local function reject(st, code, extra)
  local body = (REASON[code] or "Error") .. "\n"
  st.conn:write(STATUS_LINE[code], st.cfg.date and date() or "",
    "Content-Type: text/plain; charset=utf-8\r\nContent-Length: ", #body,
    "\r\nConnection: close\r\n", extra or "", "\r\n", body)
  st.close = true
  linger(st)
end

-- exactly n (> 0) bytes. Big reads go in pieces: each conn:read is one
-- operation under the idle timeout, and the conn's own buffer (which
-- grows to the largest read and never shrinks) stays small.
local PIECE = 256 * 1024
local function readn(st, n)
  local buf, pos = st.buf, st.pos
  local avail = #buf - pos + 1
  if avail >= n then
    st.pos = pos + n
    return sub(buf, pos, pos + n - 1)
  end
  local part = avail > 0 and sub(buf, pos) or nil
  st.buf, st.pos = "", 1
  local need = n - avail
  if need <= PIECE then
    local rest, err = st.conn:read(need)
    if not rest then return nil, err end
    if part then return part .. rest end
    return rest
  end
  local parts, np = { part }, part and 1 or 0
  while need > 0 do
    local k = need < PIECE and need or PIECE
    local d, err = st.conn:read(k)
    if not d then return nil, err end
    np = np + 1
    parts[np] = d
    need = need - k
  end
  return concat(parts, "", 1, np)
end

-- one line without its "\n" (a "\r" before it is kept)
local function readline(st)
  local buf, pos = st.buf, st.pos
  local limit = st.cfg.max_header_bytes
  local e = find(buf, "\n", pos, true)
  if e then
    if e - pos > limit then return nil, "line too long" end
    st.pos = e + 1
    return sub(buf, pos, e - 1)
  end
  local part = sub(buf, pos)
  st.buf, st.pos = "", 1
  if #part > limit then return nil, "line too long" end
  local rest, err = st.conn:read("L") -- the conn's limit is max_header_bytes
  if not rest then return nil, err end
  local line = part .. rest
  if #line > limit + 1 then return nil, "line too long" end
  if byte(line, -1) ~= 10 then return nil, "eof" end -- unterminated last line
  return sub(line, 1, -2)
end

-- status for a failed body read (nil: the connection is gone, no answer).
-- "eof": the client closed its side before the body was complete: its
-- fault, and it may still read the answer (a half-close)
local function body_code(err)
  if err == "timeout" then return 408 end
  if err == "line too long" or err == "eof" then return 400 end
  return nil
end

-- the trailer section after the last chunk: true, or nil, err, status
local function read_trailers(st)
  local cfg = st.cfg
  local trailers, nt, tb = nil, 0, 0
  while true do
    local line, err = readline(st)
    if not line then return nil, err, body_code(err) end
    if line == "" or line == "\r" then break end
    nt = nt + 1
    tb = tb + #line
    if nt > cfg.max_headers or tb > cfg.max_header_bytes then
      return nil, "trailers too large", 431
    end
    local k, v = match(TRAILER_LINE, line)
    if not k then return nil, "bad chunked encoding", 400 end
    trailers = fold(trailers or {}, k, v)
  end
  st.trailers = trailers
  return true
end

-- reads a chunked body: the body (keep) or true, or nil, err, status
local function read_chunked(st, keep)
  local cfg = st.cfg
  local max = cfg.max_body
  local parts, np, total = keep and {} or nil, 0, 0
  while true do
    local line, err = readline(st)
    if not line then return nil, err, body_code(err) end
    local hex = match(CHUNK_LINE, line)
    if not hex or #hex > 15 then return nil, "bad chunked encoding", 400 end
    local size = tonumber(hex, 16)
    if size == 0 then break end
    total = total + size
    if total > max then return nil, "body too large", 413 end
    local data
    data, err = readn(st, size)
    if not data then return nil, err, body_code(err) end
    if keep then
      np = np + 1
      parts[np] = data
    end
    line, err = readline(st)
    if not line then return nil, err, body_code(err) end
    if line ~= "" and line ~= "\r" then
      return nil, "bad chunked encoding", 400
    end
  end
  local ok, err, code = read_trailers(st)
  if not ok then return nil, err, code end
  if keep then return concat(parts, "", 1, np) end
  return true
end

local next_chunk

-- discards the unread body of the current request: true, or nil
local function discard_body(st)
  local blen = st.blen
  if blen < 0 and st.req and st.req._reading then -- req:read() began it
    while true do
      local d, err = next_chunk(st)
      if not d then
        st.blen = 0
        return not err or nil
      end
    end
  end
  st.blen = 0
  if blen > 0 then
    while blen > 0 do
      local n = blen > 65536 and 65536 or blen
      if not readn(st, n) then return nil end
      blen = blen - n
    end
    return true
  end
  return read_chunked(st, false)
end

-- Slow path of the request head: buf:sub(pos) is an incomplete (or
-- malformed, or oversized) head. Reads until the empty line that ends it
-- (within max_header_bytes and header_timeout). Returns the head
-- captures (st.buf/st.pos set after the head), or nil, status (nil: close
-- quietly).
local function slow_head(st, buf, pos)
  local conn, cfg = st.conn, st.cfg
  local limit = cfg.max_header_bytes
  local data = pos == 1 and buf or sub(buf, pos)
  local parts, np, total, tail = nil, 0, 0, ""
  local deadline = false
  while true do
    if np == 0 then -- still before the request line: drop empty lines
      local s = match(LEADING_END, data)
      if s > 1 then
        total = total + s - 1
        data = sub(data, s)
      end
    end
    if data ~= "" then
      local scan = np == 0 and data or tail .. data
      if find(scan, "\n\r?\n") then
        local head
        if np == 0 then
          head = data
        else
          np = np + 1
          parts[np] = data
          head = concat(parts, "", 1, np)
        end
        if deadline then conn:setreaddeadline(nil) end
        local m, path, q, major, minor, h, nx = parse_request(head, 1, cfg.max_headers)
        if m then
          if nx - 1 > limit then return nil, 431 end
          st.buf, st.pos = head, nx
          return m, path, q, major, minor, h
        end
        local e = find(head, "\n\r?\n")
        if e > limit or match(HEAD_ANY, head) then return nil, 431 end
        return nil, 400
      end
      total = total + #data
      if total > limit then return nil, 431 end
      if np == 0 then parts = {} end
      np = np + 1
      parts[np] = data
      tail = sub(tail .. data, -2)
    elseif total > limit then
      return nil, 431
    end
    if not deadline then
      conn:setreaddeadline(now() + cfg.header_timeout)
      deadline = true
    end
    local err
    data, err = conn:read()
    if not data then
      if err == "timeout" and np > 0 then return nil, 408 end
      return nil
    end
  end
end

---------------------------------------------------------------------------
-- Request
---------------------------------------------------------------------------

local Req = {}
Req.__index = Req
Req.__name = "http.request"
M.Request = Req
-- the fields most requests share are read through __index, not stored in
-- each request (fewer keys per request: less to build and to collect);
-- serve_conn stores its own only when they differ
Req.version = "1.1"
Req.query = EMPTY
Req.params = EMPTY
Req._hpos = 1 -- (the head at the start of the read: not pipelined)

-- "100 Continue" if the client waits for it: true, or nil, err
local function continue(self, st)
  if not st.expect then return true end
  if st.res._sent then
    -- the final answer went out without "100 Continue": the client
    -- may never send the body; the connection closes after this request
    st.close = true
    self._body_err = "response already sent"
    return nil, self._body_err
  end
  st.expect = false
  local ok, werr = st.conn:write("HTTP/1.1 100 Continue\r\n\r\n")
  if not ok then
    st.close = true
    st.blen = 0
    self._body_err = werr
    return nil, werr
  end
  return true
end

--- req:body() -> the whole request body | nil, err
function Req:body()
  local b = self._body
  if b then return b end
  if self._body_err then return nil, self._body_err end
  local st = self._st
  if st.req ~= self then
    error("http: req:body() after the request was answered and finished", 2)
  end
  if self._reading then error("http: req:body() after req:read()", 2) end
  local blen = st.blen
  if blen == 0 then
    self._body = ""
    return ""
  end
  local err, code
  local ok, cerr = continue(self, st)
  if not ok then return nil, cerr end
  st.blen = 0
  if blen > 0 then
    b, err = readn(st, blen)
    if not b then code = body_code(err) end
  else
    b, err, code = read_chunked(st, true)
    self.trailers = st.trailers
  end
  if not b then
    st.close = true
    self._body_err = err
    self._body_code = code
    return nil, err
  end
  self._body = b
  return b
end

-- a failed streamed body read: the connection closes after this request
local function read_failed(self, st, err, code)
  st.close = true
  st.blen = 0
  self._body_err = err
  self._body_code = code
  return nil, err
end

-- the next piece of a chunked body (nil at its end), or nil, err, status
function next_chunk(st)
  local left = st.chunk_left or 0
  if left == 0 then
    local line, err = readline(st)
    if not line then return nil, err, body_code(err) end
    local hex = match(CHUNK_LINE, line)
    if not hex or #hex > 15 then return nil, "bad chunked encoding", 400 end
    left = tonumber(hex, 16)
    if left == 0 then
      local ok, terr, code = read_trailers(st)
      if not ok then return nil, terr, code end
      st.blen = 0
      return nil
    end
    st.body_total = (st.body_total or 0) + left
    if st.body_total > st.cfg.max_body then return nil, "body too large", 413 end
  end
  local n = left < PIECE and left or PIECE
  local d, err = readn(st, n)
  if not d then return nil, err, body_code(err) end
  left = left - n
  st.chunk_left = left
  if left == 0 then
    local line, lerr = readline(st)
    if not line then return nil, lerr, body_code(lerr) end
    if line ~= "" and line ~= "\r" then return nil, "bad chunked encoding", 400 end
  end
  return d
end

--- req:rawhead() -> s, pos: the request's head as received starts at
--- s:sub(pos) (a proxy relays its fields: httpparse.relay)
function Req:rawhead() return self._head, self._hpos end

--- req:read() -> the next piece of the request body | nil at its end |
--- nil, err: the body as it arrives (a proxy streams it on), instead of
--- req:body(); max_body still bounds it.
function Req:read()
  if self._body_err then return nil, self._body_err end
  local st = self._st
  if st.req ~= self then
    error("http: req:read() after the request was answered and finished", 2)
  end
  if self._body then error("http: req:read() after req:body()", 2) end
  local blen = st.blen
  if blen == 0 then return nil end
  if not self._reading then
    self._reading = true
    st.chunk_left, st.body_total = 0, 0
    local ok, err = continue(self, st)
    if not ok then return nil, err end
  end
  if blen > 0 then
    local n = blen < PIECE and blen or PIECE
    local d, err = readn(st, n)
    if not d then return read_failed(self, st, err, body_code(err)) end
    st.blen = blen - n
    return d
  end
  local d, err, code = next_chunk(st)
  if d then return d end
  if err then return read_failed(self, st, err, code) end
  self.trailers = st.trailers
  return nil
end

---------------------------------------------------------------------------
-- Response
---------------------------------------------------------------------------

local Res = {}
Res.__index = Res
Res.__name = "http.response"
M.Response = Res

local DEFAULT_HEADERS = "Content-Type: text/plain; charset=utf-8\r\n"
local STATUS_200 = STATUS_LINE[200]

-- the end of a head with the default Content-Type and no Connection
-- field: "Content-Type: ...\r\nContent-Length: N\r\n\r\n", cached for
-- small N (the common answer writes 4 strings, not 7)
local PLAIN_TAIL = setmetatable({}, { __index = function(t, n)
  local s = DEFAULT_HEADERS .. "Content-Length: " .. n .. "\r\n\r\n"
  if n <= 4096 then t[n] = s end
  return s
end })

-- "Content-Length: N\r\n", cached for small N
local CONTENT_LENGTH_LINE = setmetatable({}, { __index = function(t, n)
  local s = "Content-Length: " .. n .. "\r\n"
  if n <= 4096 then t[n] = s end
  return s
end })

--- res:status(code [, reason]) -> res
function Res:status(code, reason)
  if self._sent then error("http: res:status: the head was already sent", 2) end
  if math_type(code) ~= "integer" or code < 200 or code > 599 then
    error("http: res:status: code must be an integer in 200..599", 2)
  end
  if reason ~= nil then
    if type(reason) ~= "string" or find(reason, "[%c]") then
      error("http: res:status: bad reason phrase", 2)
    end
    self._line = "HTTP/1.1 " .. code .. " " .. reason .. "\r\n"
    self._simple = false
  else
    self._line = false
    if code ~= 200 then self._simple = false end
  end
  self._code = code
  return self
end

local function check_value(v, level)
  local tv = type(v)
  if tv == "number" then return tostring(v) end
  if tv ~= "string" then
    error("http: res:header: value must be a string or a number", level + 1)
  end
  if find(v, "\r", 1, true) or find(v, "\n", 1, true) or find(v, "\0", 1, true) then
    error("http: res:header: value contains CR, LF or NUL", level + 1)
  end
  return v
end

-- field names seen valid -> lower case (bounded: a proxy relays names
-- that come from its upstreams)
local HNAME, nhname = {}, 0

--- res:header(name, value) -> res (value: string, number, list, or nil)
function Res:header(name, value)
  if self._sent then error("http: res:header: the head was already sent", 2) end
  self._simple = false
  local lname = HNAME[name]
  if not lname then
    if type(name) ~= "string" or not match(TOKEN_ONLY, name) then
      error("http: res:header: invalid field name " .. tostring(name), 2)
    end
    lname = lower(name)
    if nhname < 2000 then
      nhname = nhname + 1
      HNAME[name] = lname
    end
  end
  if lname == "content-length" or lname == "transfer-encoding" then
    error("http: res:header: " .. name .. " is set by the server", 2)
  end
  if value ~= nil then
    if type(value) == "table" then
      local t = {}
      for i = 1, #value do t[i] = check_value(value[i], 2) end
      value = t
    else
      value = check_value(value, 2)
    end
  end
  if lname == "connection" then
    -- managed by the server; "close" is honoured
    if type(value) == "string" and has_token(value, "close") then
      self._st.close = true
    end
    return self
  end
  local hl, hk, hv, n = self._hl, self._hk, self._hv, self._n
  for i = 1, n do
    if hl[i] == lname then
      if value == nil then -- remove
        for j = i, n - 1 do
          hl[j], hk[j], hv[j] = hl[j + 1], hk[j + 1], hv[j + 1]
        end
        hl[n], hk[n], hv[n] = nil, nil, nil
        self._n = n - 1
      else
        hk[i], hv[i] = name, value
      end
      return self
    end
  end
  if value ~= nil then
    n = n + 1
    hl[n], hk[n], hv[n] = lname, name, value
    self._n = n
  end
  return self
end

--- res:get_header(name) -> value | nil
function Res:get_header(name)
  local lname = lower(name)
  for i = 1, self._n do
    if self._hl[i] == lname then return self._hv[i] end
  end
  return nil
end

-- the fields the server owns: res:headers skips them (Connection: close
-- is honoured)
local SERVER_OWN = { connection = true, ["content-length"] = true,
  ["transfer-encoding"] = true }

--- res:headers(t [, except]) -> res: every field of t (name -> value or
--- list, e.g. another message's headers) whose lower-case name is not a
--- key of except, in one step (httpparse.block)
function Res:headers(t, except)
  if self._sent then error("http: res:headers: the head was already sent", 2) end
  self._simple = false
  if type(t) ~= "table" then error("http: res:headers: a table expected", 2) end
  if except ~= nil and type(except) ~= "table" then
    error("http: res:headers: except must be a table", 2)
  end
  local lines, seen, connh = field_block(t, except, SERVER_OWN)
  if not lines then
    if seen == "name" then error("http: res:headers: invalid field name " .. tostring(connh), 2) end
    error("http: res:headers: a value is not a string or number, or contains CR, LF or NUL", 2)
  end
  if connh then
    if type(connh) == "table" then connh = concat(connh, ",") end
    if has_token(connh, "close") then self._st.close = true end
  end
  local blk = self._blk
  self._blk = blk and blk .. lines or lines
  self._bseen = self._bseen | seen
  return self
end

--- res:relay(head [, pos [, drop]]) -> res: the field lines of a received
--- head (s:sub(pos); a proxy's upstream answer) as they go on, names as
--- received, minus hop-by-hop ones, Content-Length and those whose lower
--- case is a key of drop (a set table, or a string "date,server" of up to
--- 16 comma-separated names; httpparse.relay); no default Content-Type.
--- res:relay(up [, drop]): up is a client response (http.request's): its
--- head's lines, those its read made already when the request asked
--- (req.relay) and no drop is given here, else as res:relay(up:rawhead())
local function relay_response(self, up, drop)
  local lines, seen = up._relay, up._rseen
  if not lines or drop ~= nil then
    local head = up._head
    if type(head) ~= "string" then
      error("http: res:relay: a head (string) or a client response expected", 3)
    end
    if drop ~= nil and type(drop) ~= "table" and type(drop) ~= "string" then
      error("http: res:relay: drop must be a table or a string", 3)
    end
    lines, seen = relay_fields(head, 1, drop)
    if not lines then error("http: res:relay: malformed head", 3) end
  end
  local blk = self._blk
  self._blk = blk and blk .. lines or lines
  self._bseen = self._bseen | seen | 4 -- (4: Content-Type: none of the server's)
  return self
end

function Res:relay(head, pos, drop)
  if self._sent then error("http: res:relay: the head was already sent", 2) end
  self._simple = false
  local th = type(head)
  if th == "table" then return relay_response(self, head, pos) end
  if th ~= "string" then error("http: res:relay: a head (string) expected", 2) end
  if pos ~= nil and (math_type(pos) ~= "integer" or pos < 1) then
    error("http: res:relay: pos must be a positive integer", 2)
  end
  if drop ~= nil and type(drop) ~= "table" and type(drop) ~= "string" then
    error("http: res:relay: drop must be a table or a string", 2)
  end
  local lines, seen = relay_fields(head, pos, drop)
  if not lines then error("http: res:relay: malformed head", 2) end
  local blk = self._blk
  self._blk = blk and blk .. lines or lines
  self._bseen = self._bseen | seen | 4 -- (4: Content-Type: none of the server's)
  return self
end

-- the status lines of the codes res:forward has checked (a plain table:
-- a hit is one read; a miss checks the code as res:status does)
local FORWARD_LINE = {}
local function forward_line(code)
  if math_type(code) ~= "integer" or code < 200 or code > 599 then
    error("http: res:forward: the response's status must be an integer in 200..599", 3)
  end
  local line = STATUS_LINE[code]
  FORWARD_LINE[code] = line
  return line
end

-- a write's result: true, or nil, err with the conn marked for closing
-- (res:send's common answer spells this out: no call on its hot path)
local function wrote(st, ok, err)
  if ok then return true end
  st.close = true
  return nil, err
end

-- writes an answer whose fields are whole lines (a relayed head's, or
-- res:relay/res:headers'), pre first: a Date line unless they hold one
-- (seen bit 8), the Content-Length unless they hold one (seen bit 16:
-- http.proxy's answer to a HEAD, the upstream's length), the body
local function write_lines_answer(st, line, seen, pre, lines, body)
  local dh = st.date and seen & 8 == 0 and (os_time() == date_sec and date_hdr or date()) or ""
  local ok, err = st.write(st.conn, line, dh, pre, lines,
    seen & 16 == 0 and CONTENT_LENGTH_LINE[#body] or "", "\r\n", st.head and "" or body)
  if ok then return true end -- (wrote's, without its call: a proxy's every answer)
  st.close = true
  return nil, err
end

-- whether an answer of relayed lines may go out as the common one: no
-- field of the handler's, keep-alive, not HTTP/1.0 keep-alive, no body
-- left unread behind an Expect (else res:send decides)
local function lines_plain(self, st)
  return self._n == 0 and not self._blk and not st.close and not st.keep10
    and not (st.expect and st.blen ~= 0)
end

-- res:forward's answer from its parts: the status code and its line, a
-- relayed head's lines and their seen bits (httpparse.relay's), the body
-- (http.proxy's fast path calls it too, for an answer that had no table,
-- with a code in 200..599 and its STATUS_LINE)
local function forward_lines(self, code, line, lines, seen, body)
  local st = self._st
  if code == 204 or code == 304 or not lines_plain(self, st) then -- (res:send decides)
    local blk = self._blk
    self._blk = blk and blk .. lines or lines
    self._bseen = self._bseen | seen | 4 -- (4: Content-Type: none of the server's)
    self._code, self._line, self._simple = code, false, false
    return Res.send(self, body)
  end
  -- the common answer: the lines, keep-alive, no field of the handler's.
  -- (_code is left as it is, and so is _simple: the answer is done, so
  -- nothing reads _code, and every other field holds what serve_conn's
  -- reset gives it: the next request's reset is the short one)
  self._sent, self._done = true, true
  return write_lines_answer(st, line, seen, "", lines, body)
end

-- whether res's answer would take forward_lines' common path (http.proxy
-- asks before the upstream's head is read: then its C step builds the
-- answer after the status line and Date, proxy_tail's)
local function proxy_plain(self)
  local st = self._st
  return not st.head and lines_plain(self, st)
end

-- forward_lines' common answer, the part after the status line and Date
-- made whole in C (httpread.readresponse's answer): true | nil, err
local function proxy_tail(self, code, tail)
  local st = self._st
  self._sent, self._done = true, true
  local dh = st.date and (os_time() == date_sec and date_hdr or date()) or ""
  local ok, err = st.write(st.conn, STATUS_LINE[code], dh, tail)
  if ok then return true end
  st.close = true
  return nil, err
end

-- http.proxy's streamed answer of a known length n: its Content-Length
-- line among the fields (seen bit 16), so res:write sends the body as it
-- comes, unchunked, and counts it (res._left)
local function proxy_sized(self, n)
  local blk, l = self._blk, "Content-Length: " .. n .. "\r\n"
  self._blk = blk and blk .. l or l
  self._bseen = self._bseen | 16
  self._left = n
end

-- http.proxy's answer that failed after its head went out: the server
-- neither ends its body nor keeps the conn (the client sees it cut short)
local function proxy_abort(self)
  self._done = true
  self._st.close = true
end

--- res:forward(r [, body]) -> true | nil, err | false: r a client
--- response (http.request's): res:status(r.status):relay(r):send(body) in
--- one call, the lines r's read made when the request had `relay` taken
--- as they are (a proxy's answer whose body it has whole). No body: r's
--- own when it is at hand (r.body, or a streamed body that came whole with
--- its head, which r:read() then no longer gives), else false, nothing sent
function Res:forward(up, body)
  if self._sent then error("http: res:forward: the head was already sent", 2) end
  if type(up) ~= "table" then error("http: res:forward: a client response expected", 2) end
  local code = up.status
  local line = FORWARD_LINE[code] or forward_line(code)
  if body == nil then -- (a streamed body that came whole: a string, no type() call)
    body = up._body
    if body then
      up._body = false
    else
      body = up.body
      if body == nil then return false end
      if type(body) ~= "string" then error("http: res:forward: body must be a string", 2) end
    end
  elseif type(body) ~= "string" then
    error("http: res:forward: body must be a string", 2)
  end
  local lines = up._relay
  if not lines then -- (the lines made from r's head here)
    relay_response(self, up)
    self._code, self._line, self._simple = code, false, false
    return Res.send(self, body)
  end
  return forward_lines(self, code, line, lines, up._rseen, body)
end

-- the handler's header lines; and whether they include a Date
local function header_block(self, want_ct)
  local n, blk = self._n, self._blk
  if n == 0 and not blk then return want_ct and DEFAULT_HEADERS or "", false end
  local hl, hk, hv = self._hl, self._hk, self._hv
  local s, ct, has_date = blk or "", self._bseen & 4 ~= 0, self._bseen & 8 ~= 0
  for i = 1, n do
    local v = hv[i]
    local l = hl[i]
    if l == "content-type" then ct = true elseif l == "date" then has_date = true end
    if type(v) == "table" then
      for j = 1, #v do s = s .. hk[i] .. ": " .. v[j] .. "\r\n" end
    else
      s = s .. hk[i] .. ": " .. v .. "\r\n"
    end
  end
  if want_ct and not ct then s = DEFAULT_HEADERS .. s end
  return s, has_date
end

-- res:send's answer with its own fields, a Connection field or no body
local function send_fields(self, st, line, code, close, body)
  local nobody = code == 204 or code == 304
  local connh = close and "Connection: close\r\n"
    or (st.keep10 and "Connection: keep-alive\r\n" or "")
  local hdrs, own_date = DEFAULT_HEADERS, false
  if nobody or self._n ~= 0 or self._blk then hdrs, own_date = header_block(self, not nobody) end
  local dh = st.date and not own_date and date() or ""
  local ok, err
  if nobody then
    ok, err = st.conn:write(line, dh, hdrs, connh, "\r\n")
  else
    ok, err = st.conn:write(line, dh, hdrs,
      self._bseen & 16 == 0 and CONTENT_LENGTH_LINE[#body] or "", connh, "\r\n",
      st.head and "" or body)
  end
  return wrote(st, ok, err)
end

--- res:send([body]) -> true | nil, err
function Res:send(body, berr)
  if self._sent then error("http: res:send: response already sent", 2) end
  if body == nil then
    if berr ~= nil then error("http: res:send: no body (" .. tostring(berr) .. ")", 2) end
    body = ""
  elseif type(body) ~= "string" then
    if type(body) == "number" then
      body = tostring(body)
    else
      error("http: res:send: body must be a string", 2)
    end
  end
  self._sent = true
  self._done = true
  local st = self._st
  local line
  if self._simple then
    -- a plain request (httpparse.request), and nothing set but maybe
    -- status 200: "200 OK", default fields, keep-alive
    line = STATUS_200
  else
    local close = st.close
    if st.expect and st.blen ~= 0 then
      -- no "100 Continue" was sent and the body was not read: the client may
      -- or may not send it now, so this connection cannot be reused
      close = true
      st.close = true
    end
    local code = self._code
    line = self._line or STATUS_LINE[code]
    if close or code == 204 or code == 304 or st.keep10 or self._n ~= 0 then
      return send_fields(self, st, line, code, close, body)
    end
    local blk = self._blk
    if blk then -- field lines of res:relay/res:headers only (a proxy's answer)
      local seen = self._bseen
      return write_lines_answer(st, line, seen, seen & 4 == 0 and DEFAULT_HEADERS or "", blk, body)
    end
  end
  -- the common answer: default fields, keep-alive
  local dh = st.date and (os_time() == date_sec and date_hdr or date()) or ""
  local ok, err = st.write(st.conn, line, dh, PLAIN_TAIL[#body], st.head and "" or body)
  if not ok then
    st.close = true
    return nil, err
  end
  return true
end

--- res:write(...) -> true | nil, err: streams the body in pieces. The
--- first call sends the head with "Transfer-Encoding: chunked" (HTTP/1.0:
--- no length, the connection closes after the body); each call sends its
--- arguments (strings or numbers) as one chunk; res:finish() (or the end
--- of the handler) ends the body. An error in the handler after the
--- first write closes the connection mid-body.
function Res:write(...)
  if self._done then error("http: res:write: response already sent", 2) end
  local n = select("#", ...)
  local data
  if n == 1 then
    data = ...
  else
    data = concat({ ... }, "", 1, n)
  end
  local td = type(data)
  if td == "number" then
    data = tostring(data)
  elseif td ~= "string" then
    error("http: res:write: strings or numbers expected", 2)
  end
  local st = self._st
  local conn = st.conn
  local ok, err
  if not self._sent then
    self._sent = true
    local code = self._code
    if code == 204 or code == 304 then
      error("http: res:write: a " .. code .. " response has no body", 2)
    end
    if st.expect and st.blen ~= 0 then st.close = true end
    -- sized: the fields hold a Content-Length (seen bit 16: http.proxy's
    -- streamed answer of a known length), the body goes out as it is
    local sized = self._bseen & 16 ~= 0
    local chunked = not st.v10 and not sized
    if not chunked and not sized then st.close = true end
    self._chunked = chunked
    local close = st.close
    local hdrs, own_date = header_block(self, true)
    ok, err = conn:write(self._line or STATUS_LINE[code],
      st.date and not own_date and date() or "", hdrs,
      chunked and "Transfer-Encoding: chunked\r\n" or "",
      close and "Connection: close\r\n" or (st.keep10 and "Connection: keep-alive\r\n" or ""),
      "\r\n")
    if not ok then return wrote(st, ok, err) end
  end
  if st.head or #data == 0 then return true end
  if self._chunked then
    ok, err = conn:write(format("%x\r\n", #data), data, "\r\n")
  else
    if self._bseen & 16 ~= 0 then -- (sized: never past its length)
      local left = self._left - #data
      if left < 0 then error("http: res:write: more bytes than the Content-Length", 2) end
      self._left = left
    end
    ok, err = conn:write(data)
  end
  return wrote(st, ok, err)
end

--- res:finish() -> true | nil, err: ends a streamed body (res:write);
--- without a write before, sends an empty response.
function Res:finish()
  if self._done then return true end
  if not self._sent then return self:send("") end
  self._done = true
  local st = self._st
  if self._chunked and not st.head then
    local ok, err = st.conn:write("0\r\n\r\n")
    if not ok then
      st.close = true
      return nil, err
    end
  elseif self._bseen & 16 ~= 0 and not st.head and self._left ~= 0 then
    st.close = true -- a sized body that came short: the client sees the cut
    return nil, "body shorter than its Content-Length"
  end
  return true
end

--- res:hijack() -> conn, buffered: the handler takes the connection over
--- (see the top of this file); raises once a response was sent
function Res:hijack()
  if self._sent then error("http: res:hijack: response already sent", 2) end
  self._sent, self._done = true, true
  local st = self._st
  st.hijacked = true
  local buffered = st.pos <= #st.buf and sub(st.buf, st.pos) or ""
  st.buf, st.pos = "", 1
  st.conn:settimeout(nil)
  return st.conn, buffered
end

local json
--- res:json(value) -> true | nil, err (Content-Type: application/json)
function Res:json(v)
  json = json or require "goluarun.json"
  local s = json.encode(v)
  if not self:get_header("content-type") then
    self:header("Content-Type", "application/json")
  end
  return self:send(s)
end

---------------------------------------------------------------------------
-- Router
---------------------------------------------------------------------------

local Router = {}
Router.__index = Router
Router.__name = "http.router"

--- http.router() -> router (callable as a handler: router(req, res))
function M.router()
  return setmetatable({ exact = {}, routes = {}, byspec = {} }, Router)
end

local SEG = (1 - P"/")^1

-- compiles "/users/:id/files/*" to an LPeg pattern returning a params table
local function compile_route(path)
  local pat = P(true)
  local segs = {}
  for seg in gmatch(sub(path, 2), "([^/]*)") do segs[#segs + 1] = seg end
  -- gmatch on "" or trailing "/" yields empty segments; keep them literal
  for i, seg in ipairs(segs) do
    local piece
    if byte(seg, 1) == 58 then -- ":name"
      local name = sub(seg, 2)
      if name == "" then error("http: route " .. path .. ": empty parameter name", 3) end
      piece = Cg(SEG / unescape, name)
    elseif seg == "*" then
      if i ~= #segs then error("http: route " .. path .. ": '*' must be last", 3) end
      piece = Cg(C(P(1)^0) / unescape, "*")
    else
      piece = P(seg)
    end
    pat = pat * "/" * piece
  end
  return Ct(pat) * -1
end

--- router:route(method, path, fn) -> router; method "*" matches any
function Router:route(method, path, fn)
  if type(method) ~= "string" or (method ~= "*" and not match(TOKEN_ONLY, method)) then
    error("http: route: bad method " .. tostring(method), 2)
  end
  if type(path) ~= "string" or byte(path, 1) ~= 47 then
    error("http: route: path must be a string starting with '/'", 2)
  end
  if type(fn) ~= "function" and not (type(fn) == "table" and getmetatable(fn)
    and getmetatable(fn).__call) then
    error("http: route: handler must be a function", 2)
  end
  if find(path, "/%*/") then
    error("http: route: '*' must be the last segment", 2)
  end
  local methods
  if find(path, "/:") or find(path, "/%*$") then
    local r = self.byspec[path]
    if not r then
      r = { pat = compile_route(path), methods = {} }
      self.byspec[path] = r
      self.routes[#self.routes + 1] = r
    end
    methods = r.methods
  else
    methods = self.exact[path]
    if not methods then
      methods = {}
      self.exact[path] = methods
    end
  end
  if methods[method] then
    error("http: route: " .. method .. " " .. path .. " is already defined", 2)
  end
  methods[method] = fn
  return self
end

for _, m in ipairs({ "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS" }) do
  Router[lower(m)] = function(self, path, fn)
    return Router.route(self, m, path, fn)
  end
end
function Router:all(path, fn) return Router.route(self, "*", path, fn) end

local function allow_list(methods, allow)
  for m in pairs(methods) do
    if m ~= "*" then
      allow[m] = true
      if m == "GET" then allow.HEAD = true end
    end
  end
end

local function pick(methods, method)
  local fn = methods[method] or methods["*"]
  if not fn and method == "HEAD" then fn = methods.GET end
  return fn
end

--- router:dispatch(req, res): runs the matching handler, or answers 404/405
function Router:dispatch(req, res)
  local path, method = req.path, req.method
  local methods = self.exact[path]
  if methods then
    local fn = methods[method] or pick(methods, method)
    if fn then
      -- (req.params: Req's empty one, unless an outer router set its own)
      if req.params ~= EMPTY then req.params = EMPTY end
      return fn(req, res)
    end
  end
  local allow
  if methods then
    allow = {}
    allow_list(methods, allow)
  end
  local routes = self.routes
  for i = 1, #routes do
    local r = routes[i]
    local params = match(r.pat, path)
    if params then
      local fn = pick(r.methods, method)
      if fn then
        req.params = params
        return fn(req, res)
      end
      allow = allow or {}
      allow_list(r.methods, allow)
    end
  end
  if allow then
    local list = {}
    for m in pairs(allow) do list[#list + 1] = m end
    table.sort(list)
    return res:status(405):header("Allow", concat(list, ", "))
      :send("Method Not Allowed\n")
  end
  return res:status(404):send("Not Found\n")
end
Router.__call = Router.dispatch

---------------------------------------------------------------------------
-- Serving
---------------------------------------------------------------------------

-- the handler as a function, or (for a router) Router.dispatch and the
-- router it takes first
local function resolve(handler, level)
  if type(handler) == "function" then return handler end
  if getmetatable(handler) == Router then return Router.dispatch, handler end
  local mt = getmetatable(handler)
  if mt and mt.__call then
    return function(req, res) return handler(req, res) end
  end
  error("http: handler must be a function or a router", level + 1)
end

-- absolute-form "http://host/path" -> "/path"; asterisk-form "*" as is
local ABSOLUTE = S"hH" * S"tT" * S"tT" * S"pP" * S"sS"^-1 * "://"
  * (1 - P"/")^1 * C(P(1)^0)
local function absolute_path(path)
  if path == "*" then return path end
  local rest = match(ABSOLUTE, path)
  if rest then return rest == "" and "/" or rest end
  return nil
end

-- the framing and connection decisions of a head that is not plain (see
-- httpparse.request): sets st.keep10, st.v10, st.close, st.blen and
-- st.expect and returns the path (origin-form), or answers the head's
-- error and returns nil
local function admit(st, path, major, minor, h)
  -- framing and connection semantics
  if major ~= "1" then return reject(st, 505) end
  local keep
  local connh = h.connection
  if minor == "0" then
    keep = connh ~= nil and has_token(connh, "keep-alive")
    st.keep10, st.v10 = keep, true
  else
    keep = not (connh and has_token(connh, "close"))
    st.keep10, st.v10 = false, false
    local host = h.host
    if not host or find(host, ",", 1, true) then return reject(st, 400) end
  end
  st.close = not keep
  local te, cl = h["transfer-encoding"], h["content-length"]
  local blen = 0
  if te then
    if cl then return reject(st, 400) end
    if lower(te) ~= "chunked" then
      -- chunked last, after codings we do not implement: 501;
      -- chunked not last (or absent): the length is unknowable: 400
      return reject(st, find(lower(te), ",[ \t]*chunked[ \t]*$") and 501 or 400)
    end
    blen = -1
    -- chunked in HTTP/1.0 is suspect (RFC 9112 6.1): close afterwards
    if minor == "0" then st.close = true end
  elseif cl then
    if #cl > 15 or not match(CONTENT_LENGTH, cl) then return reject(st, 400) end
    blen = tonumber(cl)
    if blen > st.cfg.max_body then return reject(st, 413) end
  end
  st.blen = blen
  local expect = h.expect
  if expect then
    if lower(expect) ~= "100-continue" then return reject(st, 417) end
    expect = blen ~= 0 and minor ~= "0"
  else
    expect = false
  end
  st.expect = expect
  if byte(path, 1) ~= 47 then
    path = absolute_path(path)
    if not path then return reject(st, 400) end
  end
  return path
end

-- conn:_readidle() (conn:setidle(true) and conn:read() in one call) for
-- a conn object without it
local function readidle_of(conn)
  conn:setidle(true)
  return conn:read()
end

-- the requests of one conn, one after another, until one ends the conn:
-- returns then, or raises. st.inh is true while the handler runs: an error
-- then is the handler's (serve_conn answers it), any other is not.
local function serve_requests(st, conn, call, cfg, router)
  local res = st.res
  -- the conn's methods, looked up once (the methods of a userdata are
  -- found through its metatable: two table lookups per call otherwise)
  local read, readidle = conn.read, conn._readidle or readidle_of
  local max_headers, limit = cfg.max_headers, cfg.max_header_bytes
  local exact = router and router.exact -- (routes added later go into this table)
  local again = false -- a keep-alive wait (not the first request's)
  while true do
    -- the request head
    local buf, pos = st.buf, st.pos
    if pos > #buf then
      -- a keep-alive wait: a graceful shutdown closes it (the mark ends
      -- with this read)
      if again then buf = readidle(conn) else buf = read(conn) end
      if not buf then return end -- idle timeout, EOF, reset, shutdown: close quietly
      pos = 1
    end
    again = true
    local method, path, qs, major, minor, h, nx, plain = parse_request(buf, pos, max_headers)
    if plain and nx - pos <= limit then
      -- HTTP/1.1, origin-form, one Host, no Connection, Content-Length,
      -- Transfer-Encoding or Expect field: keep-alive, no body, nothing
      -- to decide (st.close, st.blen and st.expect are false, 0 and false
      -- between requests)
      st.buf, st.pos = buf, nx
      if st.v10 then st.keep10, st.v10 = false, false end
    else
      plain = false
      if method and nx - pos <= limit then
        st.buf, st.pos = buf, nx
      else
        if method then return reject(st, 431) end
        method, path, qs, major, minor, h = slow_head(st, buf, pos)
        if not method then
          if path then reject(st, path) end
          return
        end
        buf, pos = st.buf, 1 -- (the head alone, in a string of its own)
      end
      path = admit(st, path, major, minor, h)
      if not path then return end -- answered (4xx/5xx, closed)
    end
    st.head = method == "HEAD"
    -- the request's own fields; version "1.1", query and params (empty)
    -- and _hpos 1 come from Req unless set here or by the router. Seven
    -- keys in the 8-slot table the constructor makes: one more (params,
    -- version or _hpos) fits without a rehash
    local req
    if qs then
      req = setmetatable({
        method = method, path = path, query_string = qs, query = match(QUERY, qs),
        target = path .. "?" .. qs, headers = h, conn = conn, _st = st, _head = buf,
      }, Req)
    else
      req = setmetatable({
        method = method, path = path, target = path, headers = h, conn = conn, _st = st,
        _head = buf,
      }, Req)
    end
    if pos ~= 1 then req._hpos = pos end
    if minor == "0" then req.version = "1.0" end
    st.req = req
    -- _simple: the answer may take Res:send's shortest path (cleared by
    -- res:status other than 200, res:header, res:headers, res:relay; while
    -- it holds, the other fields are as reset here)
    if res._simple then
      res._sent, res._done, res._simple = false, false, plain
    else
      res._code, res._line, res._sent, res._done, res._n = 200, false, false, false, 0
      res._blk, res._bseen, res._simple = false, 0, plain
    end
    -- the handler: an exact route of a router is called directly (what
    -- Router.dispatch would do, without its call: the request is fresh, so
    -- req.params is Req's empty one). No pcall of its own: serve_conn's
    -- one xpcall around this loop catches its error, which ends the conn
    local methods = exact and exact[path]
    local fn = methods and methods[method]
    st.inh = true
    if fn then
      fn(req, res)
    elseif router then
      call(router, req, res)
    else
      call(req, res)
    end
    st.inh = false
    if st.hijacked then return end
    if not res._done then
      if not res._sent then
        local code = req._body_code
        if code then return reject(st, code) end
        if req._body_err then return end
        res:send("")
      else
        res:finish()
      end
    end
    if st.blen ~= 0 then -- unread body
      if st.close or st.expect or not discard_body(st) then
        st.close = true
        return linger(st)
      end
    end
    st.req = false
    if st.close then
      if st.pos <= #st.buf then linger(st) end
      return
    end
  end
end

-- a handler's error (serve_requests raised with st.inh set): reported, and
-- answered 500 (or the body's status) when nothing was sent; the conn ends
local function handler_failed(st, err, on_error)
  local req, res = st.req, st.res
  on_error(err, req)
  if st.hijacked then return end
  if not res._sent then return reject(st, req._body_code or 500) end
  st.close = true
  if st.blen ~= 0 or st.pos <= #st.buf then linger(st) end
end

local function serve_conn(conn, call, cfg, router)
  local st = {
    conn = conn, cfg = cfg, date = cfg.date, buf = "", pos = 1, blen = 0, expect = false,
    close = false, keep10 = false, v10 = false, head = false, req = false, res = nil,
    trailers = nil, hijacked = false, write = conn.write, inh = false,
  }
  -- (fields a request resets hold false, not nil: storing into a field
  -- that holds nil takes Lua's slow path)
  st.res = setmetatable({
    _st = st, _code = 200, _line = false, _sent = false, _done = false,
    _chunked = false,
    _n = 0, _hl = {}, _hk = {}, _hv = {}, _blk = false, _bseen = 0, _simple = false,
  }, Res)
  conn:settimeout(cfg.idle_timeout)
  conn:setlimit(cfg.max_header_bytes)
  conn:setnodelay(true)
  -- one xpcall for all the conn's requests, not one per request (about
  -- 430 instructions each): a handler's error ends the conn anyway. Its
  -- traceback is made where it was raised; an error of serve_requests'
  -- own (a cancelled goroutine's, say) goes on as it came
  local ok, err = xpcall(serve_requests, function(e)
    if st.inh then return traceback(e, 2) end
    return e
  end, st, conn, call, cfg, router)
  if not ok then
    if not st.inh then
      st.req = false
      conn:close()
      error(err, 0)
    end
    handler_failed(st, err, cfg.on_error)
  end
  st.req = false
  conn:close()
end

-- the reference grammar of the heads, for the differential tests
-- (request: plus httpparse.request's `plain`, from the captures)
local function with_plain(m, path, q, major, minor, h, nx)
  if not m then return nil end
  local host = h.host
  local plain = major == "1" and minor == "1" and byte(path, 1) == 47 and host ~= nil
    and not find(host, ",", 1, true) and h.connection == nil and h["content-length"] == nil
    and h["transfer-encoding"] == nil and h.expect == nil
  return m, path, q, major, minor, h, nx, plain
end
M._grammar = {
  request = function(s, pos, n) return with_plain(match(head_pattern(n or 100), s, pos)) end,
  response = function(s, pos, n) return match(response_pattern(n or 100), s, pos) end,
}

-- the client (http.request, http.get, http.post) shares the grammar above
require("goluarun.http_client").install(M, {
  status_line = STATUS_LINE_P * Cp(),
  chunk_line = CHUNK_LINE, trailer_line = TRAILER_LINE, token_only = TOKEN_ONLY,
  lower = LOWER, has_token = has_token, tls_config = tls_config,
})

-- http.proxy (http.request's and the server's parts together)
require("goluarun.http_proxy").install(M, { answer = forward_lines, status_line = STATUS_LINE,
  plain = proxy_plain, tail = proxy_tail, sized = proxy_sized, abort = proxy_abort })

--- http.handle(conn, handler [, opts]): serves one connection, then closes it.
function M.handle(conn, handler, opts)
  local call, router = resolve(handler, 2)
  local cfg = config(opts, 2)
  return serve_conn(conn, call, cfg, router)
end

--- http.serve(addr, handler [, opts]) -> listener | nil, err
function M.serve(addr, handler, opts)
  local call, router = resolve(handler, 2)
  local cfg = config(opts, 2)
  return net.serve(addr, function(conn)
    return serve_conn(conn, call, cfg, router)
  end, cfg.listen)
end

return M
