-- libnames_spec: the library modules live under goluarun. (docs/API.md, "Library modules"); the
-- v1 top-level names stay as aliases for one release and give the same table.

describe("library module names", function()
  for _, name in ipairs { "http", "resp", "json", "framing" } do
    it("require '" .. name .. "' is require 'goluarun." .. name .. "'", function()
      local new = require("goluarun." .. name)
      assert.is_table(new)
      assert.are.equal(new, require(name))
      assert.are.equal(new, package.loaded[name])
      assert.are.equal(new, package.loaded["goluarun." .. name])
    end)
  end

  it("finds the modules in lua/goluarun/ (its own searcher, last)", function()
    local own = package.searchers[#package.searchers]
    for _, name in ipairs { "http", "resp", "json", "framing", "serve", "repl" } do
      local loader, path = own("goluarun." .. name)
      assert.is_function(loader)
      assert.is_string(path)
      assert.truthy(path:find("lua/goluarun/" .. name .. ".lua", 1, true), path)
    end
  end)
end)
