-- chat.lua: line-based chat room.
--   goluarun scripts/chat.lua [port | host:port] [idle_timeout] [write_timeout]
-- (defaults 8080, 600 s, 10 s). Prints "listening on ADDR" once listening.
--
-- Each client is served by two goroutines: a reader (lines from the
-- socket to the hub) and a writer (lines from its outbox channel to the
-- socket). One hub goroutine owns the room: it registers and removes
-- clients and broadcasts "name: text" to every other client.
--   /nick NAME   change your name
--   /quit        leave
-- A client that cannot keep up (outbox full) is dropped; so is one that
-- sends nothing for idle_timeout seconds, or that does not take a line
-- within write_timeout (its socket buffers full): nothing a client does
-- (or fails to do) pins a goroutine and an fd for good.
--
-- Who closes the conn: its writer, once the outbox is closed and drained
-- (or a write failed); the handler waits for the writer before it returns,
-- so net.serve's own close never cuts off the last lines ("* bye").
local go = require "go"
local net = require "net"

local spec = arg and arg[1] or "8080"
local addr = spec:find(":") and spec or (":" .. spec)

local OUTBOX = 256            -- lines buffered per client
local MAX_LINE = 4096
local IDLE_TIMEOUT = tonumber(arg and arg[2]) or 600
local WRITE_TIMEOUT = tonumber(arg and arg[3]) or 10

local join = go.chan()        -- client records
local leave = go.chan()       -- client records
local events = go.chan(64)    -- {from = client, text = s} or {from, nick}

-- The hub: the only goroutine that touches `clients` and names.
local function hub()
  local clients = {}
  local remove

  local function deliver(c, line)
    if not clients[c] then return end
    if not go.select({ { c.out, "send", line } }, 0) then
      remove(c, "* you were too slow, bye")   -- outbox full: drop it
    end
  end

  local function broadcast(line, except)
    local list = {}
    for c in pairs(clients) do
      if c ~= except then list[#list + 1] = c end
    end
    for _, c in ipairs(list) do deliver(c, line) end
  end

  function remove(c, farewell)
    if not clients[c] then return end
    clients[c] = nil
    if farewell then go.select({ { c.out, "send", farewell } }, 0) end
    c.out:close()                     -- the writer drains it, then closes
    broadcast("* " .. c.name .. " left")
  end

  while true do
    local i, v = go.select({ { join, "recv" }, { leave, "recv" },
                             { events, "recv" } })
    if i == 1 then
      clients[v] = true
      deliver(v, "* welcome " .. v.name)
      broadcast("* " .. v.name .. " joined", v)
    elseif i == 2 then
      remove(v, "* bye")
    elseif v.from and clients[v.from] then
      local c = v.from
      if v.nick then
        if v.nick:match("^[%w_%-%.]+$") and #v.nick <= 32 then
          local old = c.name
          c.name = v.nick
          broadcast("* " .. old .. " is now known as " .. c.name)
        else
          deliver(c, "* invalid name")
        end
      else
        broadcast(c.name .. ": " .. v.text, c)
      end
    end
  end
end

local function writer(c)
  while true do
    local line, ok = c.out:recv()
    if not ok then break end
    c.conn:setwritedeadline(go.now() + WRITE_TIMEOUT)
    if not c.conn:write(line, "\n") then break end
  end
  c.conn:close()                      -- wakes the reader, if still reading
end

local nextid = 0

local function handle(conn)
  nextid = nextid + 1
  local c = { conn = conn, out = go.chan(OUTBOX), name = "guest" .. nextid }
  conn:setlimit(MAX_LINE)
  local w = go(writer, c)
  join:send(c)
  while true do
    conn:setreaddeadline(go.now() + IDLE_TIMEOUT)
    local line = conn:read("l")
    if not line then break end        -- eof, closed, reset, timeout, too long
    local cmd, rest = line:match("^/(%a+)%s*(.-)%s*$")
    if cmd == "quit" then
      break
    elseif cmd == "nick" then
      events:send({ from = c, nick = rest })
    elseif line ~= "" then
      events:send({ from = c, text = line })
    end
  end
  leave:send(c)
  go.wait(w)                          -- the writer drains the outbox, closes
end

go(hub)
local ln = assert(net.serve(addr, handle))
io.stdout:write("listening on ", ln:addr(), "\n")
io.stdout:flush()
