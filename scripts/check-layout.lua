-- check-layout.lua: the source layout rules of runtime/HACKING.md, checked.
--
--   lua5.4 scripts/check-layout.lua [ROOT]      check the tree at ROOT (default: ..)
--   lua5.4 scripts/check-layout.lua --selftest  check a broken fixture tree
--
-- Every .c/.h under runtime/ and bindings/ has a floor (FLOORS below). A
-- file may include (#include "...") only headers of its own floor or lower;
-- runtime/ includes nothing from bindings/; the modules of bindings/ (x.c
-- with x.h is one module) include each other without a cycle, so no two of
-- them call each other either; and a `glr_` name is defined only if
-- bindings/goluarun.h, the public header, declares it (internals use a
-- subsystem prefix). Prints one "file:line: what" per violation and exits 1
-- if there is any.

local FLOORS = {
  [0] = { "runtime/*" },
  [1] = { "bindings/goluarun.h", "bindings/glr_api.c", "bindings/args.h", "bindings/classes.*",
          "bindings/netaddr.*", "bindings/vcopy.*", "bindings/errstr.h", "bindings/tlswire.h" },
  [2] = { "bindings/conn.*", "bindings/gohandle.*", "bindings/tls.*" },
  [3] = { "bindings/lnet.*", "bindings/ludp.*", "bindings/lchan.*", "bindings/lschan.*",
          "bindings/lspawn.*", "bindings/lexec.*", "bindings/lsignal.*", "bindings/lookup.*",
          "bindings/lstdio.*", "bindings/lcoro.*", "bindings/ldbhook.*",
          "bindings/lshared.*", "bindings/lcodec.*", "bindings/lhttp.*", "bindings/lhttpread.*", "bindings/lresp.*",
          "bindings/lpool.*", "bindings/lprof.*", "bindings/lgroup.*" },
  [4] = { "bindings/lgo.*", "bindings/main.c" },
}
local PUBLIC_HEADER = "bindings/goluarun.h"

local function floor_of(path)
  for f = 0, 4 do
    for _, glob in ipairs(FLOORS[f]) do
      local pat = "^" .. glob:gsub("[%.%-]", "%%%0"):gsub("%*", "[^/]*") .. "$"
      if path:match(pat) then return f end
    end
  end
end

local function read(path)
  local fh = io.open(path, "rb")
  if not fh then return nil end
  local s = fh:read("a")
  fh:close()
  return s
end

local function sources(root)
  local list = {}
  local p = io.popen("cd '" .. root .. "' && find runtime bindings -type f \\( -name '*.c' -o -name '*.h' \\) | sort")
  for line in p:lines() do list[#list + 1] = line end
  p:close()
  return list
end

-- normalize "bindings/../runtime/x.h" -> "runtime/x.h"
local function normalize(path)
  local parts = {}
  for part in path:gmatch("[^/]+") do
    if part == ".." then table.remove(parts)
    elseif part ~= "." then parts[#parts + 1] = part end
  end
  return table.concat(parts, "/")
end

-- resolve an #include "name" of file as the compiler does: the file's own
-- directory first, then bindings/ (the executable's -I)
local function resolve(root, file, name)
  local rel = normalize(file:match("^(.*)/") .. "/" .. name)
  if read(root .. "/" .. rel) or not read(root .. "/bindings/" .. name) then return rel end
  return normalize("bindings/" .. name)
end

local function stem(path) return (path:gsub("%.[ch]$", "")) end

-- text with comments, strings and preprocessor lines blanked (newlines kept)
local function code_only(src)
  local out, i, n = {}, 1, #src
  while i <= n do
    local c, j = src:sub(i, i), nil
    if src:sub(i, i + 1) == "/*" then
      j = (src:find("*/", i + 2, true) or n) + 1
    elseif src:sub(i, i + 1) == "//" then
      j = (src:find("\n", i, true) or n + 1) - 1
    elseif c == '"' or c == "'" then
      j = i + 1
      while j <= n and not src:sub(j, j):match("[\n" .. c .. "]") do
        j = j + (src:sub(j, j) == "\\" and 2 or 1)
      end
    end
    out[#out + 1] = j and src:sub(i, j):gsub("[^\n]", " ") or c
    i = (j or i) + 1
  end
  local lines, directive = {}, false
  for line in (table.concat(out) .. "\n"):gmatch("([^\n]*)\n") do
    if directive or line:match("^%s*#") then
      directive = line:match("\\%s*$") ~= nil
      line = ""
    end
    lines[#lines + 1] = line
  end
  return table.concat(lines, "\n")
end

local function line_at(src, pos)
  local _, n = src:sub(1, pos):gsub("\n", "")
  return n + 1
end

-- glr_ names defined (functions or variables) at file scope of src
local function glr_definitions(src)
  local code, defs, depth, start = code_only(src), {}, 0, 1
  for pos = 1, #code do
    local c = code:sub(pos, pos)
    if depth == 0 and (c == "{" or c == ";") then
      local stmt = code:sub(start, pos - 1)
      local name, at
      if not stmt:match("%f[%w_]typedef%f[^%w_]") and not stmt:match("%f[%w_]extern%f[^%w_]") then
        stmt = stmt:gsub("__attribute__%s*%b()", function(a) return (a:gsub(".", " ")) end)
        if c == "{" and not stmt:find("=") then -- a function body (not an initializer)
          at, name = stmt:match("^[^%(]-()%f[%w_]([%w_]+)%s*%(")
          if name and not name:match("^glr_") then name = nil end
        elseif not stmt:find("^[^=]*%(") then -- a variable (not a prototype)
          at, name = stmt:match("()%f[%w_](glr_[%w_]*)%s*[=%[]")
          if not name then at, name = stmt:match("()%f[%w_](glr_[%w_]*)%s*$") end
        end
      end
      if name then defs[#defs + 1] = { name = name, line = line_at(code, start + at - 1) } end
    end
    if c == "{" then depth = depth + 1 elseif c == "}" then depth = depth - 1 end
    if depth == 0 and (c == "{" or c == "}" or c == ";") then start = pos + 1 end
  end
  return defs
end

-- the first cycle in graph (module -> {module = where}), as a list of modules
local function find_cycle(graph)
  local state, stack = {}, {}
  local function visit(m)
    state[m] = "open"
    stack[#stack + 1] = m
    local targets = {}
    for t in pairs(graph[m] or {}) do targets[#targets + 1] = t end
    table.sort(targets)
    for _, t in ipairs(targets) do
      if state[t] == "open" then
        local cyc, on = {}, false
        for _, s in ipairs(stack) do
          if s == t then on = true end
          if on then cyc[#cyc + 1] = s end
        end
        cyc[#cyc + 1] = t
        return cyc
      elseif not state[t] then
        local cyc = visit(t)
        if cyc then return cyc end
      end
    end
    stack[#stack] = nil
    state[m] = "done"
  end
  local mods = {}
  for m in pairs(graph) do mods[#mods + 1] = m end
  table.sort(mods)
  for _, m in ipairs(mods) do
    if not state[m] then
      local cyc = visit(m)
      if cyc then return cyc end
    end
  end
end

-- check(root) -> list of "file:line: what"
local function check(root)
  local out, graph = {}, {}
  local function report(file, line, fmt, ...)
    out[#out + 1] = string.format("%s:%d: " .. fmt, file, line, ...)
  end
  local public = {}
  for name in (read(root .. "/" .. PUBLIC_HEADER) or ""):gmatch("glr_[%w_]+") do
    public[name] = true
  end
  for _, file in ipairs(sources(root)) do
    local src, floor = read(root .. "/" .. file), floor_of(file)
    if not floor then report(file, 1, "not in the floor table of scripts/check-layout.lua") end
    local n = 0
    for line in (src .. "\n"):gmatch("([^\n]*)\n") do
      n = n + 1
      local name = line:match('^%s*#%s*include%s*"([^"]+)"')
      local target = name and resolve(root, file, name)
      local tfloor = target and floor_of(target)
      if target and file:match("^runtime/") and target:match("^bindings/") then
        report(file, n, "runtime includes %s", target)
      elseif floor and tfloor and tfloor > floor then
        report(file, n, "includes %s (floor %d) from floor %d", target, tfloor, floor)
      end
      if target and file:match("^bindings/") and target:match("^bindings/")
          and stem(target) ~= stem(file) then
        graph[stem(file)] = graph[stem(file)] or {}
        graph[stem(file)][stem(target)] = graph[stem(file)][stem(target)]
          or string.format("%s:%d", file, n)
      end
    end
    if file:match("%.c$") then
      for _, d in ipairs(glr_definitions(src)) do
        if not public[d.name] then
          report(file, d.line, "%s is defined but not declared in %s (internal names "
            .. "take a subsystem prefix)", d.name, PUBLIC_HEADER)
        end
      end
    end
  end
  local cyc = find_cycle(graph)
  if cyc then
    out[#out + 1] = string.format("%s: include cycle: %s", graph[cyc[1]][cyc[2]],
                                  table.concat(cyc, " -> "))
  end
  return out
end

-- ---------- self-test: a fixture tree with one violation of each kind ----------

local FIXTURE = {
  ["runtime/core.h"] = "int core_x(void);\n",
  ["runtime/core.c"] = '#include "core.h"\n#include "../bindings/goluarun.h"\nint core_x(void) { return 0; }\n',
  ["bindings/goluarun.h"] = "int glr_public(void);\n",
  ["bindings/glr_api.c"] = '#include "goluarun.h"\n#include "gohandle.h"\n'
    .. "/* glr_comment(void) { */\nint glr_public(void) { return 1; }\n"
    .. "static const char *s = \"glr_str(x) {\";\n"
    .. "int\nglr_stray(int a,\n          int b) {\n  return a + b;\n}\nint glr_var = 3;\n",
  ["bindings/gohandle.h"] = '#include "lspawn.h"\n',
  ["bindings/gohandle.c"] = '#include "gohandle.h"\n',
  ["bindings/lspawn.h"] = '#include "goluarun.h"\n',
  ["bindings/lspawn.c"] = '#include "lspawn.h"\n#include "gohandle.h"\n',
  ["bindings/stray.c"] = '#include "goluarun.h"\n',
}
local EXPECT = {
  "runtime/core.c:2: runtime includes bindings/goluarun.h",
  "bindings/glr_api.c:2: includes bindings/gohandle.h (floor 2) from floor 1",
  "bindings/gohandle.h:1: includes bindings/lspawn.h (floor 3) from floor 2",
  "bindings/glr_api.c:7: glr_stray is defined but not declared in bindings/goluarun.h",
  "bindings/glr_api.c:11: glr_var is defined but not declared in bindings/goluarun.h",
  "bindings/stray.c:1: not in the floor table",
  "bindings/gohandle.h:1: include cycle: bindings/gohandle -> bindings/lspawn -> bindings/gohandle",
}

local function selftest()
  local tmp = io.popen("mktemp -d"):read("l")
  for path, text in pairs(FIXTURE) do
    os.execute("mkdir -p '" .. tmp .. "/" .. path:match("^(.*)/") .. "'")
    local fh = assert(io.open(tmp .. "/" .. path, "wb"))
    fh:write(text)
    fh:close()
  end
  local got, failed = check(tmp), false
  os.execute("rm -rf '" .. tmp .. "'")
  for _, want in ipairs(EXPECT) do
    local found = false
    for _, g in ipairs(got) do
      if g:sub(1, #want) == want then found = true end
    end
    if not found then print("selftest: missing: " .. want); failed = true end
  end
  if #got ~= #EXPECT then
    print(string.format("selftest: %d violations, want %d:", #got, #EXPECT))
    for _, g in ipairs(got) do print("  " .. g) end
    failed = true
  end
  print(failed and "selftest: FAILED" or "selftest: ok")
  return not failed
end

if arg[1] == "--selftest" then os.exit(selftest() and 0 or 1) end
local root = arg[1] or ((arg[0]:match("^(.*)/") or ".") .. "/..")
local violations = check(root)
for _, v in ipairs(violations) do print(v) end
print(string.format("layout: %d violation(s)", #violations))
os.exit(#violations == 0 and 0 or 1)
