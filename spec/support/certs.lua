-- certs.lua — throw-away PKI for the TLS specs and benchmarks, made with
-- the `openssl` command (never committed keys).
--
--   local certs = require "support.certs"
--   local pki = certs.make{ key = "ec" }      -- or key = "rsa" (2048 bits)
--   pki.ca            CA certificate (PEM path), pki.ca_key its key
--   pki.cert, pki.key server certificate for localhost, 127.0.0.1 and ::1
--   pki.client_cert, pki.client_key   a client certificate (CN=client)
--   pki.other_cert, pki.other_key     server certificate for
--                                     other.test and *.other.test (SNI)
--   pki.expired_cert, pki.expired_key a localhost certificate that expired
--                                     in 2020
--   pki.rogue_ca, pki.rogue_cert, pki.rogue_key  a second, unknown CA and a
--                                     localhost certificate it signed
--   pki.dir           the folder holding all of them
--   pki:cleanup()     removes the folder
--
-- certs.make raises with openssl's output if a step fails. Each call makes a
-- new folder; files are PEM.
local M = {}

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function run(cmd)
  local out = os.tmpname()
  local ok = os.execute("(" .. cmd .. ") >" .. q(out) .. " 2>&1 </dev/null")
  local f = io.open(out, "rb")
  local text = f and f:read("a") or ""
  if f then f:close() end
  os.remove(out)
  if not ok then error("certs: command failed: " .. cmd .. "\n" .. text, 0) end
  return text
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

local function keygen(path, kind)
  if kind == "rsa" then
    run("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out " .. q(path))
  else
    run("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " .. q(path))
  end
  return path
end

local function make_ca(dir, name, kind)
  local key = keygen(dir .. "/" .. name .. ".key", kind)
  local crt = dir .. "/" .. name .. ".pem"
  run("openssl req -x509 -new -key " .. q(key) .. " -out " .. q(crt) .. " -days 3650"
    .. " -subj " .. q("/CN=goluarun test " .. name)
    .. " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign")
  return crt, key
end

-- a leaf signed by ca; sans like "DNS:localhost,IP:127.0.0.1"; eku
-- "serverAuth" or "clientAuth"; dates {start, end} as YYYYMMDDHHMMSSZ
local function make_leaf(dir, name, kind, cn, sans, eku, ca, ca_key, dates)
  local key = keygen(dir .. "/" .. name .. ".key", kind)
  local csr = dir .. "/" .. name .. ".csr"
  local crt = dir .. "/" .. name .. ".pem"
  run("openssl req -new -key " .. q(key) .. " -out " .. q(csr) .. " -subj " .. q("/CN=" .. cn))
  local ext = write(dir .. "/" .. name .. ".ext", table.concat({
    "basicConstraints=CA:FALSE",
    "keyUsage=critical,digitalSignature,keyEncipherment",
    "extendedKeyUsage=" .. eku,
    sans and ("subjectAltName=" .. sans) or nil,
  }, "\n") .. "\n")
  if dates then
    -- openssl x509 -req cannot set dates in the past: use `openssl ca`
    local db = dir .. "/" .. name .. ".db"
    write(db, "")
    local cnf = write(dir .. "/" .. name .. ".cnf", table.concat({
      "[ca]", "default_ca = c",
      "[c]", "database = " .. db, "new_certs_dir = " .. dir,
      "serial = " .. write(dir .. "/" .. name .. ".srl", "01\n"),
      "default_md = sha256", "policy = p", "unique_subject = no",
      "copy_extensions = none",
      "[p]", "commonName = supplied",
    }, "\n") .. "\n")
    run("openssl ca -batch -notext -config " .. q(cnf) .. " -cert " .. q(ca) .. " -keyfile "
      .. q(ca_key) .. " -in " .. q(csr) .. " -out " .. q(crt) .. " -startdate " .. dates[1]
      .. " -enddate " .. dates[2] .. " -extfile " .. q(ext))
  else
    run("openssl x509 -req -in " .. q(csr) .. " -CA " .. q(ca) .. " -CAkey " .. q(ca_key)
      .. " -CAcreateserial -out " .. q(crt) .. " -days 825 -sha256 -extfile " .. q(ext))
  end
  return crt, key
end

local LOCAL_SANS = "DNS:localhost,IP:127.0.0.1,IP:::1"

function M.make(opts)
  opts = opts or {}
  local kind = opts.key or "ec"
  local dir = os.tmpname()
  os.remove(dir)
  run("mkdir -p " .. q(dir))
  local pki = { dir = dir, kind = kind }
  pki.ca, pki.ca_key = make_ca(dir, "ca", kind)
  pki.cert, pki.key = make_leaf(dir, "server", kind, "localhost", LOCAL_SANS, "serverAuth",
    pki.ca, pki.ca_key)
  pki.client_cert, pki.client_key = make_leaf(dir, "client", kind, "client", nil,
    "clientAuth", pki.ca, pki.ca_key)
  pki.other_cert, pki.other_key = make_leaf(dir, "other", kind, "other.test",
    "DNS:other.test,DNS:*.other.test", "serverAuth", pki.ca, pki.ca_key)
  pki.expired_cert, pki.expired_key = make_leaf(dir, "expired", kind, "localhost", LOCAL_SANS,
    "serverAuth", pki.ca, pki.ca_key, { "20200101000000Z", "20200102000000Z" })
  pki.rogue_ca, pki.rogue_ca_key = make_ca(dir, "rogue-ca", kind)
  pki.rogue_cert, pki.rogue_key = make_leaf(dir, "rogue", kind, "localhost", LOCAL_SANS,
    "serverAuth", pki.rogue_ca, pki.rogue_ca_key)
  function pki.cleanup() os.execute("rm -rf " .. q(dir)) end
  return pki
end

return M
