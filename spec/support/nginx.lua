-- support.nginx: a real nginx (Debian package nginx) for the HTTP client
-- and gateway specs, started by the spec on free loopback ports with a
-- config written into a temp dir, in the foreground (daemon off, one
-- worker), and stopped by its PID.
--
--   local N = require "support.nginx"
--   local ngx = N.start({ servers = { "location / { }", ... }, files = { ["a.txt"] = "..." } })
--   ngx.ports[i]        the port of the i-th server block
--   ngx.root            its document root (the files are written there)
--   ngx:log()           the access log: "$connection $connection_requests
--                       $request_method $uri $status" per line
--   ngx:stop()          TERM by PID (then KILL), removes the temp dir
local net = require "net"
local H = require "support.helpers"
local P = require "support.tlspeers"

local M = {}
local q = H.shquote

local Nginx = {}
Nginx.__index = Nginx

function Nginx:log() return H.read_file(self.dir .. "/access.log") or "" end

function Nginx:stop()
  if self.proc then self.proc:stop() end
  self.proc = nil
  os.execute("rm -rf " .. q(self.dir))
end

--- Starts nginx: opts.servers is a list of server-block bodies (without
--- `listen`), opts.files maps names to contents written under the root.
function M.start(opts)
  H.require_tool("nginx", "nginx")
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. q(dir .. "/www") .. " " .. q(dir .. "/tmp")))
  local self = setmetatable({ dir = dir, root = dir .. "/www", ports = {} }, Nginx)
  for name, data in pairs(opts.files or {}) do H.write_file(self.root .. "/" .. name, data) end
  local blocks = {}
  for i, body in ipairs(opts.servers) do
    self.ports[i] = H.free_port()
    blocks[i] = ("  server {\n    listen 127.0.0.1:%d;\n    root %s;\n%s\n  }\n")
      :format(self.ports[i], self.root, body)
  end
  local user = H.sh("id -u"):match("^0") and "user root root;\n" or ""
  local conf = user .. ([[
worker_processes 1;
daemon off;
pid DIR/nginx.pid;
error_log DIR/error.log;
events { worker_connections 1024; }
http {
  log_format conns '$connection $connection_requests $request_method $uri $status';
  access_log DIR/access.log conns;
  client_body_temp_path DIR/tmp/body;
  proxy_temp_path DIR/tmp/proxy;
  fastcgi_temp_path DIR/tmp/fastcgi;
  uwsgi_temp_path DIR/tmp/uwsgi;
  scgi_temp_path DIR/tmp/scgi;
  keepalive_requests 100000;
  client_max_body_size 0;
  default_type application/octet-stream;
]]):gsub("DIR", dir) .. (opts.http or "") .. table.concat(blocks) .. "}\n"
  H.write_file(dir .. "/nginx.conf", conf)
  self.proc = P.start("nginx -p " .. q(dir) .. " -c " .. q(dir .. "/nginx.conf"), opts.limit or 280)
  for _, port in ipairs(self.ports) do
    local ok = H.wait_until(function()
      local c = net.dial("127.0.0.1:" .. port, 1)
      if c then c:close() return true end
      return not self.proc:alive()
    end, 10)
    if not ok or not self.proc:alive() then
      local out = self.proc:output() .. (H.read_file(dir .. "/error.log") or "")
      self:stop()
      error("nginx did not start:\n" .. out, 2)
    end
  end
  return self
end

return M
