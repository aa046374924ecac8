-- sync: WaitGroup and Mutex for the goroutines of one VM, built on local
-- channels (go.chan, go.select, go.after).
--
--   local sync = require "sync"
--   local wg = sync.waitgroup()
--   wg:add(n); wg:done(); wg:wait([timeout]) --> true | nil, "timeout"
--   local mu = sync.mutex()
--   mu:lock(); mu:unlock(); mu:trylock() --> boolean
--
-- Both are per VM: they hold local channels, so they must not be handed
-- to another VM. Every state change goes through a channel operation, so
-- they stay correct even if a goroutine is preempted between two Lua
-- instructions.
local go = require "go"

local sync = {}

---------------------------------------------------------------------------
-- Mutex: a channel of capacity 1; holding the lock = a value in the buffer.
---------------------------------------------------------------------------

local Mutex = {}
Mutex.__index = Mutex
Mutex.__name = "sync.mutex"

--- Creates an unlocked mutex.
function sync.mutex()
  return setmetatable({ ch = go.chan(1) }, Mutex)
end

--- Blocks until the mutex is free, then takes it.
function Mutex:lock()
  self.ch:send(true)
end

--- Takes the mutex if it is free; never blocks.
function Mutex:trylock()
  local i = go.select({ { self.ch, "send", true } }, 0)
  return i ~= nil
end

--- Releases the mutex; raises if it is not locked.
function Mutex:unlock()
  local i = go.select({ { self.ch, "recv" } }, 0)
  if i == nil then
    error("sync: unlock of unlocked mutex", 2)
  end
end

---------------------------------------------------------------------------
-- WaitGroup: a counter guarded by a mutex; while it is above zero, a
-- "zero" channel exists and waiters receive on it; it is closed (waking
-- every waiter) when the counter comes back to zero.
---------------------------------------------------------------------------

local WaitGroup = {}
WaitGroup.__index = WaitGroup
WaitGroup.__name = "sync.waitgroup"

--- Creates a wait group with a counter of zero.
function sync.waitgroup()
  return setmetatable({ mu = sync.mutex(), count = 0, zero = nil }, WaitGroup)
end

--- Adds n (default 1, may be negative) to the counter; raises if the
--- counter would go below zero.
function WaitGroup:add(n)
  if n == nil then n = 1 end
  if math.type(n) ~= "integer" then
    if type(n) == "number" and n == math.floor(n) then
      n = math.tointeger(n)
    else
      error("sync: waitgroup add expects an integer", 2)
    end
  end
  self.mu:lock()
  local c = self.count + n
  if c < 0 then
    self.mu:unlock()
    error("sync: negative waitgroup counter", 2)
  end
  if self.count == 0 and c > 0 then
    self.zero = go.chan()
  elseif c == 0 and self.zero then
    self.zero:close()
    self.zero = nil
  end
  self.count = c
  self.mu:unlock()
end

--- Decrements the counter by one; raises if it would go below zero.
function WaitGroup:done()
  self.mu:lock()
  if self.count <= 0 then
    self.mu:unlock()
    error("sync: negative waitgroup counter", 2)
  end
  self.count = self.count - 1
  if self.count == 0 and self.zero then
    self.zero:close()
    self.zero = nil
  end
  self.mu:unlock()
end

--- Blocks until the counter is zero: true; or, with a timeout (seconds),
--- nil, "timeout" once it has passed.
function WaitGroup:wait(timeout)
  if timeout ~= nil and type(timeout) ~= "number" then
    error("sync: waitgroup wait expects a number of seconds", 2)
  end
  self.mu:lock()
  local z = self.zero
  self.mu:unlock()
  if z == nil then
    return true
  end
  local i
  if timeout == nil then
    i = go.select({ { z, "recv" } })
  else
    i = go.select({ { z, "recv" } }, timeout)
  end
  if i == nil then
    return nil, "timeout"
  end
  return true
end

return sync
