-- PUT of new 16 KiB files: each request a distinct path and distinct content
-- (a per-request name in the first 32 bytes, so no server can deduplicate).
-- BENCH_MANIFEST: a file to which `done` appends "<run> <thread> <count>" per thread, so that
-- get.lua can read back everything this run wrote.
package.path = (os.getenv("BENCH_LUA_DIR") or ".") .. "/?.lua;" .. package.path
local c = require("common")
local size = tonumber(os.getenv("BENCH_PUT_SIZE") or "16384")
local run = os.getenv("BENCH_RUN_ID") or "r"

local nthreads = 0
local threads = {}
function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
  table.insert(threads, thread)
end

counter = 0
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

function done(summary, latency, requests)
  local path = os.getenv("BENCH_MANIFEST")
  if path and path ~= "" then
    local f = assert(io.open(path, "a"))
    for _, t in ipairs(threads) do
      f:write(string.format("%s %d %d\n", run, t:get("tid"), t:get("counter")))
    end
    f:close()
  end
  c.done(summary, latency, requests)
end
