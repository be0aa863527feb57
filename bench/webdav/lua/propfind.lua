-- PROPFIND with the properties a sync client asks for. BENCH_DEPTH: 0 or 1;
-- BENCH_TARGET: path below the root, e.g. /bench/ (1000 files) or /bench/f0000.bin;
-- BENCH_BODY=oc: the properties the Nextcloud/ownCloud clients poll with.
package.path = (os.getenv("BENCH_LUA_DIR") or ".") .. "/?.lua;" .. package.path
local c = require("common")

wrk.method = "PROPFIND"
wrk.path = c.prefix .. (os.getenv("BENCH_TARGET") or "/bench/")
wrk.headers = c.headers({
  ["Depth"] = os.getenv("BENCH_DEPTH") or "1",
  ["Content-Type"] = "application/xml; charset=utf-8",
})
if os.getenv("BENCH_BODY") == "oc" then
  -- What the Nextcloud desktop client sends when it polls its root (3.x).
  wrk.body = [[<?xml version="1.0" encoding="utf-8"?>
<d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns" xmlns:nc="http://nextcloud.org/ns"><d:prop><d:getlastmodified/><d:getetag/><d:resourcetype/><oc:id/><oc:fileid/><oc:permissions/><oc:size/><nc:has-preview/><oc:share-types/></d:prop></d:propfind>]]
else
  wrk.body = [[<?xml version="1.0" encoding="utf-8"?>
<d:propfind xmlns:d="DAV:"><d:prop><d:resourcetype/><d:getcontentlength/><d:getlastmodified/><d:getetag/><d:getcontenttype/></d:prop></d:propfind>]]
end

done = c.done
