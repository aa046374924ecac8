-- http_client.lua: the HTTP/1.1 client of goluarun.http (internal module:
-- goluarun.http installs it and hands it the grammar it shares with the
-- server; use it as require "goluarun.http").
--
--   local http = require "goluarun.http"
--   local res = assert(http.get("http://127.0.0.1:8080/hello", { timeout = 5 }))
--   print(res.status, res.headers["Content-Type"], res.body)
--
-- http.request(req) -> res | nil, err
--   req.url      "http[s]://host[:port]/path?query" (required)
--   req.method   "GET" by default
--   req.headers  { name = value or { values } }: sent as given (Host and
--                User-Agent are added unless present; Content-Length,
--                Transfer-Encoding and Connection: keep-alive are the
--                client's own and ignored here; "Connection: close" is
--                honoured)
--   req.body     a string (sent with Content-Length) or a function
--                returning the body's pieces, then nil (sent chunked)
--   req.timeout  seconds for the whole request, redirects included (none)
--   req.tls      a TLS config (net's) for https; default: verification on
--                against the system store, ALPN "http/1.1"
--   req.pool     the pool of keep-alive conns (net.defaultpool)
--   req.follow   redirects to follow (0): 301/302/303 become GET without a
--                body (except HEAD), 307/308 repeat the method and a string
--                body; Authorization is dropped when the host changes
--   req.stream   true: res.body is absent; res:read() gives the body in
--                pieces then nil (or nil, err), res:close() ends it early
--   req.max_header_bytes  response status line + fields (16384)
--   req.max_headers       response fields (100)
--   req.max_body          a buffered response body (8 MiB; not for stream)
--   req.fields   field lines "Name: value\r\n"... sent as they are instead
--                of req.headers (a proxy's: httpparse.relay makes them;
--                checked again, hop-by-hop ones left out; Host and
--                User-Agent are added unless present)
--   req.relay    a drop set (a string "date,server" of up to 16 comma-
--                separated lower-case names, or a set table): the answer's
--                field lines as a proxy sends them on are made as its head
--                is read (httpparse.relay's, minus these names): a server's
--                res:relay(up) of goluarun.http sends them
--   req.only_headers  a set of lower-case names: res.headers holds only
--                these (and Content-Length, Transfer-Encoding, Connection,
--                Location); res:rawhead() has the whole head (a proxy)
-- res: status (integer), reason, version ("1.1"/"1.0"), headers (lower-
--   case names, looked up case-insensitively: res.headers["Content-Type"];
--   a repeated field is a list), body (string), trailers (chunked, or nil),
--   url (after redirects), res:read(), res:readall() (the rest of a
--   streamed body, whole), res:close(), res:settimeout(s) (the
--   rest of a streamed body: s seconds per read instead of req.timeout),
--   res:rawhead() -> s, pos (the head as received starts at s:sub(pos)).
-- http.get(url [, req]), http.post(url, body [, req]): shorthands.
--
-- Keep-alive: the conn goes back to the pool once the response body has
-- been read to its end and nothing follows it; a reused conn that fails
-- before any byte of the answer is retried on a fresh one when the body
-- can be sent again (nil or a string). Errors: the conn's ("timeout",
-- "connection refused: ADDR", "eof", "connection reset", TLS's ...), and
-- "bad response: DETAIL" (a malformed status line, header or chunk, a
-- Content-Length that is not a number), "headers too large", "body too
-- large", "too many redirects", "unsupported scheme: S". Misuse (no url,
-- a header with CR/LF, a bad option) raises.
local lpeg = require "lpeg"
local go = require "go"
local net = require "net"
local httpparse = require "goluarun.httpparse"
local httpread = require "goluarun.httpread"
local read_response, check_req = httpread.readresponse, httpread.checkreq
local field_block, relay_fields, relayed_lines = httpparse.block, httpparse.relay,
  httpparse.lines
-- an answer's Content-Length body up to this size that came with its head
-- is taken whole by the head's read (httpread.readresponse)
local WHOLE_MAX = 64 * 1024

local P, R, S, C, Cc = lpeg.P, lpeg.R, lpeg.S, lpeg.C, lpeg.Cc
local match = lpeg.match
local find, sub, lower, format, byte = string.find, string.sub, string.lower,
  string.format, string.byte
local concat = table.concat
local type, tostring, tonumber, error, setmetatable, pairs, rawget, math_type =
  type, tostring, tonumber, error, setmetatable, pairs, rawget, math.type
local now = go.now

local M = {}

local W -- the shared grammar (install)

---------------------------------------------------------------------------
-- URLs
---------------------------------------------------------------------------

-- scheme "://" [userinfo "@"] host [":" port] [path] ["?" query] ["#" ...]
local ALPHA = R("az", "AZ")
local SCHEME = C(ALPHA * (ALPHA + R"09" + S"+-.")^0) / lower
local HOST = C("[" * (1 - S"]/")^1 * "]") + C((1 - S":/?#@[]")^1)
local PORT = ":" * C(R"09"^1) + Cc(nil)
local PATH = C((1 - S"#")^0)
local URL = SCHEME * "://" * ((1 - S"@/?#")^0 * "@")^-1 * HOST * PORT * PATH
  * (P"#" * P(1)^0)^-1 * -1
local DEFAULT_PORT = { http = 80, https = 443 }

-- url -> { scheme, host, port, addr, hosthdr, target } | nil, err. The
-- cache holds its entries strongly (weak values were collected at every GC
-- cycle: a proxy re-parsed its URLs every few requests) and starts over
-- past URL_CACHE_MAX of them (URLs may come from callers' input)
local URL_CACHE_MAX = 1024
local url_cache, nurls = {}, 0
local function parse_url(url)
  local u = url_cache[url]
  if u then return u end
  local scheme, host, port, path = match(URL, url)
  if not scheme then return nil, "bad url: " .. url end
  local dport = DEFAULT_PORT[scheme]
  if not dport then return nil, "unsupported scheme: " .. scheme end
  port = port and tonumber(port) or dport
  if port < 1 or port > 65535 then return nil, "bad url: " .. url end
  if path == "" then path = "/" elseif byte(path, 1) == 63 then path = "/" .. path end
  local bare = host
  if byte(host, 1) == 91 then bare = sub(host, 2, -2) end
  u = { scheme = scheme, host = bare, port = port, addr = host .. ":" .. port,
    hosthdr = port == dport and host or host .. ":" .. port, target = path,
    tls = scheme == "https", heads = {}, lines = {} }
  u.hostline = "Host: " .. u.hosthdr .. "\r\n"
  if nurls >= URL_CACHE_MAX then url_cache, nurls = {}, 0 end
  nurls = nurls + 1
  url_cache[url] = u
  return u
end

-- a redirect's Location against the URL it answered
local function resolve(base, u, loc)
  if match(URL, loc) then return loc end
  local origin = u.scheme .. "://" .. u.hosthdr
  if sub(loc, 1, 2) == "//" then return u.scheme .. ":" .. loc end
  if byte(loc, 1) == 47 then return origin .. loc end
  local dir = match(C((1 - S"?")^0), u.target):match("^(.*/)") or "/"
  return origin .. dir .. loc
end

---------------------------------------------------------------------------
-- Headers
---------------------------------------------------------------------------

-- case-insensitive lookup of the lower-case names the parser stores
local Headers = { __index = function(t, k)
  if type(k) ~= "string" then return nil end
  return rawget(t, lower(k))
end }

-- the client's own fields: not taken from req.headers
local OWN = { ["content-length"] = true, ["transfer-encoding"] = true }

-- req.fields: field lines sent as they are (a proxy's, from httpparse.relay,
-- which checks them again here and drops hop-by-hop ones)
-- (exchange takes lines as relay wrote them itself: httpparse.lines)
local function given_lines(fields) -- (a string: httpread.checkreq)
  local lines, seen, nx = relay_fields(fields)
  if not lines or nx ~= #fields + 1 or (fields ~= "" and not find(fields, "^[%w!#$%%&'*+%-.^_`|~]+:")) then
    error("http.request: req.fields must be field lines (\"Name: value\\r\\n\"...)", 4)
  end
  return lines, seen & 1 ~= 0, seen & 2 ~= 0, false
end

-- "Name: value\r\n"... of req.headers (one C call: httpparse.block); and
-- whether Host, User-Agent are there and Connection says close
local function header_lines(h)
  if h == nil then return "", false, false, false end -- (else a table: checkreq)
  local lines, seen, connh = field_block(h, nil, OWN)
  if not lines then
    if seen == "name" then error("http.request: invalid header name " .. tostring(connh), 3) end
    error("http.request: header values must be strings without CR, LF or NUL", 3)
  end
  local close = false
  if connh then
    if type(connh) == "table" then connh = concat(connh, ",") end
    close = W.has_token(connh, "close")
  end
  return lines, seen & 1 ~= 0, seen & 2 ~= 0, close
end

---------------------------------------------------------------------------
-- Reading the response: st = { conn, buf, pos, ... }
---------------------------------------------------------------------------

-- more bytes into st.buf: true | nil, err
local function more(st)
  local d, err = st.conn:read()
  if not d then return nil, err end
  local buf, pos = st.buf, st.pos
  if pos > #buf then
    st.buf = d
  else
    st.buf = sub(buf, pos) .. d
  end
  st.pos = 1
  return true
end

-- the fields the client reads itself: kept with req.only_headers
local CLIENT_READS = { ["content-length"] = true, ["transfer-encoding"] = true,
  connection = true, location = true }
local only_cache = setmetatable({}, { __mode = "k" })

-- req.only_headers with CLIENT_READS: the set httpread.readresponse keeps,
-- as a string of comma-separated names when it can be (up to 16 names
-- without a comma: read without a table walk per answer)
local function set_string(set)
  local names, n = {}, 0
  for k in pairs(set) do
    if find(k, ",", 1, true) then return set end
    n = n + 1
    names[n] = k
  end
  if n > 16 then return set end
  table.sort(names)
  return concat(names, ",")
end

local function only_set(only)
  if only == nil then return nil end
  local set = only_cache[only]
  if set then return set end
  if type(only) ~= "table" then error("http.request: req.only_headers must be a table", 4) end
  set = {}
  for k in pairs(CLIENT_READS) do set[k] = true end
  for k, v in pairs(only) do
    if type(k) ~= "string" or k ~= lower(k) then
      error("http.request: req.only_headers: keys must be lower-case names", 4)
    end
    if v then set[k] = true end
  end
  set = set_string(set)
  only_cache[only] = set
  return set
end

-- one line (without "\n"; a "\r" before it removed) | nil, err
local function read_line(st)
  while true do
    local buf, pos = st.buf, st.pos
    local e = find(buf, "\n", pos, true)
    if e then
      st.pos = e + 1
      if e > pos and byte(buf, e - 1) == 13 then e = e - 1 end
      return sub(buf, pos, e - 1)
    end
    if #buf - pos > 4096 then return nil, "bad response: chunk line too long" end
    local ok, err = more(st)
    if not ok then return nil, err end
  end
end

-- at most n (> 0) body bytes: what is buffered, else one read
local function some(st, n)
  local buf, pos = st.buf, st.pos
  local avail = #buf - pos + 1
  if avail <= 0 then
    local d, err = st.conn:read()
    if not d then return nil, err end
    if #d <= n then return d end
    st.buf, st.pos = d, n + 1 -- bytes after the body: the conn is not reused
    return sub(d, 1, n)
  end
  if avail <= n then
    st.buf, st.pos = "", 1
    return pos == 1 and buf or sub(buf, pos)
  end
  st.pos = pos + n
  return sub(buf, pos, pos + n - 1)
end

local function bad_eof(err)
  if err == "eof" then return "bad response: body ended early" end
  return err
end

-- the next piece of the body | nil (the end) | nil, err
local function next_piece(st)
  local mode = st.mode
  if mode == "length" then
    local left = st.left
    if left == 0 then return nil end
    local d, err = some(st, left)
    if not d then return nil, bad_eof(err) end
    st.left = left - #d
    return d
  elseif mode == "chunked" then
    while true do
      local left = st.left
      if left > 0 then
        local d, err = some(st, left)
        if not d then return nil, bad_eof(err) end
        left = left - #d
        st.left = left
        if left == 0 then st.left = -1 end -- the CRLF after the data
        return d
      end
      if left == -1 then
        local line, err = read_line(st)
        if not line then return nil, bad_eof(err) end
        if line ~= "" then return nil, "bad response: bad chunked encoding" end
      end
      local line, err = read_line(st)
      if not line then return nil, bad_eof(err) end
      local hex = match(W.chunk_line, line)
      if not hex or #hex > 15 then return nil, "bad response: bad chunked encoding" end
      local size = tonumber(hex, 16)
      if size == 0 then
        local ok, terr = M._trailers(st)
        if not ok then return nil, terr end
        st.mode = "done"
        return nil
      end
      st.left = size
    end
  elseif mode == "close" then
    local buf, pos = st.buf, st.pos
    if pos <= #buf then
      st.buf, st.pos = "", 1
      return pos == 1 and buf or sub(buf, pos)
    end
    local d, err = st.conn:read()
    if not d then
      if err == "eof" then return nil end
      return nil, err
    end
    return d
  end
  return nil
end

-- the trailer section after the last chunk: true | nil, err
function M._trailers(st)
  local t, n, bytes = nil, 0, 0
  while true do
    local line, err = read_line(st)
    if not line then return nil, bad_eof(err) end
    if line == "" then break end
    n = n + 1
    bytes = bytes + #line
    local lim = st.lim
    if n > lim.mh or bytes > lim.mhb then
      return nil, "headers too large"
    end
    local k, v = match(W.trailer_line, line)
    if not k then return nil, "bad response: malformed trailer" end
    t = t or setmetatable({}, Headers)
    local old = t[k]
    if old == nil then t[k] = v
    elseif type(old) == "table" then old[#old + 1] = v
    else t[k] = { old, v } end
  end
  st.trailers = t
  return true
end

-- the conn goes back to its pool, or closed (then put frees its slot)
local function release(st, reusable)
  local conn = st.conn
  if not conn then return end
  st.conn = nil
  if reusable and not st.close and not st.writing and st.pos > #st.buf then
    st.pool:put(conn) -- (which clears the conn's deadline and timeout)
  else
    conn:close()
    st.pool:put(conn)
  end
end

-- the whole body: string | nil, err (the conn is released either way)
local function read_body(st, max)
  local mode = st.mode
  if mode == "none" then
    release(st, true)
    return ""
  end
  local parts, n, total = {}, 0, 0
  while true do
    local d, err = next_piece(st)
    if not d then
      if err then
        release(st, false)
        return nil, err
      end
      break
    end
    total = total + #d
    if total > max then
      release(st, false)
      return nil, "body too large"
    end
    n = n + 1
    parts[n] = d
  end
  release(st, mode ~= "close")
  if n == 1 then return parts[1] end
  return concat(parts, "", 1, n)
end

---------------------------------------------------------------------------
-- Streamed responses
---------------------------------------------------------------------------

local Res = {}
Res.__index = Res
Res.__name = "http.client.response"
Res.version = "1.1" -- (an answer's own only when it is another)

--- res:read() -> piece | nil (end) | nil, err
function Res:read()
  local st = self._st
  if not st then -- (a body that came whole with the head, or none)
    local b = self._body
    if b then self._body = false end
    return b or nil
  end
  if not st.conn then return nil, st.err end
  local d, err = next_piece(st)
  if d then
    -- the last piece of a Content-Length body: the conn goes back now (the
    -- next read gives nil without a call into the body's state)
    if st.left == 0 and st.mode == "length" then release(st, true) end
    return d
  end
  if err then
    st.err = err
    release(st, false)
    return nil, err
  end
  self.trailers = st.trailers
  release(st, st.mode ~= "close")
  return nil
end

--- res:readall() -> the rest of the body, whole | nil, err (a streamed
--- answer read to its end: the conn goes back to its pool as with read)
function Res:readall()
  local b = self._body
  if b then -- (it came with the head: httpread.readresponse)
    self._body = false
    return b
  end
  local st = self._st
  if st and st.conn and st.mode == "length" and st.pos == 1 and #st.buf == st.left then
    local b = st.buf -- (it came with the head: httpread.readresponse)
    st.buf, st.left = "", 0
    release(st, true)
    return b
  end
  local parts, n = {}, 0
  while true do
    local d, err = self:read()
    if not d then
      if err then return nil, err end
      return concat(parts, "", 1, n)
    end
    n = n + 1
    parts[n] = d
  end
end

-- whether the rest of a Content-Length body is buffered already (no read
-- of the conn is left for a timeout to bound)
local function buffered_to_end(st)
  return st.mode == "length" and st.left <= #st.buf - st.pos + 1
end

--- res:settimeout(s): the rest of a streamed body is bounded per read (s
--- seconds each; nil: not at all) instead of by the request's timeout
local timeout_ok -- the last s checked (a proxy passes the same one each time)
function Res:settimeout(s)
  local st = self._st
  if s ~= nil and s ~= timeout_ok then
    if type(s) ~= "number" or not (s > 0) then
      error("res:settimeout: a positive number or nil expected", 2)
    end
    timeout_ok = s
  end
  if st and st.conn and not buffered_to_end(st) then
    st.conn:setdeadline(nil)
    st.conn:settimeout(s)
  end
  return self
end

--- res:rawhead() -> s, pos: the response's head as received starts at
--- s:sub(pos) (a proxy relays its fields: res:relay of goluarun.http)
function Res:rawhead() return self._head, 1 end

--- res:close(): ends the response (an unread body closes the conn)
function Res:close()
  local st = self._st
  if st and st.conn then release(st, st.mode == "none") end
  return true
end
Res.__close = Res.close

---------------------------------------------------------------------------
-- Sending
---------------------------------------------------------------------------

local CHUNK_END = "0\r\n\r\n"

-- the pieces of a body function, chunked, and the last chunk: true | nil, err
local function write_chunks(conn, body)
  while true do
    local piece = body()
    if piece == nil then break end
    if type(piece) ~= "string" then
      error("http.request: a body function must return strings, then nil", 0)
    end
    if #piece > 0 then
      local ok, err = conn:write(format("%x\r\n", #piece), piece, "\r\n")
      if not ok then return nil, err end
    end
  end
  return conn:write(CHUNK_END)
end

-- writes the request: true | nil, err. A body function runs in a goroutine
-- of its own, so that the answer is read while the body goes out (a server
-- may answer early, or echo as it reads); until it ends, st.writing holds
-- and the conn cannot go back to the pool; its failure (st.werr) closes
-- the conn, which fails the reader.
local function send(st, conn, head, body)
  if type(body) ~= "function" then return conn:write(head, body or "") end
  local ok, err = conn:write(head)
  if not ok then return nil, err end
  st.writing = true
  go(function()
    local pok, wok, werr = pcall(write_chunks, conn, body)
    st.writing = false
    if not pok or not wok then
      st.werr = pok and werr or tostring(wok)
      conn:close()
    end
  end)
  return true
end

local function limit(req, k, d)
  local v = req[k]
  if v == nil then return d end
  if math_type(v) ~= "integer" or v <= 0 then
    error("http.request: req." .. k .. " must be a positive integer", 4)
  end
  return v
end

-- the TLS config of a request: https only
local tls_cache = setmetatable({}, { __mode = "k" })
local DEFAULT_TLS
local function tls_of(req)
  local t = req.tls
  if t == nil then
    DEFAULT_TLS = DEFAULT_TLS or { alpn = { "http/1.1" } }
    return DEFAULT_TLS
  end
  local c = tls_cache[t]
  if not c then
    c = W.tls_config(t, 3)
    tls_cache[t] = c
  end
  return c
end

local UA_LINE = "User-Agent: goluarun\r\n"

-- a reused conn that fails so, before any byte of the answer, was closed
-- by its server as the request went out: the request is sent again
local RETRY = { eof = true, ["connection reset"] = true, ["broken pipe"] = true }

-- the framing of an answer with a repeated Connection, Transfer-Encoding
-- or Content-Length field (httpparse.readresponse decides the others):
-- nil | err
local function decide_framing(st, h, method, status, minor)
  local connh = rawget(h, "connection")
  if type(connh) == "table" then connh = concat(connh, ",") end
  if minor == "0" then
    if not (connh and W.has_token(connh, "keep-alive")) then st.close = true end
  elseif connh and W.has_token(connh, "close") then
    st.close = true
  end
  local te, cl = rawget(h, "transfer-encoding"), rawget(h, "content-length")
  if method == "HEAD" or status == 204 or status == 304 or status < 200 then
    st.mode = "none"
  elseif te then
    if type(te) == "table" then te = concat(te, ",") end
    if lower(te):match("chunked%s*$") then
      st.mode, st.left = "chunked", 0
    else
      st.mode, st.close = "close", true
    end
  elseif cl then
    if type(cl) == "table" then
      for i = 2, #cl do
        if cl[i] ~= cl[1] then return "bad response: conflicting Content-Length" end
      end
      cl = cl[1]
    end
    local n = #cl <= 15 and find(cl, "^%d+$") and tonumber(cl)
    if not n then return "bad response: bad Content-Length" end
    st.mode, st.left = "length", n
    if n == 0 then st.mode = "none" end
  else
    st.mode, st.close = "close", true
  end
  return nil
end

-- st's framing: readresponse's (mode, left, close), or decided here for a
-- repeated framing field (mode nil): nil, or err with st released
local function framing_of(st, close, mode, left, h, method, status, minor)
  if close then st.close = true end
  if mode then
    st.mode, st.left = mode, left
    return nil
  end
  local ferr = decide_framing(st, h, method, status, minor)
  if ferr then release(st, false) end
  return ferr
end

-- an exchange's state (the streamed body's reader, a body function's writer)
local function new_state(conn, pool, close, lim)
  return { conn = conn, pool = pool, buf = "", pos = 1, close = close, lim = lim }
  -- (six keys, and mode and left: the constructor's eight slots)
end

-- a conn that failed: closed, and its pool slot freed
local function drop_conn(pool, conn)
  conn:close()
  pool:put(conn)
end

-- one exchange on one conn: res | nil, err, retry (the conn was reused and
-- failed before any byte of the answer)
local function exchange(req, lim, u, method, body, deadline, pool, timeout)
  local dopts
  if deadline and not timeout then timeout = deadline - now() end
  if timeout and timeout <= 0 then return nil, "timeout" end
  if u.tls then
    dopts = { timeout = timeout, tls = tls_of(req) }
  else
    dopts = timeout
  end
  local conn, err
  local take = not u.tls and pool._take -- (a net.pool's common case in C: pool.lua)
  if take then conn = take(u.addr, deadline) end -- (and the deadline set)
  if not conn then
    conn, err = pool:dial(u.addr, dopts)
    if not conn then return nil, err end
    if deadline then conn:setdeadline(deadline) end
  end
  local hl, has_host, has_ua, rclose
  local fields = req.fields
  if fields == nil then
    hl, has_host, has_ua, rclose = header_lines(req.headers)
  else
    local seen = relayed_lines(fields) -- (as relay wrote them: taken as they are)
    if seen then
      hl, has_host, has_ua, rclose = fields, seen & 1 ~= 0, seen & 2 ~= 0, false
    else
      hl, has_host, has_ua, rclose = given_lines(fields)
    end
  end
  local framing = ""
  if body == nil then -- (no type() call: each one interns its answer)
  elseif type(body) == "string" then
    if #body > 0 or method == "POST" or method == "PUT" or method == "PATCH" then
      framing = "Content-Length: " .. #body .. "\r\n"
    end
  elseif body then
    framing = "Transfer-Encoding: chunked\r\n"
  end
  -- the head: the same every time (built once per URL), or in pieces
  -- written with the body (the request line built once per URL and method)
  local head, line, hostl, ual
  if hl == "" and framing == "" then
    head = u.heads[method]
    if not head then
      head = method .. " " .. u.target .. " HTTP/1.1\r\n" .. u.hostline .. UA_LINE .. "\r\n"
      u.heads[method] = head
    end
  else
    line = u.lines[method]
    if not line then
      line = method .. " " .. u.target .. " HTTP/1.1\r\n"
      u.lines[method] = line
    end
    hostl, ual = has_host and "" or u.hostline, has_ua and "" or UA_LINE
  end
  local only = req.only_headers -- (misuse raises before a byte goes out)
  if only ~= nil then only = only_cache[only] or only_set(only) end
  -- the exchange's state: made here only for a body function (its writer
  -- shares it), else once the answer's body is known to need reading
  local st
  local ok
  if body ~= nil and type(body) == "function" then
    st = new_state(conn, pool, rclose, lim)
    ok, err = send(st, conn, head or line .. hostl .. ual .. hl .. framing .. "\r\n", body)
  elseif head then
    ok, err = conn:write(head, body or "")
  else
    ok, err = conn:write(line, hostl, ual, hl, framing, "\r\n", body or "")
  end
  if not ok then
    local reused = conn:reused() > 0
    drop_conn(pool, conn)
    return nil, err, reused and RETRY[err] and type(body) ~= "function"
  end
  local status, reason, minor, h, rawhead, mode, left, close, whole, rlines, rseen =
    read_response(conn, lim.mhb, lim.mh, only, method == "HEAD",
      lim.mb < WHOLE_MAX and lim.mb or WHOLE_MAX, req.relay, Headers)
  if not status then
    local retry = conn:reused() > 0 and not minor and RETRY[reason] and type(body) ~= "function"
    drop_conn(pool, conn)
    return nil, st and st.werr or reason, retry
  end
  -- (h has its Headers metatable: readresponse set it)
  local res = { status = status, reason = reason, headers = h, url = req.url, _head = rawhead,
    _relay = rlines, _rseen = rseen }
  if minor ~= "1" then res.version = "1." .. minor end
  if whole and not st then -- the body came whole with the head: the conn is done
    if close or rclose then conn:close() end
    local put = pool._put -- (a net.pool's common case in C, else its put)
    if not (put and put(conn)) then pool:put(conn) end
    if req.stream then res._body = whole else res.body = whole end
    return setmetatable(res, Res)
  end
  st = st or new_state(conn, pool, rclose, lim)
  local ferr = framing_of(st, close, mode, left, h, method, status, minor)
  if ferr then return nil, ferr end
  if req.stream then
    res._st = st
    if whole then st.buf = whole end
    if st.mode == "none" then release(st, true) end
    return setmetatable(res, Res)
  end
  if whole then
    release(st, true)
    res.body = whole
    return setmetatable(res, Res)
  end
  local b
  b, err = read_body(st, lim.mb)
  if not b then return nil, err end
  res.body = b
  res.trailers = st.trailers
  return setmetatable(res, Res)
end

-- the response limits: max_header_bytes, max_headers, max_body
local DEFAULT_LIMITS

-- M._streamed(conn, pool, method, readresponse's results...) -> res | nil,
-- err: a streamed answer from a head read on conn (http.proxy's, whose
-- body did not come whole with it), as exchange makes one
function M._streamed(conn, pool, method, status, reason, minor, h, rawhead, mode, left, close,
                     whole, rlines, rseen)
  local res = { status = status, reason = reason, headers = h, _head = rawhead,
    _relay = rlines, _rseen = rseen }
  if minor ~= "1" then res.version = "1." .. minor end
  local st = new_state(conn, pool, false, DEFAULT_LIMITS)
  local ferr = framing_of(st, close, mode, left, h, method, status, minor)
  if ferr then return nil, ferr end
  res._st = st
  if whole then st.buf = whole end
  if st.mode == "none" then release(st, true) end
  return setmetatable(res, Res)
end
M._Headers = Headers
M._RETRY = RETRY

local REDIRECT = { [301] = true, [302] = true, [303] = true, [307] = true, [308] = true }

--- http.request(req) -> res | nil, err
function M.request(req)
  -- (one C call: req, url, method, body, timeout, follow, fields, headers)
  local method, follow, limits = check_req(req)
  local lim = DEFAULT_LIMITS
  if limits then
    local mh = limit(req, "max_headers", 100)
    lim = { mhb = limit(req, "max_header_bytes", 16384), mh = mh,
      mb = limit(req, "max_body", 8 * 1024 * 1024) }
  end
  local pool = req.pool or net.defaultpool
  local t0 = req.timeout -- (the first exchange's timeout: no second now())
  local deadline = t0 and now() + t0
  local url, body, headers = req.url, req.body, req.headers
  local hops = 0
  while true do
    local u, uerr = url_cache[url] -- (a hit: no parse_url call)
    if not u then
      u, uerr = parse_url(url)
      if not u then return nil, uerr end
    end
    local res, err, retry
    for _ = 1, 3 do
      res, err, retry = exchange(req, lim, u, method, body, deadline, pool, t0)
      t0 = nil
      if res or not retry then break end
    end
    if not res then return nil, err end
    if not REDIRECT[res.status] then return res end -- (no rawget call per answer)
    local loc = rawget(res.headers, "location")
    if not (loc and type(loc) == "string") then return res end
    if hops >= follow then
      if follow == 0 then return res end
      res:close()
      return nil, "too many redirects"
    end
    hops = hops + 1
    res:close()
    local code = res.status
    if code == 303 or ((code == 301 or code == 302) and method == "POST") then
      if method ~= "HEAD" then method = "GET" end
      body = nil
    elseif type(body) == "function" then
      return res -- a streamed body cannot be sent again
    end
    local nurl = resolve(url, u, loc)
    local nu = parse_url(nurl)
    if headers and nu and nu.addr ~= u.addr then
      local h = {}
      for k, v in pairs(headers) do
        if lower(k) ~= "authorization" and lower(k) ~= "cookie" then h[k] = v end
      end
      headers = h
    end
    req = setmetatable({ url = nurl, method = method, body = body, headers = headers },
      { __index = req })
    url = nurl
  end
end

--- http.get(url [, req]) -> res | nil, err
function M.get(url, req)
  if req == nil then return M.request({ url = url }) end
  local r = setmetatable({ url = url, method = "GET" }, { __index = req })
  return M.request(r)
end

--- http.post(url, body [, req]) -> res | nil, err
function M.post(url, body, req)
  local r = setmetatable({ url = url, method = "POST", body = body }, { __index = req or {} })
  return M.request(r)
end

--- install(http, grammar): adds request/get/post to goluarun.http
function M.install(http, grammar)
  W = grammar
  DEFAULT_LIMITS = { mhb = 16384, mh = 100, mb = 8 * 1024 * 1024 }
  http.request, http.get, http.post = M.request, M.get, M.post
  http.ClientResponse = Res
end

return M
