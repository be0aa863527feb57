-- GET of 16 KiB files. Without BENCH_MANIFEST: the prepared /bench/f0000.bin .. f0999.bin,
-- cycling. With BENCH_MANIFEST (written by put.lua): everything the PUT runs wrote, in a
-- scattered order (a stride through all of them), each thread starting at its own share, so
-- that a run reads no file twice before it has read them all. The last BENCH_INFLIGHT names of
-- each PUT thread (its connections' requests cut off when its run ended) are left out.
package.path = (os.getenv("BENCH_LUA_DIR") or ".") .. "/?.lua;" .. package.path
local c = require("common")

local nthreads = 0
function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
  thread:set("nthreads", nthreads)
end

local i = 0
local headers
local parts -- { run, tid, count } from the manifest
local total = 0
local stride = 1

local function gcd(a, b)
  while b ~= 0 do a, b = b, a % b end
  return a
end

function init(args)
  headers = c.headers()
  local path = os.getenv("BENCH_MANIFEST")
  if path and path ~= "" then
    local inflight = tonumber(os.getenv("BENCH_INFLIGHT") or "0")
    parts = {}
    for line in io.lines(path) do
      local run, t, n = line:match("^(%S+) (%d+) (%d+)$")
      n = tonumber(n or "0") - inflight
      if run and n > 0 then
        table.insert(parts, { run, tonumber(t), n })
        total = total + n
      end
    end
    stride = 7919
    while total > 0 and gcd(stride, total) ~= 1 do stride = stride + 2 end
    -- threads start evenly apart in the sequence (nthreads is 2 by default)
    local nth = tonumber(os.getenv("BENCH_THREADS") or "2")
    i = math.floor(((tid or 1) - 1) * total / nth)
  else
    i = ((tid or 1) - 1) * 500
  end
end

local function name_of(k) -- k in 0 .. total-1
  for _, p in ipairs(parts) do
    if k < p[3] then return string.format("%s-t%d-%d", p[1], p[2], k + 1) end
    k = k - p[3]
  end
end

function request()
  if parts and total > 0 then
    local k = (i * stride) % total
    i = i + 1
    return wrk.format("GET", string.format("%s/put/%s.bin", c.prefix, name_of(k)), headers)
  end
  i = (i + 1) % c.nfiles
  return wrk.format("GET", string.format("%s/bench/f%04d.bin", c.prefix, i), headers)
end

done = c.done
