-- GET of the prepared 16 KiB files /bench/f0000.bin .. f0999.bin, cycling; threads start apart.
package.path = (os.getenv("BENCH_LUA_DIR") or ".") .. "/?.lua;" .. package.path
local c = require("common")

local nthreads = 0
function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
end

local i = 0
local headers
function init(args)
  i = ((tid or 1) - 1) * 500
  headers = c.headers()
end

function request()
  i = (i + 1) % c.nfiles
  return wrk.format("GET", string.format("%s/bench/f%04d.bin", c.prefix, i), headers)
end

done = c.done
