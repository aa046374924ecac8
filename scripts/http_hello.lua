-- http_hello.lua: minimal HTTP/1.1 "Hello, World!" server with keep-alive.
--   goluarun scripts/http_hello.lua [port | host:port]     (default 8080)
-- Prints "listening on ADDR" once listening. HTTP/1.1 connections stay
-- open unless the request says "Connection: close"; HTTP/1.0 ones close
-- unless it says "Connection: keep-alive". A malformed request gets a
-- 400 and the connection is closed.
local net = require "net"

local spec = arg and arg[1] or "8080"
local addr = spec:find(":") and spec or (":" .. spec)

local BODY = "Hello, World!\n"
local IDLE_TIMEOUT = 60
local MAX_HEADERS = 100

local function respond(conn, status, body, close, head_only)
  return conn:write("HTTP/1.1 ", status, "\r\n",
    "Content-Type: text/plain\r\n",
    "Content-Length: ", #body, "\r\n",
    close and "Connection: close\r\n" or "",
    "\r\n", head_only and "" or body)
end

-- Reads one request head: method, target, minor version, headers (lower-
-- case names); or nil, reason ("eof"/"timeout"/... or "bad request").
local function read_request(conn)
  local line, err = conn:read("l")
  if not line then return nil, err end
  local method, target, major, minor =
    line:match("^(%u+) (%S+) HTTP/(%d)%.(%d)$")
  if not method or major ~= "1" then return nil, "bad request" end
  local headers = {}
  for _ = 1, MAX_HEADERS + 1 do
    local h, herr = conn:read("l")
    if not h then
      if herr and herr:match("^line too long") then return nil, "bad request" end
      return nil, herr
    end
    if h == "" then
      return method, target, tonumber(minor), headers
    end
    local name, value = h:match("^([%w!#$%%&'*+%.^_`|~-]+):[ \t]*(.-)[ \t]*$")
    if not name then return nil, "bad request" end
    name = name:lower()
    if headers[name] then
      headers[name] = headers[name] .. ", " .. value
    else
      headers[name] = value
    end
  end
  return nil, "bad request"
end

local function has_token(value, token)
  if not value then return false end
  for t in value:gmatch("[^,%s]+") do
    if t:lower() == token then return true end
  end
  return false
end

local function handle(conn)
  conn:settimeout(IDLE_TIMEOUT)
  while true do
    local method, err_or_target, minor, headers = read_request(conn)
    if not method then
      if err_or_target == "bad request" then
        respond(conn, "400 Bad Request", "Bad Request\n", true)
      end
      break
    end
    -- discard a request body, if any
    local len = headers["content-length"]
    if len then
      local n = tonumber(len)
      if not n or n < 0 or n ~= math.floor(n) then
        respond(conn, "400 Bad Request", "Bad Request\n", true)
        break
      end
      if n > 0 and not conn:read(math.tointeger(n)) then break end
    elseif headers["transfer-encoding"] then
      respond(conn, "400 Bad Request", "Bad Request\n", true)
      break
    end
    local close
    if minor == 0 then
      close = not has_token(headers["connection"], "keep-alive")
    else
      close = has_token(headers["connection"], "close")
    end
    local ok = respond(conn, "200 OK", BODY, close, method == "HEAD")
    if not ok or close then break end
  end
  conn:close()
end

local ln = assert(net.serve(addr, handle))
io.stdout:write("listening on ", ln:addr(), "\n")
io.stdout:flush()
