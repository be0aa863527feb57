#!/usr/bin/env bash
# Side-by-side WebDAV benchmark: skab vs Apache mod_dav, nginx dav(-ext), rclone serve webdav.
# One command: installs the peers and wrk (Debian), builds skab (release), and for each server:
# fresh ext4 loop image, start, upload the same 1000 prepared 16 KiB files, run wrk per operation
# (PUT new files, GET, PROPFIND Depth 1 on the 1000-file collection, PROPFIND Depth 0 on a file),
# interleaved over the servers, measuring the server's and wrk's CPU seconds; then stop them all. Results: raw wrk output per run in
# RAW_DIR (bench/webdav/results/raw, not committed), a markdown table on stdout and in
# results/summary.md, tool versions in results/versions.txt. Run as root (apt, mount, www-data).
#
# Knobs (environment): DURATION (12s), CONNS (64), THREADS (2), SERVERS ("skab apache nginx rclone";
# also "skab-hyper": the same skab binary with `http1 = "hyper"`, to compare its own HTTP/1 with hyper's;
# "skab-direct" / "skab-buffered": skab with `storage.direct_io` on / off; "skab-base": the binary
# at SKAB_BASE_BIN, e.g. a build of the commit before a change),
# OPS ("put get propfind1 propfind0"; "get" reads back everything the PUT runs so far wrote (all
# rounds), in a scattered order, or the 1000 prepared files when no PUT ran; "getcold" is the same
# after the server was stopped, the page cache dropped (`echo 3 > /proc/sys/vm/drop_caches`) and the
# server started again; also "poll": a sync client's root PROPFIND Depth 0 with the
# Nextcloud client's properties, "list1": Depth 1 of the 1000-file folder with them, and "sync": a
# sync-collection REPORT with the current token, on servers that have it), ROUNDS (2), NFILES (1000), DATA_FS (image|sparse|root; see below),
# IMG_SIZE (16G; sparse: per server), NO_LOOP=1 (= DATA_FS=root),
# NO_INSTALL=1, NO_BUILD=1, BASE_PORT (28080), WORKERS (unset: each server's default, one per CPU;
# N: skab `workers`, nginx `worker_processes` and rclone's GOMAXPROCS set to N, Apache unchanged), SKAB_BIN (default target/release/skab),
# RESULTS_DIR (bench/webdav/results), RAW_DIR ($RESULTS_DIR/raw, git-ignored). Profiling (slows the profiled server; not for the table):
# PROFILE=perf|strace profiles the servers in PROFILE_SERVERS (skab) during each run and writes
# <server>-<op>-r<round>.perf.txt (perf report) or .strace.txt (strace -c) next to the raw results.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
DURATION="${DURATION:-12s}"
CONNS="${CONNS:-64}"
THREADS="${THREADS:-2}"
SERVERS="${SERVERS:-skab apache nginx rclone}"
OPS="${OPS:-put get propfind1 propfind0}"
ROUNDS="${ROUNDS:-2}"
NFILES="${NFILES:-1000}"
IMG_SIZE="${IMG_SIZE:-16G}"
BASE_PORT="${BASE_PORT:-28080}"
SKAB_BIN="${SKAB_BIN:-$REPO/target/release/skab}"
RESULTS="${RESULTS_DIR:-$HERE/results}"
RAW="${RAW_DIR:-$RESULTS/raw}"
WORK="$(mktemp -d /var/tmp/davbench.XXXXXX)"
chmod 755 "$WORK" # the peers drop to www-data
CLK_TCK="$(getconf CLK_TCK)"
SKAB_PASS="bench-password-1"

log() { echo "[davbench] $*" >&2; }

# ---- cleanup: stop every server we started, unmount, detach, remove the scratch dir ----------
PIDS=()
cleanup() {
  local rc=$?
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true
  done
  sleep 0.2
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] || continue
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  umount_data || true
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT INT TERM

