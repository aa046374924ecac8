-- Portable goroutines for spec/handoff_spec.lua: each blocks in C (inside
-- the hand-off) on whichever P took it.
local tu = require "testutil"

local M = {}

function M.blocker(i)
  tu.block_sleep(0.02)
  return i
end

return M
