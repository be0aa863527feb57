-- PUT of new 16 KiB files: each request a distinct path and distinct content
-- (a per-request name in the first 32 bytes, so no server can deduplicate).
package.path = (os.getenv("BENCH_LUA_DIR") or ".") .. "/?.lua;" .. package.path
local c = require("common")
local size = tonumber(os.getenv("BENCH_PUT_SIZE") or "16384")
local run = os.getenv("BENCH_RUN_ID") or "r"

local nthreads = 0
function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
end

local counter = 0
local tail
local headers

function init(args)
  math.randomseed(1000 + (tid or 0))
  local t = {}
  for i = 1, size - 32 do t[i] = string.char(math.random(0, 255)) end
  tail = table.concat(t)
  headers = c.headers({ ["Content-Type"] = "application/octet-stream" })
end

function request()
  counter = counter + 1
  local name = string.format("%s-t%d-%d", run, tid or 0, counter)
  local body = string.format("%-32s", name) .. tail
  return wrk.format("PUT", c.prefix .. "/put/" .. name .. ".bin", headers, body)
end

done = c.done
