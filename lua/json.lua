-- json: the v1 name of goluarun.json (an alias for one release; API.md v2)
return require "goluarun.json"
