-- http: the v1 name of goluarun.http (an alias for one release; API.md v2)
return require "goluarun.http"
