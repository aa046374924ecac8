-- ws_chat.lua: a WebSocket chat room (the example of docs/API.md
-- "WebSocket"): every text message a client sends on /chat goes to every
-- connected client as "ADDR: message".
--   goluarun scripts/ws_chat.lua [host:port]      (default 127.0.0.1:8080)
-- Prints "listening on ADDR" once listening. A browser client:
--   new WebSocket("ws://127.0.0.1:8080/chat", "chat")
-- (A sender waits for each peer's write in turn: a production room would
-- give each client an outbox goroutine, as scripts/chat.lua does.)
local http = require "goluarun.http"
local websocket = require "goluarun.websocket"

local clients = {} -- ws -> true (one VM: net.serve with a function runs
                   -- every connection of this listener in this VM)
local app = http.router()
app:get("/chat", function(req, res)
  local ws = websocket.upgrade(req, res, { protocols = { "chat" }, max_message = 64 * 1024 })
  if not ws then return end -- refused: the handshake was answered with 400/426
  clients[ws] = true
  local who = ws.conn:remoteaddr()
  while true do
    local msg, kind = ws:recv()
    if not msg then break end -- nil, "closed", code, reason (or a broken conn)
    if kind == "text" then
      for peer in pairs(clients) do peer:send(who .. ": " .. msg) end
    end
  end
  clients[ws] = nil
  ws:close()
end)
local ln = assert(http.serve(arg[1] or "127.0.0.1:8080", app))
print("listening on " .. ln:addr())
io.stdout:flush()
