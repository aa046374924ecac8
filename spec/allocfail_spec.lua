-- allocfail_spec: GOLUA_ALLOCFAIL (runtime/memlimit.c) makes a goroutine's
-- Nth growing allocation fail (with Lua's retry), or each one at random
-- with a seed. spec/support/allocfail_core.lua (goroutines, channels, a
-- server answering its clients, then a clean round) runs as a subprocess
-- (-p 1, so N hits the same allocation every run) across many N and a few
-- seeds. Each run must:
--   * exit 0 (or 1: main itself was refused), never by a signal (a crash,
--     an ASan/UBSan abort, a LeakSanitizer report: the ASan stage runs this
--     spec with detect_leaks=1:abort_on_error=1) nor as a deadlock;
--   * have only "not enough memory" errors on stderr (their tracebacks
--     aside): no sanitizer report, no other Lua error, no "PHASE ...:
--     UNEXPECTED" from the script;
--   * print "alive" when it exits 0 (count mode): the runtime still served
--     after the failure.
local H = require "support.helpers"

local here = debug.getinfo(1, "S").source:gsub("^@", "")
local root = here:match("^(.*)/spec/[^/]*$") or "."
local CORE = root .. "/spec/support/allocfail_core.lua"

-- the script makes about 9,000 growing allocations in goroutines (-p 1):
-- every one of the first 24 (start-up paths: N = 30..40 found go()'s
-- thread refused on the VM's main thread, a panic), then a spread
local NS = {}
for n = 1, 24 do NS[#NS + 1] = n end
for n = 30, 40, 2 do NS[#NS + 1] = n end
for n = 97, 9000, H.scale(450, 900) do NS[#NS + 1] = n end
local SEEDS = { "1:0.001", "2:0.001", "3:0.003", "4:0.01" }

local function is_traceback(line)
  return line:find("^%s") or line:find("^stack traceback:") or line:find("^%(%.%.%.tail calls")
end

-- nil if the run kept the contract, else what broke it
local function verdict(r, random)
  if r.status ~= 0 and r.status ~= 1 then return "exit status " .. r.status end
  for line in r.stderr:gmatch("[^\n]+") do
    if not is_traceback(line) and not line:find("not enough memory", 1, true) then
      return "stderr: " .. line
    end
  end
  -- at random the failures go on, so a clean round is not owed
  if not random and r.status == 0 and not r.stdout:find("alive", 1, true) then
    return "no clean round"
  end
  return nil
end

local function run(value)
  return H.run(CORE, {}, {
    flags = { "-p", "1" }, file = true, timeout = 60,
    env = { GOLUA_ALLOCFAIL = value }, unsetenv = { "GOLUA_MEMLIMIT" } })
end

describe("GOLUA_ALLOCFAIL", function()
  it("the core work with no failure injected is clean", function()
    local r = run("off")
    assert.is_nil(verdict(r), H.describe_run(r))
    assert.are.equal("", r.stderr)
  end)

  it("the Nth allocation failing, for many N: no crash, no leak, only 'not enough memory', still serving", function()
    local bad, failed = {}, 0
    for _, n in ipairs(NS) do
      local r = run(tostring(n))
      local v = verdict(r)
      if v then bad[#bad + 1] = ("N=%d: %s\n%s"):format(n, v, H.describe_run(r)) end
      if r.stderr:find("not enough memory", 1, true) or r.status == 1 then failed = failed + 1 end
    end
    assert.are.equal(0, #bad, table.concat(bad, "\n"))
    -- the injection really happened in most runs
    assert.is_true(failed >= #NS // 2, failed .. " of " .. #NS .. " runs saw a failure")
  end)

  it("allocations failing at random with a seed: the same contract", function()
    local bad = {}
    for _, v in ipairs(SEEDS) do
      local r = run(v)
      local why = verdict(r, true)
      if why then bad[#bad + 1] = ("%s: %s\n%s"):format(v, why, H.describe_run(r)) end
    end
    assert.are.equal(0, #bad, table.concat(bad, "\n"))
  end)

  it("a malformed value is reported and ignored", function()
    for _, v in ipairs({ "x", "0", "-1", "1:0", "1:", "5x" }) do
      local r = H.run("print('ran')", {}, { env = { GOLUA_ALLOCFAIL = v } })
      assert.are.equal(0, r.status, H.describe_run(r))
      assert.are.equal("ran\n", r.stdout)
      assert.truthy(r.stderr:find("GOLUA_ALLOCFAIL=" .. v:gsub("%p", "%%%0") .. ": must be N", 1),
        r.stderr)
    end
  end)
end)
