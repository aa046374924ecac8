-- goluarun.repl: the interactive prompt of `goluarun -i` (and of `goluarun`
-- on a terminal), as lua.c's: `_PROMPT` / `_PROMPT2` (default "> " / ">> "),
-- a line is first tried as an expression (`return line`) whose values are
-- printed with the global `print`, then as a statement, reading `>>` lines
-- while the chunk is incomplete; `=expr` is `return expr`; errors go to
-- stderr with their traceback, without a prefix. It runs in the main
-- goroutine, so blocking calls (channels, go.sleep, conns) work at the prompt
-- and other goroutines run while it waits for a line.
--
-- API:
--   repl.run([echo])  -- read, evaluate, print until the end of stdin, then
--                     -- a newline; echo: write each line read after its
--                     -- prompt (what readline does when stdin is no terminal)

local M = {}

local G = _ENV -- the globals: print and the prompts are looked up at each use

local function prompt(first)
  local p = G[first and "_PROMPT" or "_PROMPT2"]
  if p == nil then return first and "> " or ">> " end
  return tostring(p)
end

local echo = false

local function readline(first)
  io.stdout:write(prompt(first))
  io.stdout:flush()
  local line = io.stdin:read("l")
  if line and echo then io.stdout:write(line, "\n") end
  return line
end

local function incomplete(err)
  return err:sub(-5) == "<eof>"
end

-- read_chunk: the next command, compiled; nil at the end of input
local function read_chunk()
  local line = readline(true)
  if not line then return nil end
  if line:sub(1, 1) == "=" then line = "return " .. line:sub(2) end
  local fn = load("return " .. line, "=stdin")
  if fn then return fn end
  while true do
    local f, err = load(line, "=stdin")
    if f or not incomplete(err) then return f, err end
    local more = readline(false)
    if not more then return f, err end
    line = line .. "\n" .. more
  end
end

-- traceback: lua's message handler, ending where the prompt called the chunk
local function traceback(msg)
  if type(msg) ~= "string" then
    local mt = getmetatable(msg)
    if mt and mt.__tostring then msg = tostring(msg)
    else msg = "(error object is a " .. type(msg) .. " value)" end
  end
  local tb = debug.traceback(msg, 2)
  local cut = tb:find("\n\t[C]: in function 'xpcall'", 1, true)
  return cut and tb:sub(1, cut - 1) .. "\n\t[C]: in ?" or tb
end

local function print_results(n, ...)
  if n == 0 then return end
  local ok, err = pcall(G.print, ...)
  if not ok then
    io.stderr:write("error calling 'print' (", tostring(err), ")\n")
  end
end

local function eval(fn)
  local function run(ok, ...)
    if ok then return print_results(select("#", ...), ...) end
    io.stderr:write((...), "\n")
  end
  run(xpcall(fn, traceback))
end

function M.run(echo_lines)
  echo = echo_lines and true or false
  while true do
    local fn, err = read_chunk()
    if fn then eval(fn)
    elseif err then io.stderr:write(err, "\n")
    else break end
  end
  io.stdout:write("\n")
  io.stdout:flush()
end

return M