# ---- install and build ----------------------------------------------------------------------
if [ -z "${NO_INSTALL:-}" ]; then
  need=()
  command -v wrk >/dev/null || need+=(wrk)
  command -v apache2 >/dev/null || need+=(apache2)
  command -v nginx >/dev/null || need+=(nginx)
  [ -e /usr/lib/nginx/modules/ngx_http_dav_ext_module.so ] || need+=(libnginx-mod-http-dav-ext)
  command -v rclone >/dev/null || need+=(rclone)
  command -v curl >/dev/null || need+=(curl)
  if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  # Debian starts the packaged services on install; they are not part of the benchmark.
  for svc in apache2 nginx; do service "$svc" stop >/dev/null 2>&1 || true; done
fi
if [[ " $SERVERS " == *" skab"* ]]; then
  if [ -z "${NO_BUILD:-}" ]; then
    log "building skab (release)"
    (cd "$REPO" && cargo build --release -q -p skab-server)
  fi
  [ -x "$SKAB_BIN" ] || { log "no skab binary at $SKAB_BIN"; exit 1; }
fi

mkdir -p "$RESULTS" "$RAW"
rm -f "$RAW"/*.txt "$RESULTS"/summary.md "$RESULTS"/versions.txt

# ---- prepared data: the same NFILES files of 16 KiB for every server -------------------------
mkdir -p "$WORK/files"
for i in $(seq 0 $((NFILES - 1))); do printf -v n 'f%04d.bin' "$i"; echo "$n"; done >"$WORK/names"
head -c $((NFILES * 16384)) /dev/urandom | split -b 16384 -a 4 -d - "$WORK/files/f"
(cd "$WORK/files" && for f in f[0-9][0-9][0-9][0-9]; do mv "$f" "$f.bin"; done)

# ---- data file system -------------------------------------------------------------------------
# DATA_FS=image (default): one ext4 file system for all servers (a directory each) on a loop device
#   with direct I/O over an image file written in full first (IMG_SIZE). Like a disk partition:
#   a flush is the device's flush. (A sparse image makes every fsync inside it also allocate
#   blocks and write metadata in the host file system - a cost that only servers that fsync pay.)
# DATA_FS=sparse: the older rig, a fresh sparse ext4 loop image per server (plain `mount -o loop`).
# DATA_FS=root (or NO_LOOP=1): the root file system.
DATA_FS="${DATA_FS:-image}"
[ -n "${NO_LOOP:-}" ] && DATA_FS=root
FS_KIND="root file system ($(findmnt -no FSTYPE -T /var/tmp))"
MOUNTS=()
LOOPDEV=""
SHARED_MNT=""
mount_shared_image() { # once: write the image in full, attach with direct I/O, mkfs, mount
  local img="$WORK/data.img"
  SHARED_MNT="$WORK/data"
  mkdir -p "$SHARED_MNT"
  log "writing the $IMG_SIZE data image in full (once)"
  local mib
  mib=$(numfmt --from=iec "$IMG_SIZE")
  mib=$((mib / 1048576))
  dd if=/dev/zero of="$img" bs=1M count="$mib" conv=fsync status=none
  LOOPDEV=$(losetup --direct-io=on -f --show "$img") || return 1
  # nodiscard: a discard would punch holes in the image and make it sparse again.
  mkfs.ext4 -q -F -E nodiscard,lazy_itable_init=0,lazy_journal_init=0 "$LOOPDEV" || return 1
  mount "$LOOPDEV" "$SHARED_MNT" || return 1
  MOUNTS+=("$SHARED_MNT")
  FS_KIND="ext4 on a loop device (direct I/O) over a fully written $IMG_SIZE image on $(findmnt -no FSTYPE -T /var/tmp), shared"
}
mount_data() { # $1: data dir (per server)
  local mnt="$1"
  case "$DATA_FS" in
    image)
      if [ -z "$SHARED_MNT" ] && ! mount_shared_image; then
        log "image setup failed; using the root file system"
        DATA_FS=root
        FS_KIND="root file system ($(findmnt -no FSTYPE -T /var/tmp))"
        mkdir -p "$mnt"
        return 0
      fi
      mkdir -p "$SHARED_MNT/$(basename "$mnt")" "$mnt"
      mount --bind "$SHARED_MNT/$(basename "$mnt")" "$mnt"
      MOUNTS+=("$mnt")
      ;;
    sparse)
      mkdir -p "$mnt"
      truncate -s "$IMG_SIZE" "$mnt.img"
      if mkfs.ext4 -q -F "$mnt.img" && mount -o loop "$mnt.img" "$mnt"; then
        MOUNTS+=("$mnt")
        FS_KIND="fresh ext4 loop image per server ($IMG_SIZE, sparse file on $(findmnt -no FSTYPE -T /var/tmp))"
        return 0
      fi
      log "loop mount failed; using the root file system"
      FS_KIND="root file system ($(findmnt -no FSTYPE -T /var/tmp))"
      ;;
    *) mkdir -p "$mnt" ;;
  esac
}
umount_data() {
  local i m
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do # bind mounts before the shared one
    m="${MOUNTS[$i]}"
    [ -n "$m" ] && mountpoint -q "$m" && umount "$m"
  done
  MOUNTS=()
  if [ -n "$LOOPDEV" ]; then losetup -d "$LOOPDEV" || true; LOOPDEV=""; fi
}

# ---- CPU accounting: utime+stime(+cutime+cstime) of a process tree, in clock ticks -----------
tree_ticks() { # $1: root pid
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v root="$1" '
    { i = index($0, ") "); pid = $1; rest = substr($0, i + 2); n = split(rest, f, " ");
      ppid[pid] = f[2]; t[pid] = f[12] + f[13] + f[14] + f[15] }
    END { sum = 0
      for (p in t) { q = p; for (d = 0; d < 64 && q != "" && q != 0; d++) {
          if (q == root) { sum += t[p]; break } ; q = ppid[q] } }
      print sum }'
}

# ---- servers --------------------------------------------------------------------------------
# Each start_* sets SRV_PID, SRV_PREFIX (URL path of the root collection), SRV_AUTH.
start_skab() {
  local data="$1" port="$2" bin="${SKAB_RUN_BIN:-$SKAB_BIN}"
  # RESTART=1: the same data again (getcold), the user exists already.
  [ -n "${RESTART:-}" ] ||
    echo "$SKAB_PASS" | env -u SKAB_BIN -u SKAB_BASE_BIN -u SKAB_RUN_BIN "$bin" user add --data-dir "$data" --tenant bench --user u --password-stdin >/dev/null
  # SKAB_BIN, SKAB_BASE_BIN, SKAB_RUN_BIN are this script's knobs, not server settings (the
  # server refuses unknown SKAB_*).
  # One account stands for the many clients of the load: its in-flight limit (32) is off, or
  # half of the 64 connections' requests are answered 429.
  env -u SKAB_BIN -u SKAB_BASE_BIN -u SKAB_RUN_BIN SKAB_LOG_LEVEL=warn SKAB_WORKERS="${WORKERS:-0}" \
    SKAB_LIMITS_INFLIGHT_PER_ACCOUNT_MAX=0 "$bin" serve --data-dir "$data" --listen "127.0.0.1:$port" \
    >>"$RUN/stdout.log" 2>&1 &
  SRV_PID=$!
  SRV_PREFIX="/dav/bench/u"
  SRV_AUTH="Basic $(printf 'u@bench:%s' "$SKAB_PASS" | base64 -w0)"
}
start_skab-hyper() { # skab with hyper's HTTP/1 instead of its own
  SKAB_HTTP1=hyper start_skab "$@"
}
start_skab-direct() { # skab with direct pack appends
  SKAB_STORAGE_DIRECT_IO=true start_skab "$@"
}
start_skab-buffered() { # skab with pack appends through the page cache
  SKAB_STORAGE_DIRECT_IO=false start_skab "$@"
}
start_skab-base() { # another skab binary (SKAB_BASE_BIN, or BASE_SKAB_BIN), its defaults
  SKAB_RUN_BIN="${SKAB_BASE_BIN:-${BASE_SKAB_BIN:?SKAB_BASE_BIN names the second skab binary}}" start_skab "$@"
}
start_apache() {
  local data="$1" port="$2"
  chown www-data:www-data "$data" "$RUN"
  sed -e "s#@RUN@#$RUN#g" -e "s#@DATA@#$data#g" -e "s#@PORT@#$port#g" \
    "$HERE/conf/apache.conf.in" >"$RUN/apache.conf"
  apache2 -f "$RUN/apache.conf" -DFOREGROUND >"$RUN/stdout.log" 2>&1 &
  SRV_PID=$!
  SRV_PREFIX=""
  SRV_AUTH=""
}
start_nginx() {
  local data="$1" port="$2"
  mkdir -p "$data/root" "$data/.tmp"
  chown -R www-data:www-data "$data"
  sed -e "s#@RUN@#$RUN#g" -e "s#@DATA@#$data#g" -e "s#@PORT@#$port#g" \
    -e "s#^worker_processes auto;#worker_processes ${WORKERS:-auto};#" \
    "$HERE/conf/nginx.conf.in" >"$RUN/nginx.conf"
  nginx -p "$RUN" -c "$RUN/nginx.conf" -g 'daemon off;' >"$RUN/stdout.log" 2>&1 &
  SRV_PID=$!
  SRV_PREFIX=""
  SRV_AUTH=""
}
start_rclone() {
  local data="$1" port="$2"
  env ${WORKERS:+GOMAXPROCS=$WORKERS} rclone serve webdav "$data" --config "$HERE/conf/rclone.conf" --addr "127.0.0.1:$port" \
    --log-level ERROR >"$RUN/stdout.log" 2>&1 &
  SRV_PID=$!
  SRV_PREFIX=""
  SRV_AUTH=""
}

dav_curl() { # curl with the server's auth header
  if [ -n "$SRV_AUTH" ]; then curl -sS -H "Authorization: $SRV_AUTH" "$@"; else curl -sS "$@"; fi
}

wait_up() { # $1: base url (60 s: a restarted server may replay its log first)
  for _ in $(seq 300); do
    if dav_curl -o /dev/null -w '%{http_code}' -X OPTIONS "$1/" 2>/dev/null | grep -q '^[23]'; then
      return 0
    fi
    kill -0 "$SRV_PID" 2>/dev/null || { log "server died:"; cat "$RUN/stdout.log" >&2; return 1; }
    sleep 0.2
  done
  log "server did not come up"; cat "$RUN"/*.log >&2; return 1
}

prepare() { # $1: base url. MKCOL /bench/ and /put/, upload the NFILES files over one connection.
  local base="$1" code
  for col in bench put; do
    code=$(dav_curl -o /dev/null -w '%{http_code}' -X MKCOL "$base/$col/")
    [ "$code" = 201 ] || { log "MKCOL $col: $code"; return 1; }
  done
  awk -v b="$base" -v d="$WORK/files" '{ printf "upload-file = \"%s/%s\"\nurl = \"%s/bench/%s\"\noutput = \"/dev/null\"\n", d, $1, b, $1 }' \
    "$WORK/names" >"$RUN/upload.curl"
  dav_curl -f -K "$RUN/upload.curl"
  local count
  count=$(dav_curl -X PROPFIND -H 'Depth: 1' "$base/bench/" | grep -o '<[A-Za-z]*:\?href>' | wc -l)
  [ "$count" -eq $((NFILES + 1)) ] || { log "PROPFIND found $count hrefs, want $((NFILES + 1))"; return 1; }
  # GET must return the exact bytes
  dav_curl -o "$RUN/check.bin" "$base/bench/f0007.bin"
  cmp -s "$RUN/check.bin" "$WORK/files/f0007.bin" || { log "GET returned other bytes"; return 1; }
}

run_op() { # $1 server, $2 op, $3 port, $4 round
  local srv="$1" op="$2" port="$3" round="$4" script
  local -a env=(BENCH_LUA_DIR="$HERE/lua" BENCH_PREFIX="$SRV_PREFIX" BENCH_AUTH="$SRV_AUTH"
    BENCH_NFILES="$NFILES" BENCH_RUN_ID="$op$round" BENCH_THREADS="$THREADS")
  local manifest="$WORK/$srv-manifest"
  case "$op" in
    put) script=put.lua; env+=(BENCH_MANIFEST="$manifest") ;;
    get | getcold)
      script=get.lua
      # the last request of each PUT connection may have been cut off when its run ended
      [ -s "$manifest" ] && env+=(BENCH_MANIFEST="$manifest" BENCH_INFLIGHT=$(((CONNS + THREADS - 1) / THREADS)))
      ;;
    propfind1) script=propfind.lua; env+=(BENCH_DEPTH=1 BENCH_TARGET=/bench/) ;;
    propfind0) script=propfind.lua; env+=(BENCH_DEPTH=0 BENCH_TARGET=/bench/f0000.bin) ;;
    # A sync client's poll: "did anything change?" = Depth 0 of its root with the client's props.
    poll) script=propfind.lua; env+=(BENCH_DEPTH=0 BENCH_TARGET=/ BENCH_BODY=oc) ;;
    # What follows a changed poll: the 1000-file folder listed with the client's props.
    list1) script=propfind.lua; env+=(BENCH_DEPTH=1 BENCH_TARGET=/bench/ BENCH_BODY=oc) ;;
    # RFC 6578: sync-collection with the current token (no changes); servers without it skip.
    sync)
      local token
      token=$(curl -s -X PROPFIND -H 'Depth: 0' -H "Authorization: $SRV_AUTH" \
        --data '<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:sync-token/></d:prop></d:propfind>' \
        "http://127.0.0.1:$port$SRV_PREFIX/bench/" | sed -n 's#.*<[A-Za-z]*:\{0,1\}sync-token>\([^<]*\)</.*#\1#p')
      if [ -z "$token" ]; then log "$srv has no DAV:sync-token: sync skipped"; return 0; fi
      script=sync.lua; env+=(BENCH_SYNC_TOKEN="$token" BENCH_TARGET=/bench/) ;;
    *) log "unknown op $op"; return 1 ;;
  esac
  local out="$RAW/$srv-$op-r$round.txt"
  local s0 s1 w0 t0 t1
  local prof=""
  if [ -n "${PROFILE:-}" ] && [[ " ${PROFILE_SERVERS:-skab} " == *" $srv "* ]]; then
    case "$PROFILE" in
      perf) perf record -q -F 499 -g -p "$SRV_PID" -o "$WORK/perf.data" >/dev/null 2>&1 & prof=$! ;;
      strace) strace -c -f -p "$SRV_PID" -o "${out%.txt}.strace.txt" 2>/dev/null & prof=$! ;;
      *) log "unknown PROFILE $PROFILE"; return 1 ;;
    esac
    sleep 0.5
  fi
  s0=$(tree_ticks "$SRV_PID")
  t0=$(date +%s.%N)
  # wrk's CPU: the subshell's cutime+cstime after waiting for wrk
  w0=$(
    env "${env[@]}" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --timeout 10s --latency \
      -s "$HERE/lua/$script" "http://127.0.0.1:$port/" >"$out.wrk" 2>&1 || true
    awk '{ i = index($0, ") "); split(substr($0, i + 2), f, " "); print f[14] + f[15] }' /proc/$BASHPID/stat
  )
  t1=$(date +%s.%N)
  s1=$(tree_ticks "$SRV_PID")
  if [ -n "$prof" ]; then
    kill -INT "$prof" 2>/dev/null || true
    wait "$prof" 2>/dev/null || true
    if [ "$PROFILE" = perf ]; then
      perf report -i "$WORK/perf.data" --stdio --no-children --percent-limit 1 -g none \
        --sort dso,symbol 2>/dev/null >"${out%.txt}.perf.txt" || true
      perf report -i "$WORK/perf.data" --stdio --children --percent-limit 3 -g none \
        --sort symbol 2>/dev/null >"${out%.txt}.perf-children.txt" || true
      rm -f "$WORK/perf.data"
    fi
  fi
  # What the server left unwritten (the peers answer PUT before their data is on disk): flush it
  # now, timed, so that it lands on this server's row and not in the next server's run.
  local f0 f1
  f0=$(date +%s.%N)
  sync
  f1=$(date +%s.%N)
  {
    echo "server=$srv op=$op round=$round conns=$CONNS threads=$THREADS duration=$DURATION fs=\"$FS_KIND\""
    echo "loadavg_after=\"$(cut -d' ' -f1-3 /proc/loadavg)\""
    cat "$out.wrk"
    echo "CPU server_ticks=$((s1 - s0)) wrk_ticks=$w0 clk_tck=$CLK_TCK wall_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
    echo "SYNC wall_s=$(awk -v a="$f0" -v b="$f1" 'BEGIN { printf "%.3f", b - a }')"
  } >"$out"
  rm -f "$out.wrk"
  grep -q '^RESULT' "$out" || { log "wrk failed for $srv $op:"; cat "$out" >&2; return 1; }
}

# getcold: stop the server, drop the page cache, start it again on the same data.
restart_cold() { # $1 server
  local srv="$1" pid="${S_PID[$1]}"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  sync
  echo 3 >/proc/sys/vm/drop_caches
  RUN="$WORK/$srv-run"
  RESTART=1 "start_$srv" "$WORK/$srv-data" "${S_PORT[$srv]}"
  PIDS+=("$SRV_PID")
  S_PID[$srv]=$SRV_PID
  wait_up "http://127.0.0.1:${S_PORT[$srv]}$SRV_PREFIX"
  # wait_up's OPTIONS may have read a little; the data files are still cold
}

declare -A S_PID S_PREFIX S_AUTH S_PORT
port=$BASE_PORT
for srv in $SERVERS; do
  port=$((port + 1))
  RUN="$WORK/$srv-run"
  mkdir -p "$RUN"
  mount_data "$WORK/$srv-data"
  log "$srv: starting on 127.0.0.1:$port, data on $FS_KIND"
  "start_$srv" "$WORK/$srv-data" "$port"
  PIDS+=("$SRV_PID")
  base="http://127.0.0.1:$port$SRV_PREFIX"
  wait_up "$base"
  prepare "$base"
  S_PID[$srv]=$SRV_PID; S_PREFIX[$srv]=$SRV_PREFIX; S_AUTH[$srv]=$SRV_AUTH; S_PORT[$srv]=$port
done

# Interleaved: every operation runs on every server before the next operation, ROUNDS times,
# so that load from elsewhere on a shared machine hits all servers alike; best round is reported.
for round in $(seq "$ROUNDS"); do
  for op in $OPS; do
    for srv in $SERVERS; do
      SRV_PID=${S_PID[$srv]}; SRV_PREFIX=${S_PREFIX[$srv]}; SRV_AUTH=${S_AUTH[$srv]}
      if [ "$op" = getcold ]; then
        log "round $round: $srv restarted with the page cache dropped"
        restart_cold "$srv"
      fi
      log "round $round: $srv $op for $DURATION"
      run_op "$srv" "$op" "${S_PORT[$srv]}" "$round"
      sleep 1
    done
  done
done

# ---- table ----------------------------------------------------------------------------------
best_round() { # the result file of the round with the most requests
  local f best="" bestn=-1 n
  for f in "$RAW/$1-$2"-r*.txt; do
    [ -f "$f" ] || continue
    case "$f" in *.perf*.txt | *.strace.txt) continue ;; esac
    n=$(sed -n 's/^RESULT requests=\([0-9]*\).*/\1/p' "$f")
    if [ "${n:-0}" -gt "$bestn" ]; then bestn=$n; best=$f; fi
  done
  echo "$best"
}
median_of() { # $1 server, $2 op, $3 rps|p99: that figure's median over all rounds
  local f
  for f in "$RAW/$1-$2-r"*.txt; do
    awk -v what="$3" '/^RESULT/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); r[kv[1]] = kv[2] } }
         END { if (r["duration_us"] <= 0) exit
               if (what == "p99") printf "%.2f\n", r["p99_us"] / 1000
               else printf "%.0f\n", r["requests"] / (r["duration_us"] / 1e6) }' "$f"
  done | sort -g | awk -v fmt="$([ "$3" = p99 ] && echo %.2f || echo %.0f)" '{ v[NR] = $1 }
    END { if (NR == 0) m = 0; else if (NR % 2) m = v[(NR + 1) / 2]; else m = (v[NR / 2] + v[NR / 2 + 1]) / 2
          printf fmt "\n", m }'
}
{
  echo "| Operation | Server | req/s | median req/s | p50 ms | p99 ms | median p99 ms | server CPU µs / req | server cores | wrk cores | non-2xx / errors | sync after s | req/s until durable |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for op in $OPS; do
    for srv in $SERVERS; do
      f=$(best_round "$srv" "$op")
      [ -n "$f" ] || continue
      awk -v op="$op" -v srv="$srv" -v median="$(median_of "$srv" "$op" rps)" \
        -v median_p99="$(median_of "$srv" "$op" p99)" '
        /^RESULT/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); r[kv[1]] = kv[2] } }
        /^CPU/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); c[kv[1]] = kv[2] } }
        /^SYNC/ { split($2, kv, "="); sync_s = kv[2] }
        END {
          dur = r["duration_us"] / 1e6; n = r["requests"]
          errs = r["err_connect"] + r["err_read"] + r["err_write"] + r["err_timeout"]
          scpu = c["server_ticks"] / c["clk_tck"]; wcpu = c["wrk_ticks"] / c["clk_tck"]
          printf "| %s | %s | %.0f | %d | %.2f | %.2f | %s | %.1f | %.2f | %.2f | %d / %d | %.1f | %.0f |\n",
            op, srv, n / dur, median, r["p50_us"] / 1000, r["p99_us"] / 1000, median_p99,
            (n > 0 ? scpu / n * 1e6 : 0), scpu / c["wall_s"], wcpu / c["wall_s"], r["non2xx"], errs,
            sync_s + 0, n / (dur + sync_s)
        }' "$f"
    done
  done
  echo
  echo "Data: $FS_KIND. Server workers: ${WORKERS:-one per CPU (the default of each)}. $CONNS connections, $THREADS wrk threads, $DURATION per run, best of $ROUNDS interleaved rounds (the row shows the best round; the medians of req/s and p99 over all rounds beside it), $NFILES files of 16 KiB. \"req/s until durable\": the run's requests over its time plus the time the \`sync\` after it took to write out what the server left unwritten."
} | tee "$RESULTS/summary.md"
{
  echo "kernel: $(uname -r)"
  echo "cpus: $(nproc)"
  echo "skab: $(git -C "$REPO" rev-parse --short HEAD)"
  echo "apache: $(apache2 -v | head -1)"
  echo "nginx: $(nginx -v 2>&1)"
  echo "rclone: $(rclone version 2>/dev/null | head -1)"
  echo "wrk: $(dpkg-query -W -f='${Version}' wrk 2>/dev/null)"
} >"$RESULTS/versions.txt"
