-- websocket.lua: WebSockets (RFC 6455) for goluarun, server and client.
--
--   local websocket = require "goluarun.websocket"
--   -- server: inside a goluarun.http handler
--   app:get("/chat", function(req, res)
--     local ws = websocket.upgrade(req, res, { protocols = { "chat" } })
--     if not ws then return end            -- the handshake was refused
--     while true do
--       local msg, kind = ws:recv()
--       if not msg then break end           -- nil, "closed", code, reason
--       ws:send(msg, kind)
--     end
--   end)
--   -- client
--   local ws = assert(websocket.dial("ws://127.0.0.1:8080/chat"))
--   ws:send("hello"); print(ws:recv()); ws:close(1000, "bye")
--
-- websocket.upgrade(req, res [, opts]) -> ws | nil, err
--   answers the handshake of a goluarun.http request and takes the conn
--   over from the HTTP server (res:hijack()); the WebSocket lives until the
--   handler returns (the conn closes then). A request that is not a valid
--   handshake is answered here: 400 (not GET, not HTTP/1.1, no or bad
--   Sec-WebSocket-Key, no "Connection: upgrade"), 426 with "Upgrade:
--   websocket" (no "Upgrade: websocket") or with "Sec-WebSocket-Version: 13"
--   (another version); the result is then nil, "bad handshake: WHY".
--   opts.protocols: subprotocols in preference order; the first one the
--   client offers is chosen (ws.protocol), none in common: no protocol.
-- websocket.dial(url [, opts]) -> ws | nil, err
--   url "ws://host[:port][/path][?query]" or "wss://..." (a malformed url
--   raises). opts.timeout (connect and handshake, default 30 s), opts.tls
--   (wss: a TLS config as net.dial takes; default true: the system trust
--   store, verification on), opts.protocols (offered; ws.protocol is the
--   server's choice), opts.origin, opts.headers (name -> value). A refused
--   handshake: nil, "bad handshake: status 403" (or another reason).
-- Both: opts.max_message (bytes, default 16 MiB): a bigger message (one
--   frame or the sum of its fragments) fails the connection with close
--   code 1009; opts.close_timeout (seconds, default 5): how long a closing
--   side waits for the peer's close frame and for the TCP close. An opts
--   table is checked at its first use and remembered: pass a new table to
--   change settings.
--
-- ws:send(data [, "text" | "binary"]) -> true | nil, err  (default "text";
--   text must be valid UTF-8, else raises; one unfragmented frame; the
--   client masks). After a close: nil, "closed".
-- ws:recv([timeout]) -> data, "text" | "binary"
--   | nil, "closed", code, reason after the close handshake (code 1005:
--     the close frame had none), or after this side failed the connection
--     for a protocol error (code 1002, 1007 invalid UTF-8, 1009 too big;
--     the close frame with that code was sent to the peer)
--   | nil, "timeout" (nothing lost: the next recv continues)
--   | nil, err (the conn broke: "eof", "connection reset", ...; code 1006)
--   Pings are answered and pongs skipped inside; fragments are joined.
-- ws:ping([data]) -> true | nil, err   (data up to 125 bytes)
-- ws:close([code [, reason]]) -> true  sends a close frame (default 1000),
--   waits (close_timeout) for the peer's and for its TCP close, closes the
--   conn; idempotent. While another goroutine is in ws:recv, close only
--   sends the frame and bounds that recv by close_timeout: the recv sees
--   the peer's answer and finishes the handshake.
-- ws.protocol (chosen subprotocol or nil), ws.conn (the underlying conn).
-- A ws is a to-be-closed value (__close calls ws:close()).
--
-- No extensions (permessage-deflate is not offered nor accepted).
local lpeg = require "lpeg"
local go = require "go"
local net = require "net"
local codec = require "goluarun.codec"

local P, R, S, C, Cc, Cg = lpeg.P, lpeg.R, lpeg.S, lpeg.C, lpeg.Cc, lpeg.Cg
local match = lpeg.match
local byte, char, sub, lower, find, gmatch, pack, unpack =
  string.byte, string.char, string.sub, string.lower, string.find,
  string.gmatch, string.pack, string.unpack
local concat = table.concat
local utf8_len = utf8.len
local type, error, tostring, tonumber, setmetatable, pairs, ipairs, pcall =
  type, error, tostring, tonumber, setmetatable, pairs, ipairs, pcall
local math_type = math.type
local now = go.now
local mask, random, sha1, base64 = codec.mask, codec.random, codec.sha1, codec.base64

local M = {}

local GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
local OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
local KIND = { [OP_TEXT] = "text", [OP_BINARY] = "binary" }
local OPCODE = { text = OP_TEXT, binary = OP_BINARY }
local CODE_ABNORMAL, CODE_NO_STATUS = 1006, 1005

---------------------------------------------------------------------------
-- Grammar
---------------------------------------------------------------------------

local DIGIT = R"09"
local ALPHA = R("az", "AZ")
local TOKEN = (R("09", "az", "AZ") + S"!#$%&'*+-.^_`|~")^1
local TOKEN_ONLY = TOKEN * -1
local B64 = ALPHA + DIGIT + S"+/"
local KEY = B64^22 * "==" * -1 -- base64 of 16 bytes
local WSP = S" \t"
local FCHAR = R"\33\126" + R"\128\255"
local FIELD_VALUE = C((FCHAR^1 * (WSP^1 * FCHAR^1)^0)^-1)

-- "ws://host:port/path?q" -> secure, host, port|nil, target
local HOST = "[" * C((1 - S"]/")^1) * "]" + C((1 - S":/?#@[]")^1)
local URL = (S"wW" * S"sS" * (S"sS" * Cc(true) + Cc(false))) * "://" * HOST
  * (":" * C(DIGIT^1) + Cc(nil)) * C((S"/?" * (1 - P"#")^0)^-1) * -1

-- response head: status line, then header fields (lower-case names,
-- repeated fields joined with ", ")
local function fold(t, k, v)
  local old = t[k]
  t[k] = old and old .. ", " .. v or v
  return t
end
local STATUS_LINE = P"HTTP/1." * DIGIT * " " * C(DIGIT * DIGIT * DIGIT)
  * (" " * (1 - P"\r")^0)^-1 * P"\r"^-1 * -1
local FIELD_LINE = Cg(TOKEN / lower * ":" * WSP^0 * FIELD_VALUE * WSP^0
  * P"\r"^-1 * -1)

local function has_token(v, tok)
  if not v then return false end
  for t in gmatch(lower(v), "[^,%s]+") do
    if t == tok then return true end
  end
  return false
end

local function list_of(v)
  local t = {}
  if v then
    for x in gmatch(v, "[^,%s]+") do t[#t + 1] = x end
  end
  return t
end

---------------------------------------------------------------------------
-- Options
---------------------------------------------------------------------------

local DEFAULT_MAX = 16 * 1024 * 1024
local DEFAULTS = { max_message = DEFAULT_MAX, close_timeout = 5, timeout = 30 }

local function check_number(opts, k, integer, level)
  local v = opts[k]
  if v == nil then return DEFAULTS[k] end
  if type(v) ~= "number" or v ~= v or v <= 0
    or (integer and math_type(v) ~= "integer") then
    error("websocket: opts." .. k .. " must be a positive "
      .. (integer and "integer" or "number"), level + 1)
  end
  return v
end

local function check_protocols(list, level)
  if list == nil then return nil end
  if type(list) ~= "table" then error("websocket: opts.protocols must be a list", level + 1) end
  for _, p in ipairs(list) do
    if type(p) ~= "string" or not match(TOKEN_ONLY, p) then
      error("websocket: opts.protocols: bad protocol name " .. tostring(p), level + 1)
    end
  end
  return list
end

local cfg_cache = setmetatable({}, { __mode = "k" }) -- opts -> checked config

local function config(opts, level)
  if opts == nil then return DEFAULTS end
  if type(opts) ~= "table" then error("websocket: opts must be a table", level + 1) end
  local c = cfg_cache[opts]
  if c then return c end
  c = {
    max_message = check_number(opts, "max_message", true, level + 1),
    close_timeout = check_number(opts, "close_timeout", false, level + 1),
    timeout = check_number(opts, "timeout", false, level + 1),
    protocols = check_protocols(opts.protocols, level + 1),
  }
  if opts.origin ~= nil and type(opts.origin) ~= "string" then
    error("websocket: opts.origin must be a string", level + 1)
  end
  if opts.headers ~= nil and type(opts.headers) ~= "table" then
    error("websocket: opts.headers must be a table", level + 1)
  end
  c.origin, c.headers, c.tls = opts.origin, opts.headers, opts.tls
  cfg_cache[opts] = c
  return c
end

---------------------------------------------------------------------------
-- Frames
---------------------------------------------------------------------------

local WS = {}
WS.__index = WS
WS.__name = "websocket"

local function new_ws(conn, buffered, client, cfg, protocol)
  return setmetatable({
    conn = conn, protocol = protocol,
    _pre = buffered ~= "" and buffered or nil, -- bytes read before the conn's
    _client = client, _max = cfg.max_message, _linger = cfg.close_timeout,
    _mop = nil, _parts = nil, _np = 0, _mlen = 0, -- a fragmented message
    _sent_close = false, _done = false, _reading = false, _deadline = false,
    _code = nil, _reason = nil,
  }, WS)
end

-- frame head: FIN + opcode, then the length (7 bits, 16 or 64), with the
-- mask bit if this side masks
local function frame_head(op, n, maskbit)
  local b1 = 0x80 | op
  if n < 126 then return char(b1, n | maskbit) end
  if n < 65536 then return pack(">BBI2", b1, 126 | maskbit, n) end
  return pack(">BBI8", b1, 127 | maskbit, n)
end

local function send_frame(ws, op, data)
  local ok, err
  if ws._client then
    local key = random(4)
    ok, err = ws.conn:write(frame_head(op, #data, 0x80), key, mask(data, key))
  else
    ok, err = ws.conn:write(frame_head(op, #data, 0), data)
  end
  if not ok then return nil, err end
  return true
end

-- n bytes: the bytes handed over at the upgrade first, then the conn's.
-- On failure: nil, err, the bytes consumed meanwhile.
local function readn(ws, n)
  local pre = ws._pre
  if pre then
    local have = #pre
    if have >= n then
      ws._pre = have > n and sub(pre, n + 1) or nil
      return sub(pre, 1, n)
    end
    ws._pre = nil
    local rest, err, partial = ws.conn:read(n - have)
    if not rest then return nil, err, pre .. (partial or "") end
    return pre .. rest
  end
  if n == 0 then return "" end
  return ws.conn:read(n)
end

-- reads n bytes of the current frame; `got` lists the frame's bytes so
-- far, which a timeout puts back so that the next recv starts over
local function take(ws, got, n)
  local d, err, partial = readn(ws, n)
  if d then
    got[#got + 1] = d
    return d
  end
  if err == "timeout" then
    got[#got + 1] = partial or ""
    got[#got + 1] = ws._pre or ""
    ws._pre = concat(got)
    if ws._pre == "" then ws._pre = nil end
  end
  return nil, err
end

-- one frame: op, payload (unmasked), fin | nil, err (I/O) | false, code,
-- reason (the peer broke the protocol)
local function read_frame(ws)
  local got = {}
  local h, err = take(ws, got, 2)
  if not h then return nil, err end
  local b1, b2 = byte(h, 1, 2)
  local fin, op, len = b1 >= 0x80, b1 & 0x0f, b2 & 0x7f
  if b1 & 0x70 ~= 0 then return false, 1002, "reserved bits set" end
  if (b2 >= 0x80) == ws._client then
    return false, 1002, ws._client and "masked frame from the server"
      or "unmasked frame from the client"
  end
  if op >= OP_CLOSE then
    if op > OP_PONG then return false, 1002, "unknown opcode" end
    if not fin or len > 125 then return false, 1002, "bad control frame" end
  elseif op > OP_BINARY then
    return false, 1002, "unknown opcode"
  elseif (op == OP_CONT) ~= (ws._mop ~= nil) then
    return false, 1002, op == OP_CONT and "continuation without a message"
      or "new message inside a fragmented one"
  end
  local klen = ws._client and 0 or 4
  if len < 126 then -- a small frame: key and payload in one read
    if op < OP_CLOSE and ws._mlen + len > ws._max then
      return false, 1009, "message too big"
    end
    local rest
    rest, err = take(ws, got, klen + len)
    if not rest then return nil, err end
    if klen == 0 then return op, rest, fin end
    if len == 0 then return op, "", fin end
    return op, mask(sub(rest, 5), sub(rest, 1, 4)), fin
  end
  local x
  x, err = take(ws, got, (len == 126 and 2 or 8) + klen)
  if not x then return nil, err end
  len = unpack(len == 126 and ">I2" or ">i8", x)
  if len < 0 then return false, 1002, "bad frame length" end
  if op < OP_CLOSE and ws._mlen + len > ws._max then
    return false, 1009, "message too big"
  end
  local data
  data, err = take(ws, got, len)
  if not data then return nil, err end
  if klen > 0 and len > 0 then data = mask(data, sub(x, -4)) end
  return op, data, fin
end

---------------------------------------------------------------------------
-- Closing
---------------------------------------------------------------------------

local function valid_code(c)
  return (c >= 1000 and c <= 1003) or (c >= 1007 and c <= 1014)
    or (c >= 3000 and c <= 4999)
end

local function close_payload(code, reason)
  if not code then return "" end
  return pack(">I2", code) .. (reason or "")
end

-- after both close frames (or a failure): FIN, then read until the peer's
-- FIN (bounded by close_timeout) so that unread bytes never turn our close
-- into a reset that could destroy the close frame in flight; then close
local function finish(ws)
  if ws._done then return end
  ws._done = true
  local conn = ws.conn
  if conn:closewrite() then
    conn:setreaddeadline(now() + ws._linger)
    if ws._pre then ws._pre = nil end
    while conn:read() do end
  end
  conn:close()
end

local function closed(ws)
  return nil, "closed", ws._code, ws._reason
end

-- fails the connection for a protocol error of the peer
local function fail(ws, code, reason)
  if not ws._sent_close then
    ws._sent_close = true
    send_frame(ws, OP_CLOSE, close_payload(code, reason))
  end
  ws._code, ws._reason = code, reason
  finish(ws)
  return closed(ws)
end

-- the conn broke (EOF, reset, ...) without a close handshake
local function broken(ws, err)
  ws._code, ws._reason = ws._code or CODE_ABNORMAL, ws._reason or ""
  ws._done = true
  ws.conn:close()
  return nil, err, CODE_ABNORMAL
end

-- a close frame arrived: answer it (unless we started), then finish
local function on_close(ws, data)
  local code, reason = CODE_NO_STATUS, ""
  if #data == 1 then return fail(ws, 1002, "bad close frame") end
  if #data >= 2 then
    code, reason = unpack(">I2", data), sub(data, 3)
    if not valid_code(code) then return fail(ws, 1002, "bad close code") end
    if not utf8_len(reason) then return fail(ws, 1007, "invalid UTF-8") end
  end
  if not ws._sent_close then
    ws._sent_close = true
    send_frame(ws, OP_CLOSE, code == CODE_NO_STATUS and "" or data)
  end
  ws._code, ws._reason = code, reason
  finish(ws)
  return closed(ws)
end

---------------------------------------------------------------------------
-- Messages
---------------------------------------------------------------------------

-- a complete message (op: text or binary)
local function deliver(ws, op, data)
  if op == OP_TEXT and not utf8_len(data) then
    return fail(ws, 1007, "invalid UTF-8")
  end
  return data, KIND[op]
end

-- a data frame: the message, or nothing yet (fragments)
local function on_data(ws, op, data, fin)
  if op ~= OP_CONT then
    if fin then return deliver(ws, op, data) end
    ws._mop, ws._parts, ws._np, ws._mlen = op, { data }, 1, #data
    return
  end
  local np = ws._np + 1
  ws._parts[np], ws._np, ws._mlen = data, np, ws._mlen + #data
  if not fin then return end
  local mop, parts = ws._mop, ws._parts
  ws._mop, ws._parts, ws._np, ws._mlen = nil, nil, 0, 0
  return deliver(ws, mop, concat(parts, "", 1, np))
end

local function recv_loop(ws)
  while true do
    local op, data, fin = read_frame(ws)
    if op == false then return fail(ws, data, fin) end
    if op == nil then
      if data == "timeout" and not ws._sent_close then return nil, "timeout" end
      if data == "timeout" or data == "closed" then
        ws._code = ws._code or CODE_ABNORMAL
        finish(ws)
        return closed(ws)
      end
      return broken(ws, data)
    end
    if op == OP_CLOSE then return on_close(ws, data) end
    if op == OP_PING then
      if not ws._sent_close then send_frame(ws, OP_PONG, data) end
    elseif op ~= OP_PONG then
      local msg, kind, code, reason = on_data(ws, op, data, fin)
      if msg ~= nil or kind ~= nil then return msg, kind, code, reason end
    end
  end
end

--- ws:recv([timeout]) -> data, kind | nil, err [, code, reason]
function WS:recv(timeout)
  if self._done then return closed(self) end
  if timeout ~= nil and type(timeout) ~= "number" then
    error("websocket: recv: timeout must be a number", 2)
  end
  if self._reading then error("websocket: recv: another goroutine is receiving", 2) end
  self._reading = true
  if self._sent_close then -- close() set the deadline
  elseif timeout then
    self.conn:setreaddeadline(now() + timeout)
    self._deadline = true
  elseif self._deadline then
    self.conn:setreaddeadline(nil)
    self._deadline = false
  end
  local ok, a, b, c, d = pcall(recv_loop, self)
  self._reading = false
  if not ok then error(a, 0) end -- "cancelled", "not enough memory": re-raised
  if a ~= nil then return a, b end
  if c == nil then return nil, b end
  return nil, b, c, d
end

--- ws:send(data [, kind]) -> true | nil, err
function WS:send(data, kind)
  if type(data) ~= "string" then
    if type(data) ~= "number" then error("websocket: send: data must be a string", 2) end
    data = tostring(data)
  end
  local op = OPCODE[kind or "text"]
  if not op then error("websocket: send: kind must be \"text\" or \"binary\"", 2) end
  if op == OP_TEXT and not utf8_len(data) then
    error("websocket: send: text is not valid UTF-8 (send it as \"binary\")", 2)
  end
  if self._sent_close then return nil, "closed" end
  return send_frame(self, op, data)
end

--- ws:ping([data]) -> true | nil, err
function WS:ping(data)
  data = data or ""
  if type(data) ~= "string" or #data > 125 then
    error("websocket: ping: data must be a string of up to 125 bytes", 2)
  end
  if self._sent_close then return nil, "closed" end
  return send_frame(self, OP_PING, data)
end

local function check_close_args(code, reason)
  if code ~= nil and (math_type(code) ~= "integer" or not valid_code(code)) then
    error("websocket: close: bad code " .. tostring(code)
      .. " (1000-1003, 1007-1014, 3000-4999)", 3)
  end
  if reason ~= nil then
    if code == nil then error("websocket: close: a reason needs a code", 3) end
    if type(reason) ~= "string" or #reason > 123 or not utf8_len(reason) then
      error("websocket: close: reason must be UTF-8 of up to 123 bytes", 3)
    end
  end
end

--- ws:close([code [, reason]]) -> true
function WS:close(code, reason)
  check_close_args(code, reason)
  if self._done then return true end
  if not self._sent_close then
    self._sent_close = true
    self._code, self._reason = code or 1000, reason or ""
    send_frame(self, OP_CLOSE, close_payload(code or 1000, reason))
  end
  -- wait for the peer's close frame, within close_timeout
  self.conn:setreaddeadline(now() + self._linger)
  if self._reading then return true end -- that recv finishes the handshake
  self._reading = true
  local ok, err = pcall(function()
    while not self._done do recv_loop(self) end -- messages meanwhile are dropped
  end)
  self._reading = false
  if not ok then
    self.conn:close()
    error(err, 0)
  end
  return true
end
WS.__close = function(self) self:close() end

---------------------------------------------------------------------------
-- Server handshake
---------------------------------------------------------------------------

local function accept_key(key)
  return base64(sha1(key .. GUID))
end

local function refuse(res, code, why, hname, hvalue)
  res:status(code)
  if hname then res:header(hname, hvalue) end
  res:header("Connection", "close")
  res:send(why .. "\n")
  return nil, "bad handshake: " .. why
end

-- nil if the request is a valid handshake, else the refusal's results
local function check_handshake(req, res)
  local h = req.headers
  if req.method ~= "GET" then return refuse(res, 400, "method must be GET") end
  if req.version ~= "1.1" then return refuse(res, 400, "HTTP/1.1 required") end
  if not has_token(h.upgrade, "websocket") then
    return refuse(res, 426, "Upgrade: websocket required", "Upgrade", "websocket")
  end
  if not has_token(h.connection, "upgrade") then
    return refuse(res, 400, "Connection: upgrade required")
  end
  if h["sec-websocket-version"] ~= "13" then
    return refuse(res, 426, "unsupported Sec-WebSocket-Version",
      "Sec-WebSocket-Version", "13")
  end
  local key = h["sec-websocket-key"]
  if not key or not match(KEY, key) then
    return refuse(res, 400, "missing or bad Sec-WebSocket-Key")
  end
  if h["content-length"] or h["transfer-encoding"] then
    return refuse(res, 400, "a handshake has no body")
  end
end

local function choose_protocol(offered, supported)
  if not supported or not offered then return nil end
  local set = {}
  for _, p in ipairs(list_of(offered)) do set[p] = true end
  for _, p in ipairs(supported) do
    if set[p] then return p end
  end
end

--- websocket.upgrade(req, res [, opts]) -> ws | nil, err
function M.upgrade(req, res, opts)
  if type(req) ~= "table" or type(res) ~= "table" or not res.hijack then
    error("websocket.upgrade: a goluarun.http request and response expected", 2)
  end
  local cfg = config(opts, 2)
  local nok, err = check_handshake(req, res)
  if err then return nok, err end
  local protocol = choose_protocol(req.headers["sec-websocket-protocol"], cfg.protocols)
  local conn, buffered = res:hijack()
  local ok, werr = conn:write("HTTP/1.1 101 Switching Protocols\r\n",
    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    accept_key(req.headers["sec-websocket-key"]), "\r\n",
    protocol and "Sec-WebSocket-Protocol: " .. protocol .. "\r\n" or "", "\r\n")
  if not ok then return nil, werr end
  return new_ws(conn, buffered, false, cfg, protocol)
end

---------------------------------------------------------------------------
-- Client handshake
---------------------------------------------------------------------------

local function parse_url(url)
  if type(url) ~= "string" then error("websocket.dial: url must be a string", 3) end
  local secure, host, port, target = match(URL, url)
  if secure == nil then
    error("websocket.dial: bad url " .. url .. " (want ws://host[:port]/path or wss://...)", 3)
  end
  local dport = secure and 443 or 80
  port = port and tonumber(port) or dport
  if port < 1 or port > 65535 then error("websocket.dial: bad port in " .. url, 3) end
  if target == "" then target = "/" elseif byte(target) == 63 then target = "/" .. target end
  local bracket = find(host, ":", 1, true) and "[" .. host .. "]" or host
  local hosthdr = port == dport and bracket or bracket .. ":" .. port
  return secure, bracket .. ":" .. port, hosthdr, target
end

local function request_head(target, hosthdr, key, cfg)
  local t = { "GET ", target, " HTTP/1.1\r\nHost: ", hosthdr,
    "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ", key,
    "\r\nSec-WebSocket-Version: 13\r\n" }
  if cfg.protocols and #cfg.protocols > 0 then
    t[#t + 1] = "Sec-WebSocket-Protocol: " .. concat(cfg.protocols, ", ") .. "\r\n"
  end
  if cfg.origin then t[#t + 1] = "Origin: " .. cfg.origin .. "\r\n" end
  for k, v in pairs(cfg.headers or {}) do
    local line = tostring(k) .. ": " .. tostring(v)
    if find(line, "[\r\n]") then error("websocket.dial: opts.headers: bad header " .. tostring(k), 4) end
    t[#t + 1] = line .. "\r\n"
  end
  t[#t + 1] = "\r\n"
  return concat(t)
end

local MAX_HEAD_LINES = 100

-- status code and headers of the response head | nil, err
local function read_response(conn)
  local line, err = conn:read("l")
  if not line then return nil, err end
  local status = match(STATUS_LINE, line)
  if not status then return nil, "bad handshake: malformed status line" end
  local h = {}
  for _ = 1, MAX_HEAD_LINES do
    line, err = conn:read("l")
    if not line then return nil, err end
    if line == "" or line == "\r" then return tonumber(status), h end
    local k, v = match(FIELD_LINE, line)
    if not k then return nil, "bad handshake: malformed header line" end
    fold(h, k, v)
  end
  return nil, "bad handshake: too many header lines"
end

-- the chosen protocol | nil, err
local function check_response(status, h, key, cfg)
  if status ~= 101 then return nil, "bad handshake: status " .. status end
  if not has_token(h.upgrade, "websocket") or not has_token(h.connection, "upgrade") then
    return nil, "bad handshake: no Upgrade: websocket"
  end
  if h["sec-websocket-accept"] ~= accept_key(key) then
    return nil, "bad handshake: wrong Sec-WebSocket-Accept"
  end
  if h["sec-websocket-extensions"] then
    return nil, "bad handshake: extension not offered"
  end
  local p = h["sec-websocket-protocol"]
  if p then
    for _, q in ipairs(cfg.protocols or {}) do
      if q == p then return p end
    end
    return nil, "bad handshake: protocol not offered: " .. p
  end
  return false
end

local function handshake(conn, target, hosthdr, cfg)
  local key = base64(random(16))
  local ok, err = conn:write(request_head(target, hosthdr, key, cfg))
  if not ok then return nil, err end
  local status, h = read_response(conn)
  if not status then return nil, h end
  return check_response(status, h, key, cfg)
end

--- websocket.dial(url [, opts]) -> ws | nil, err
function M.dial(url, opts)
  local secure, addr, hosthdr, target = parse_url(url)
  local cfg = config(opts, 2)
  local tls = nil
  if secure then tls = cfg.tls == nil and true or cfg.tls end
  local conn, err = net.dial(addr, { timeout = cfg.timeout, tls = tls })
  if not conn then return nil, err end
  conn:setdeadline(now() + cfg.timeout)
  local protocol
  protocol, err = handshake(conn, target, hosthdr, cfg)
  if protocol == nil then
    conn:close()
    return nil, err
  end
  conn:setdeadline(nil)
  return new_ws(conn, "", true, cfg, protocol or nil)
end

return M
