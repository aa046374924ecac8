-- gateway.example.lua: the configuration of scripts/gateway.lua, a Lua
-- table (loaded with no globals). Every field but routes and upstreams is
-- optional; the values below are the defaults where there is one.
--   goluarun -p 1 scripts/gateway.lua scripts/gateway.example.lua
return {
  listen = "127.0.0.1:8080",
  -- tls = { cert = "server.pem", key = "server.key" },  -- HTTPS termination
  timeout = 30,          -- seconds per request until the upstream's answer head: 504
  body_timeout = 60,     -- seconds each read of an answer's body may take
  fail_timeout = 10,     -- seconds a server that refused a connection is skipped
  buffer_body = 65536,   -- bodies up to this size are buffered (Content-Length kept)
  pool = { max_idle = 128, idle_timeout = 60 },  -- net.pool options
  -- max_body, idle_timeout, header_timeout, reuseport: goluarun.http's serve options

  routes = {                                     -- first matching prefix wins
    { prefix = "/api/", upstream = "api", strip = true, timeout = 5 },  -- /api/x -> /x
    { prefix = "/", upstream = "web" },
  },
  upstreams = {
    api = { "127.0.0.1:9001", "127.0.0.1:9002" },           -- round-robin
    web = { servers = { "127.0.0.1:9003" } },
    -- secure = { servers = { "example.org:443" }, tls = true },  -- HTTPS upstreams
  },
}
