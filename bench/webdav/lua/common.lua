-- Shared by the wrk scripts of bench/webdav: environment, auth header, one-line result.
-- BENCH_PREFIX: URL path of the server's root collection (no trailing slash), e.g. /dav/bench/u
-- BENCH_AUTH:   value of the Authorization header, or empty for none
local M = {}
M.prefix = os.getenv("BENCH_PREFIX") or ""
M.auth = os.getenv("BENCH_AUTH") or ""
M.nfiles = tonumber(os.getenv("BENCH_NFILES") or "1000")

function M.headers(extra)
  local h = {}
  if M.auth ~= "" then h["Authorization"] = M.auth end
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end

-- Machine-readable summary line parsed by run.sh (latencies in microseconds).
function M.done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d bytes=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
    "non2xx=%d err_connect=%d err_read=%d err_write=%d err_timeout=%d\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.status, e.connect, e.read, e.write, e.timeout))
end

return M
