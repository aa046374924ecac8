-- resp: the v1 name of goluarun.resp (an alias for one release; API.md v2)
return require "goluarun.resp"
