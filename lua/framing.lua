-- framing: the v1 name of goluarun.framing (an alias for one release; API.md v2)
return require "goluarun.framing"
