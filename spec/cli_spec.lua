-- cli_spec: goluarun as a drop-in `lua` (bindings/main.c, docs/API.md
-- "Command line"): LUA_INIT, package paths, the arg table, os.exit closing
-- the state, option errors, error reports without frames of the runtime, and
-- the interactive prompt driven through a pipe. Each case is what lua5.4's
-- own stand-alone checks (testes/main.lua) expect.
local H = require "support.helpers"

local function run(script, args, opts)
  local r = H.run(script, args, opts)
  r.desc = H.describe_run(r)
  return r
end

local PROG -- error prefix: the executable as run (lua's progname)

describe("command line as lua's", function()
  setup(function() PROG = H.bin() end)

  describe("LUA_INIT", function()
    it("runs LUA_INIT code first, with arg already set", function()
      local r = run("print(X)", { "3.2" }, { env = { LUA_INIT = "X=tonumber(arg[1])" } })
      assert.are.equal(0, r.status, r.desc)
      assert.are.equal("3.2\n", r.stdout)
    end)

    it("prefers LUA_INIT_5_4", function()
      local r = run("print(X)", nil, { env = { LUA_INIT_5_4 = "X=10", LUA_INIT = "X=3" } })
      assert.are.equal("10\n", r.stdout, r.desc)
    end)

    it("runs a file given as @file", function()
      local f = H.write_file(H.tmpname(".lua"), "x = (x or 10); print(x); x = x + 1")
      local r = run(f, nil, { env = { LUA_INIT = "@" .. f } })
      os.remove(f)
      assert.are.equal("10\n11\n", r.stdout, r.desc)
    end)

    it("stops with the error of LUA_INIT, status 1", function()
      local r = run(nil, nil, { flags = { "-e", "print('not reached')" },
                                env = { LUA_INIT = "error('msg')" } })
      assert.are.equal(1, r.status, r.desc)
      assert.are.equal("", r.stdout)
      assert.truthy(r.stderr:find(PROG .. ": LUA_INIT:1: msg\n", 1, true), r.desc)
    end)

    it("is ignored under -E", function()
      local r = run(nil, nil, { flags = { "-E", "-e", "print(X)" }, env = { LUA_INIT = "X=1" } })
      assert.are.equal("nil\n", r.stdout, r.desc)
    end)
  end)

  describe("package paths", function()
    it("are exactly LUA_PATH / LUA_CPATH, and goluarun's library still loads", function()
      local r = run(nil, nil, {
        flags = { "-e", "print(package.path, package.cpath, type(require('goluarun.repl').run))" },
        env = { LUA_PATH = "x", LUA_CPATH = "y", LUA_INIT = "" } })
      assert.are.equal(0, r.status, r.desc)
      assert.are.equal("x\ty\tfunction\n", r.stdout)
    end)

    it("give require lua's message for a missing module", function()
      local r = run(nil, nil, {
        flags = { "-e", "package.path = '?.lua'; package.cpath = '?.so'; print(select(2, pcall(require, 'XXX')))" } })
      assert.are.equal("module 'XXX' not found:\n\tno field package.preload['XXX']\n"
        .. "\tno file 'XXX.lua'\n\tno file 'XXX.so'\n", r.stdout, r.desc)
    end)
  end)

  describe("arg", function()
    it("is read when the script starts (-e may change it)", function()
      local r = run("-", nil, { flags = { "-e", "arg[1] = 100" }, stdin = "print(...)" })
      assert.are.equal("100\n", r.stdout, r.desc)
    end)

    it("must be a table", function()
      local r = run("-", nil, { flags = { "-e", "arg = 1" }, stdin = "" })
      assert.are.equal(1, r.status, r.desc)
      assert.are.equal(PROG .. ": 'arg' is not a table\n", r.stderr)
    end)

    it("holds the options below the script", function()
      local r = run("print(#arg, arg[-1], arg[-2], ...)", { "a", "b" }, { flags = { "-e ", "--" } })
      assert.are.equal("2\t--\t-e \ta\tb\n", r.stdout, r.desc)
    end)
  end)

  describe("os.exit(code, true)", function()
    it("closes the main chunk's to-be-closed variables, then finalizers", function()
      local r = run([[
        setmetatable({}, {__gc = function() print("gc") end})
        local x <close> = setmetatable({}, {__close = function(_, e) print("Ok", e) end})
        local y <close> = setmetatable({}, {__close = function() print(120) end})
        os.exit(true, true)
      ]])
      assert.are.equal(0, r.status, r.desc)
      assert.are.equal("120\nOk\tnil\ngc\n", r.stdout)
    end)

    it("keeps the status, with no message", function()
      local r = run("os.exit(3, true)")
      assert.are.equal(3, r.status, r.desc)
      assert.are.equal("", r.stderr)
      r = run("os.exit(false, true)")
      assert.are.equal(1, r.status, r.desc)
    end)

    it("from a finalizer of the final close runs the other finalizers first", function()
      local r = run([[
        setmetatable({}, {__gc = function() print(1) end})
        setmetatable({}, {__gc = function() print(2); os.exit(0, true) end})
      ]])
      assert.are.equal(0, r.status, r.desc)
      assert.are.equal("2\n1\n", r.stdout)
    end)

    it("without true closes nothing", function()
      local r = run("local x <close> = setmetatable({}, {__close = function() print('no') end}) os.exit(0)")
      assert.are.equal(0, r.status, r.desc)
      assert.are.equal("", r.stdout)
    end)
  end)

  describe("option errors", function()
    for _, case in ipairs {
      { { "-h" }, "unrecognized option '-h'" },
      { { "---" }, "unrecognized option '---'" },
      { { "-Ex" }, "unrecognized option '-Ex'" },
      { { "-vv" }, "unrecognized option '-vv'" },
      { { "-iv" }, "unrecognized option '-iv'" },
      { { "-e" }, "'-e' needs argument" },
      { { "-l" }, "'-l' needs argument" },
      { { "-e", "-v" }, "'-e' needs argument" },
      { { "-p" }, "'-p' needs argument" },
      { { "-p", "0" }, "bad value for option '-p'" },
      { { "-p", "x" }, "bad value for option '-p'" },
    } do
      it(table.concat(case[1], " ") .. ": " .. case[2], function()
        local r = run(nil, nil, { flags = case[1] })
        assert.are.equal(1, r.status, r.desc)
        assert.are.equal("", r.stdout)
        local first, rest = r.stderr:match("^(.-)\n(.*)$")
        assert.are.equal(PROG .. ": " .. case[2], first, r.desc)
        assert.truthy(rest:find("^usage: ") and rest:find("-p N", 1, true), r.desc)
      end)
    end

    it("a syntax error in -e stops before anything runs after it", function()
      local r = run(nil, nil, { flags = { "-e", "print(1)", "-e", "a" } })
      assert.are.equal(1, r.status, r.desc)
      assert.are.equal("1\n", r.stdout)
      assert.are.equal(PROG .. ": (command line):1: syntax error near <eof>\n", r.stderr)
    end)

    it("-p N and -pN are goluarun's own", function()
      local r = run(nil, nil, { flags = { "-p", "3", "-e", "print(go.nprocs())" } })
      assert.are.equal("3\n", r.stdout, r.desc)
      r = run(nil, nil, { flags = { "-p2", "-e", "print(go.nprocs())" } })
      assert.are.equal("2\n", r.stdout, r.desc)
    end)
  end)

  describe("error reports", function()
    it("an error in -e: lua's text, no frame of the runtime", function()
      local r = run(nil, nil, { flags = { "-e", "error('boom')" } })
      assert.are.equal(1, r.status, r.desc)
      assert.are.equal(PROG .. ": (command line):1: boom\nstack traceback:\n"
        .. "\t[C]: in function 'error'\n\t(command line):1: in main chunk\n\t[C]: in ?\n",
        r.stderr)
    end)

    it("-l with a missing module", function()
      local r = run(nil, nil, { flags = { "-l", "nosuchmod" }, env = { LUA_PATH = "?.lua", LUA_CPATH = "?.so" } })
      assert.are.equal(1, r.status, r.desc)
      assert.are.equal(PROG .. ": module 'nosuchmod' not found:\n"
        .. "\tno field package.preload['nosuchmod']\n\tno file 'nosuchmod.lua'\n"
        .. "\tno file 'nosuchmod.so'\nstack traceback:\n\t[C]: in function 'require'\n\t[C]: in ?\n",
        r.stderr)
    end)

    it("an error object with __tostring, and a table without", function()
      local r = run("error(setmetatable({}, {__tostring = function() return 'six' end}))")
      assert.are.equal(PROG .. ": six\n", r.stderr:match("^[^\n]*\n"), r.desc)
      r = run("error{}")
      assert.truthy(r.stderr:find(PROG .. ": (error object is a table value)", 1, true), r.desc)
    end)
  end)

  describe("-i", function()
    local function repl(input, flags)
      local f = { "-e", "_PROMPT='' _PROMPT2=''" }
      for _, x in ipairs(flags or {}) do f[#f + 1] = x end
      f[#f + 1] = "-i"
      return run(nil, nil, { flags = f, stdin = input })
    end

    it("prints expressions, reads continuation lines, =expr", function()
      local r = repl("(6*2-6) -- ===\na =\n10\nprint(a)\n=a, 1\nreturn a + 1\n")
      assert.are.equal(0, r.status, r.desc)
      -- the version line (-i implies -v), each line echoed as readline does
      -- when stdin is no terminal, then the results; a newline at the end
      local body = r.stdout:gsub("^goluarun [^\n]*PUC%-Rio\n", "")
      assert.are.equal("(6*2-6) -- ===\n6\na =\n10\nprint(a)\n10\n=a, 1\n10\t1\n"
        .. "return a + 1\n11\n\n", body)
    end)

    it("shows the prompts: _PROMPT, _PROMPT2 (with __tostring) and lua's defaults", function()
      local r = run(nil, nil, { flags = { "-i" }, stdin = "x = \n1\n" })
      assert.truthy(r.stdout:find("> x = \n>> 1\n> \n", 1, true), r.desc)
      r = run(nil, nil, { flags = { "-e", "local C = 0; _PROMPT = setmetatable({}, "
        .. "{__tostring = function() C = C + 1; return C end})", "-i" }, stdin = " --\na = 2\n" })
      assert.truthy(r.stdout:find("1 --\n2a = 2\n3\n", 1, true), r.desc)
    end)

    it("reports errors without a prefix and goes on", function()
      local r = repl("error('x')\nfor\nprint(7)\nprint(8)\n")
      assert.are.equal(0, r.status, r.desc)
      assert.truthy(r.stdout:find("print(8)\n8\n", 1, true), r.desc)
      assert.are.equal("stdin:1: x\nstack traceback:\n\t[C]: in function 'error'\n"
        .. "\tstdin:1: in main chunk\n\t[C]: in ?\nstdin:2: '=' or 'in' expected near '('\n",
        r.stderr)
    end)

    it("blocking calls work at the prompt (main goroutine)", function()
      local r = repl("ch = go.chan()\ngo(function() go.sleep(0.02); ch:send(5) end)\n=ch:recv()\n"
        .. "go.sleep(0.01)\n=go.id()\n")
      assert.are.equal(0, r.status, r.desc)
      assert.truthy(r.stdout:find("=ch:recv()\n5\ttrue\n", 1, true), r.desc)
      assert.truthy(r.stdout:find("=go.id()\n1\n", 1, true), r.desc)
    end)

    it("a failing print is reported", function()
      local r = run(nil, nil, { flags = { "-e", "print=nil", "-i" }, stdin = "10\n" })
      assert.are.equal(0, r.status, r.desc)
      assert.truthy(r.stderr:find("error calling 'print' (attempt to call a nil value)", 1, true),
        r.desc)
    end)

    it("runs after the script, with its globals", function()
      local r = run("x = 41", nil, { flags = { "-e", "_PROMPT=''", "-i" }, stdin = "=x + 1\n" })
      assert.truthy(r.stdout:find("\n42\n", 1, true), r.desc)
    end)
  end)

  it("-v prints lua's copyright line too", function()
    local r = run(nil, nil, { flags = { "-v", "-e", "print'hello'" } })
    assert.are.equal(0, r.status, r.desc)
    assert.truthy(r.stdout:find("^goluarun .*PUC%-Rio\nhello\n$"), r.desc)
  end)
end)
