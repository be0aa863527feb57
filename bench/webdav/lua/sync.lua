-- A sync client's "did anything change?" asked the RFC 6578 way: REPORT sync-collection on the
-- 1000-file folder with the current token (BENCH_SYNC_TOKEN), which finds no changes.
package.path = (os.getenv("BENCH_LUA_DIR") or ".") .. "/?.lua;" .. package.path
local c = require("common")

wrk.method = "REPORT"
wrk.path = c.prefix .. (os.getenv("BENCH_TARGET") or "/bench/")
wrk.headers = c.headers({
  ["Depth"] = "0",
  ["Content-Type"] = "application/xml; charset=utf-8",
})
wrk.body = [[<?xml version="1.0" encoding="utf-8"?>
<d:sync-collection xmlns:d="DAV:"><d:sync-token>]] .. (os.getenv("BENCH_SYNC_TOKEN") or "") ..
  [[</d:sync-token><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>]]

done = c.done
