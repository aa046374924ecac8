-- schan_work: functions for spec/sharedchan_spec.lua's portable goroutines
local M = {}

-- answers n pings with ping + 1; first reports where it runs
function M.pong(ping, pong, n)
  pong:send(go.procid())
  for _ = 1, n do
    local v = ping:recv()
    pong:send(v + 1)
  end
  return go.procid()
end

-- keeps its P busy (runnable: the P takes no other portable work) until
-- `gate` is closed, then produces
function M.gated_produce(gate, ch, first, n)
  while go.select({ { gate, "recv" } }, 0) == nil do go.yield() end
  return M.produce(ch, first, n)
end

function M.produce(ch, first, n)
  for i = first, first + n - 1 do ch:send(i) end
  return go.procid()
end

-- sums until the channel is closed and drained
function M.consume(ch)
  local sum, n = 0, 0
  while true do
    local v, ok = ch:recv()
    if not ok then break end
    sum, n = sum + v, n + 1
  end
  return sum, n, go.procid()
end

function M.recv(ch) return ch:recv() end
function M.send(ch, v) ch:send(v); return go.procid() end

-- receives a channel on `via`, sends `v` on it
function M.reply_on(via, v)
  local ch = assert(via:recv())
  ch:send(v)
  return go.procid()
end

-- echoes what it receives on `inp` to `out` until inp is closed
function M.echo(inp, out)
  while true do
    local v, ok = inp:recv()
    if not ok then break end
    out:send(v)
  end
  out:close()
end

function M.where() return go.procid() end

function M.gc()
  collectgarbage(); collectgarbage()
  return go.procid()
end

-- busy for `s` seconds without parking (keeps its P occupied)
function M.spin(s)
  local t = go.now() + s
  while go.now() < t do end
  return go.procid()
end
return M
