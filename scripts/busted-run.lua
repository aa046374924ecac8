-- busted-run.lua — run busted inside goluarun and end the process when the
-- suite is done, like a test binary: a spec may legitimately leave a
-- goroutine parked on a timer, which would otherwise keep the process alive
-- (runtime/HACKING.md, "Progress, exit and deadlock"). Usage: goluarun scripts/busted-run.lua [busted args]
require("busted.runner")({ standalone = false })
os.exit(0, true) -- reached only when every test passed
