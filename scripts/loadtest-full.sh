#!/usr/bin/env bash
# Issue-4 benchmark, push-button: the school-morning login storm and the exam-deadline upload
# peak with skab-loadtest against skab and against peer WebDAV servers, on loopback, each server
# on a fresh ext4 loop image, and one side-by-side table at the end. Run as root (apt-get, mount).
#
# Per server: mount a fresh image, start the server, seed every user's home through WebDAV,
# restart (so that peak RSS is the scenario's own), run login-storm, restart, run exam-peak
# (every acknowledged upload read back and hashed), stop, unmount, delete the image.
# skab gets its users through `skab user import` (one argon2id hash shared by all users) and an
# HS256 JWT issuer; the peers get the same homes and users as far as they can (see docs/loadtest.md,
# "Full-size runs": rclone checks a per-user htpasswd {SHA} entry, Apache one shared account;
# neither accepts JWTs, so every peer session logs in with Basic).
#
# Knobs (environment), defaults in brackets:
#   SESSIONS [1000000]     login-storm sessions; USERS [= SESSIONS] population, TENANTS [USERS/770, >= 1]
#   UPLOADS [100000]       exam-peak uploads (pupil i uses user i mod USERS)
#   TIME_SCALE [1]         login-storm scenario seconds per wall second (window 3600 s + sessions 600 s;
#                          on 2 shared cores 1,000,000 sessions at 1x peak at ~1,000 logins/s and
#                          ~12,000 req/s, about what server and generator together can serve)
#   EXAM_TIME_SCALE [1]    exam-peak scenario seconds per wall second (window 1800 s, 80 % in the last
#                          60 s: 100,000 uploads at 1x offer ~1,300 uploads/s at the deadline)
#   BASIC_SHARE [0.02]     share of skab sessions logging in with Basic (argon2 on first login)
#   TOKEN_SHARE [0]        share presenting an app token (users.csv has none here: they fall back to JWT)
#                          the rest present an IdP JWT (HS256)
#   PEERS ["rclone"]       peers to run after skab: any of "rclone apache"; "" for skab only
#   SERVERS                overrides the whole list, e.g. "rclone" alone (default: "skab $PEERS")
#   SCENARIOS ["login-storm exam-peak"]   "" to only seed and measure the population's RSS
#   SKIP_SEED [0]          1: no files are seeded (homes only on the peers) and sessions open none
#   SEED_FILES [2]         files per home; SEED_FILE_SIZE [4096] bytes; SEED_CONCURRENCY [64]
#   SEED_SHARED [1]        1: every user's file-k has the same bytes (skab stores them once)
#   CONNECTIONS [2000]     requests in flight (generator); SOURCE_ADDRS [1]
#   GEN_THREADS [0]        generator threads (0: one per CPU; 1: one event loop, ~17 % less CPU)
#   RESULTS [/var/tmp/skab-loadtest-full-<date>]   results directory (summary.md, per-run dirs)
#   IMG_SIZE [45G]         sparse ext4 image per server (deleted after it); NO_LOOP=1: plain dir
#   WORK_DIR [/var/tmp]    where images and scratch live; BASE_PORT [18700]
#   SKIP_BUILD=1           use the existing target/release binaries; NO_INSTALL=1: no apt-get
#   STORM_WINDOW_S [3600] STORM_SPREAD [0.1] STORM_SESSION_S [600] STORM_POLL_S [60]
#                          login-storm arrival window, bump width (fraction of the window), how
#                          long a session polls and how often (scenario seconds)
#   EXAM_WINDOW_S [1800]   exam-peak upload window ending at the deadline (80 % in its last 60 s)
#   MAX_WALL_EXTRA [1800]  seconds a run may overrun its schedule before it is cut (and failed)
#   RSS_KILL_MIB [60 % of RAM]  a server whose process tree grows past this is killed (its run fails)
#                          so that one peer cannot take the machine down
#   RCLONE_ENV, RCLONE_FLAGS    extra environment (e.g. GOMEMLIMIT=4GiB) and flags for rclone
#   RCLONE_SEED_BATCH [100000]  rclone keeps every directory it served in memory (~10 KB a home):
#                          it is seeded this many users at a time and restarted in between (0: at once)
#   NICE [0]               niceness of the servers and the generator alike (10 on a shared machine;
#                          never nice only one of them: a starved generator starts late, and its lag
#                          counts as latency)
# Exit status: 0 when every run passed its thresholds, 3 when one missed them, 1 on error.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
SESSIONS="${SESSIONS:-1000000}"
USERS="${USERS:-$SESSIONS}"
TENANTS="${TENANTS:-$(( USERS / 770 > 0 ? USERS / 770 : 1 ))}"
UPLOADS="${UPLOADS:-100000}"
TIME_SCALE="${TIME_SCALE:-1}"
EXAM_TIME_SCALE="${EXAM_TIME_SCALE:-1}"
BASIC_SHARE="${BASIC_SHARE:-0.02}"
TOKEN_SHARE="${TOKEN_SHARE:-0}"
PEERS="${PEERS-rclone}"
SERVERS="${SERVERS:-skab $PEERS}"
SCENARIOS="${SCENARIOS-login-storm exam-peak}"
SKIP_SEED="${SKIP_SEED:-0}"
SEED_FILES="${SEED_FILES:-2}"
SEED_FILE_SIZE="${SEED_FILE_SIZE:-4096}"
SEED_CONCURRENCY="${SEED_CONCURRENCY:-64}"
SEED_SHARED="${SEED_SHARED:-1}"
CONNECTIONS="${CONNECTIONS:-2000}"
SOURCE_ADDRS="${SOURCE_ADDRS:-1}"
GEN_THREADS="${GEN_THREADS:-0}"
RESULTS="${RESULTS:-/var/tmp/skab-loadtest-full-$(date +%Y%m%d-%H%M%S)}"
IMG_SIZE="${IMG_SIZE:-45G}"
WORK_DIR="${WORK_DIR:-/var/tmp}"
BASE_PORT="${BASE_PORT:-18700}"
MAX_WALL_EXTRA="${MAX_WALL_EXTRA:-1800}"
RCLONE_SEED_BATCH="${RCLONE_SEED_BATCH:-100000}"
RSS_KILL_MIB="${RSS_KILL_MIB:-$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.6 }' /proc/meminfo)}"
NICE="${NICE:-0}"
STORM_WINDOW_S="${STORM_WINDOW_S:-3600}"
STORM_SPREAD="${STORM_SPREAD:-0.1}"
STORM_SESSION_S="${STORM_SESSION_S:-600}"
STORM_POLL_S="${STORM_POLL_S:-60}"
EXAM_WINDOW_S="${EXAM_WINDOW_S:-1800}"
BIN="$REPO/target/release"
SECRET="loadtest-full-$RANDOM$RANDOM$RANDOM"
CLK_TCK="$(getconf CLK_TCK)"

log() { echo "[loadtest-full $(date +%T)] $*" >&2; }
die() { log "$*"; exit 1; }

JWT_SHARE="$(awk -v b="$BASIC_SHARE" -v t="$TOKEN_SHARE" 'BEGIN {
  j = 1 - b - t; if (b < 0 || t < 0 || j < 0) exit 1; printf "%.6f", j }')" ||
  die "BASIC_SHARE + TOKEN_SHARE must be within 0..1"
for s in $SERVERS; do
  case "$s" in skab | rclone | apache) ;; *) die "unknown server $s (skab, rclone, apache)" ;; esac
done

WORK="$(mktemp -d "$WORK_DIR/skab-loadtest-full.XXXXXX")"
chmod 755 "$WORK" # Apache drops to www-data
mkdir -p "$RESULTS"
RESULTS="$(cd "$RESULTS" && pwd)"

# ---- cleanup: stop what we started, unmount, remove the scratch dir --------------------------
SRV_PID=""
SAMPLER_PID=""
LT_PID=""
MNT=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -n "$LT_PID" ] && kill "$LT_PID" 2>/dev/null && wait "$LT_PID" 2>/dev/null || true
  [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null || true
  stop_server || true
  if [ -n "$MNT" ] && mountpoint -q "$MNT"; then umount "$MNT" || true; fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT INT TERM

# ---- install and build ----------------------------------------------------------------------
if [ -z "${NO_INSTALL:-}" ]; then
  need=()
  command -v jq >/dev/null || need+=(jq)
  command -v curl >/dev/null || need+=(curl)
  command -v openssl >/dev/null || need+=(openssl)
  [[ " $SERVERS " == *" rclone "* ]] && ! command -v rclone >/dev/null && need+=(rclone)
  [[ " $SERVERS " == *" apache "* ]] && ! command -v apache2 >/dev/null && need+=(apache2)
  if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  # Debian starts apache2 on install; it is not part of the benchmark.
  service apache2 stop >/dev/null 2>&1 || true
fi
if [ -z "${SKIP_BUILD:-}" ]; then
  log "building skab and skab-loadtest (release)"
  (cd "$REPO" && nice -n 10 cargo build --release -q -p skab-server -p skab-loadtest)
fi
[ -x "$BIN/skab" ] && [ -x "$BIN/skab-loadtest" ] || die "no release binaries in $BIN"

# ---- the population ----------------------------------------------------------------------------
log "population: $USERS users in $TENANTS tenants"
"$BIN/skab-loadtest" users --count "$USERS" --tenant school --tenants "$TENANTS" \
  --out "$WORK/users.csv" --skab-import "$WORK/import.csv" 2>"$WORK/users.log"
PASSWORD="$(sed -n 2p "$WORK/users.csv" | cut -d, -f3)"
# rclone: one htpasswd line per user, {SHA} (unsalted SHA-1: cheap, as rclone has no argon2).
if [[ " $SERVERS " == *" rclone "* ]]; then
  sha="$(printf '%s' "$PASSWORD" | openssl dgst -binary -sha1 | base64)"
  awk -F, -v h="{SHA}$sha" 'NR > 1 { print $1 "@" $2 ":" h }' "$WORK/users.csv" >"$WORK/htpasswd"
fi

# ---- loadtest configs ---------------------------------------------------------------------------
files_max=2
[ "$SKIP_SEED" = 1 ] && files_max=0
[ "$SEED_FILES" -lt "$files_max" ] && files_max="$SEED_FILES"
files_min=$(( files_max > 0 ? 1 : 0 ))
common_toml() { # the parts every server shares; $1: whether homes (and parents) need MKCOL
  cat <<EOF
[connections]
max = $CONNECTIONS
source_addrs = $SOURCE_ADDRS

[seed]
files_per_user = $SEED_FILES
file_size_bytes = $SEED_FILE_SIZE
concurrency = $SEED_CONCURRENCY
shared_content = $([ "$SEED_SHARED" = 1 ] && echo true || echo false)
mkcol_parents = $1
mkcol_home = $1

[login_storm]
files_min = $files_min
files_max = $files_max
window_s = $STORM_WINDOW_S
spread = $STORM_SPREAD
session_s = $STORM_SESSION_S
poll_every_s = $STORM_POLL_S

[exam_peak]
window_s = $EXAM_WINDOW_S
EOF
}
{
  cat <<EOF
[auth]
jwt_secret = "$SECRET"
jwt_share = $JWT_SHARE
token_share = $TOKEN_SHARE
basic_share = $BASIC_SHARE

EOF
  common_toml false
} >"$WORK/lt-skab.toml"
{
  cat <<EOF
[target]
home = "/{tenant}/{user}/"

[auth]
jwt_share = 0.0
token_share = 0.0
basic_share = 1.0

EOF
  common_toml true
} >"$WORK/lt-rclone.toml"
{
  cat <<EOF
[target]
home = "/{tenant}/{user}/"

[auth]
jwt_share = 0.0
token_share = 0.0
basic_share = 1.0
basic_shared_login = "bench"
basic_shared_password = "$PASSWORD"

EOF
  common_toml true
} >"$WORK/lt-apache.toml"
cat >"$WORK/skab.toml" <<EOF
[[auth.jwt]]
issuer = "skab-loadtest"
audience = "skab"
algorithm = "HS256"
secret = "$SECRET"
EOF

# ---- data file system ---------------------------------------------------------------------------
FS_KIND=""
mount_data() { # $1: mount point
  MNT="$1"
  mkdir -p "$MNT"
  FS_KIND="plain directory on $(findmnt -no FSTYPE -T "$WORK")"
  [ -n "${NO_LOOP:-}" ] && return 0
  truncate -s "$IMG_SIZE" "$MNT.img"
  if mkfs.ext4 -q -F "$MNT.img" && mount -o loop "$MNT.img" "$MNT"; then
    FS_KIND="fresh ext4 loop image ($IMG_SIZE sparse, on $(findmnt -no FSTYPE -T "$WORK"))"
  else
    log "loop mount failed; using a plain directory"
  fi
}
umount_data() {
  if [ -n "$MNT" ] && mountpoint -q "$MNT"; then umount "$MNT"; fi
  rm -rf "$MNT" "$MNT.img"
  MNT=""
}
disk_used() { # bytes used on the data file system (after a sync), or the data dir's size
  sync -f "$MNT" 2>/dev/null || sync
  if mountpoint -q "$MNT"; then df -B1 --output=used "$MNT" | tail -1 | tr -d ' '; else du -sb "$MNT" | cut -f1; fi
}

# ---- servers ------------------------------------------------------------------------------------
# start_<srv> DATA PORT sets SRV_PID and SRV_PROBE (URL that answers 2xx/3xx/4xx when up).
start_skab() {
  nice -n "$NICE" "$BIN/skab" serve --config "$WORK/skab.toml" --data-dir "$1" --listen "127.0.0.1:$2" \
    >>"$RUN/server.log" 2>&1 &
  SRV_PID=$!
  SRV_PROBE="http://127.0.0.1:$2/healthz"
}
start_rclone() {
  nice -n "$NICE" env ${RCLONE_ENV:-} rclone serve webdav "$1" --addr "127.0.0.1:$2" --htpasswd "$WORK/htpasswd" ${RCLONE_FLAGS:-} \
    --log-level ERROR >>"$RUN/server.log" 2>&1 &
  SRV_PID=$!
  SRV_PROBE="http://127.0.0.1:$2/"
}
start_apache() {
  local data="$1" port="$2"
  chown www-data:www-data "$data" "$RUN"
  [ -f "$WORK/apache.htpasswd" ] ||
    printf 'bench:{SHA}%s\n' "$(printf '%s' "$PASSWORD" | openssl dgst -binary -sha1 | base64)" >"$WORK/apache.htpasswd"
  cat >"$RUN/apache.conf" <<EOF
ServerRoot "/usr/lib/apache2"
ServerName 127.0.0.1
Listen 127.0.0.1:$port
PidFile "$RUN/httpd.pid"
ErrorLog "$RUN/error.log"
LogLevel warn
DefaultRuntimeDir "$RUN"
User www-data
Group www-data
LoadModule mpm_event_module modules/mod_mpm_event.so
LoadModule authz_core_module modules/mod_authz_core.so
LoadModule authz_user_module modules/mod_authz_user.so
LoadModule authn_core_module modules/mod_authn_core.so
LoadModule authn_file_module modules/mod_authn_file.so
LoadModule auth_basic_module modules/mod_auth_basic.so
LoadModule mime_module modules/mod_mime.so
LoadModule dav_module modules/mod_dav.so
LoadModule dav_fs_module modules/mod_dav_fs.so
TypesConfig /etc/mime.types
# Enough workers for the generator's $CONNECTIONS requests in flight.
StartServers 4
ServerLimit 32
ThreadsPerChild 64
MaxRequestWorkers 2048
MinSpareThreads 64
MaxSpareThreads 2048
ListenBacklog 4096
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 60
EnableSendfile On
DavLockDB "$RUN/davlock"
DocumentRoot "$data"
<Directory "$data">
    Dav On
    Options None
    AllowOverride None
    AuthType Basic
    AuthName "loadtest"
    AuthBasicProvider file
    AuthUserFile "$WORK/apache.htpasswd"
    Require valid-user
</Directory>
EOF
  nice -n "$NICE" apache2 -f "$RUN/apache.conf" -DFOREGROUND >>"$RUN/server.log" 2>&1 &
  SRV_PID=$!
  SRV_PROBE="http://127.0.0.1:$port/"
}
port_free() { # another process on the port would answer for our server (and its 401s count)
  if ss -ltnH "sport = :$1" 2>/dev/null | grep -q .; then die "port $1 is in use (set BASE_PORT)"; fi
}
wait_up() {
  for _ in $(seq 600); do
    if curl -s -o /dev/null -w '%{http_code}' "$SRV_PROBE" 2>/dev/null | grep -q '^[234]'; then return 0; fi
    kill -0 "$SRV_PID" 2>/dev/null || { tail -20 "$RUN/server.log" >&2; die "server died"; }
    sleep 0.2
  done
  tail -20 "$RUN/server.log" >&2
  die "server did not come up"
}
stop_server() {
  [ -n "$SRV_PID" ] || return 0
  kill -TERM "$SRV_PID" 2>/dev/null || true
  for _ in $(seq 300); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SRV_PID" 2>/dev/null || true
  wait "$SRV_PID" 2>/dev/null || true
  SRV_PID=""
}

# ---- the server's whole process tree: CPU ticks, and RSS sampled every second ------------------
tree_pids() { # $1: root pid; prints it and its descendants
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v root="$1" '
    { i = index($0, ") "); split(substr($0, i + 2), f, " "); pp[$1] = f[2] }
    END { for (p in pp) { q = p; for (d = 0; d < 64 && q != "" && q != 0; d++) {
          if (q == root) { print p; break }; q = pp[q] } } }'
}
tree_ticks() { # utime + stime of the tree's live processes, plus children they reaped
  local p sum=0 t
  for p in $(tree_pids "$1"); do
    t=$(awk '{ i = index($0, ") "); split(substr($0, i + 2), f, " "); print f[12] + f[13] + f[14] + f[15] }' \
      "/proc/$p/stat" 2>/dev/null || echo 0)
    sum=$((sum + t))
  done
  echo "$sum"
}
start_sampler() { # $1: file the peak tree RSS (bytes) is written to; $1.killed if it hit RSS_KILL_MIB
  (
    peak=0
    while :; do
      rss=0
      pids=$(tree_pids "$SRV_PID")
      for p in $pids; do
        r=$(awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$p/status" 2>/dev/null || echo 0)
        rss=$((rss + ${r:-0}))
      done
      [ "$rss" -gt "$peak" ] && peak=$rss && echo "$peak" >"$1"
      if [ "$rss" -gt $((RSS_KILL_MIB * 1048576)) ]; then
        echo "$rss" >"$1.killed"
        log "server RSS $((rss / 1048576)) MiB is over RSS_KILL_MIB=$RSS_KILL_MIB: killing it"
        kill -KILL $pids 2>/dev/null || true
        break
      fi
      sleep 1
    done
  ) &
  SAMPLER_PID=$!
}
stop_sampler() {
  [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null || true
  wait "$SAMPLER_PID" 2>/dev/null || true
  SAMPLER_PID=""
}

# ---- one run of skab-loadtest ------------------------------------------------------------------
FAILED=0
run_lt() { # $1 server, $2 what (seed|login-storm|exam-peak), $3 port, [$4 users file, $5 out name]
  local srv="$1" what="$2" port="$3" users="${4:-$WORK/users.csv}" out="$RESULTS/$1/${5:-$2}" rc=0 t0 t1 d0 d1
  mkdir -p "$out"
  local -a args=(--target "http://127.0.0.1:$port" --users "$users"
    --config "$WORK/lt-$srv.toml" --out "$out" --server-pid "$SRV_PID" --threads "$GEN_THREADS" --quiet)
  case "$what" in
    seed) args=(seed "${args[@]}") ;;
    login-storm)
      args=(run login-storm "${args[@]}" --sessions "$SESSIONS" --time-scale "$TIME_SCALE"
        --threshold 'errors=0' --threshold 'p99<100ms'
        --max-wall "$(awk -v s="$TIME_SCALE" -v x="$MAX_WALL_EXTRA" 'BEGIN { printf "%d", 4200 / s + x }')")
      ;;
    exam-peak)
      args=(run exam-peak "${args[@]}" --sessions "$UPLOADS" --time-scale "$EXAM_TIME_SCALE"
        --threshold 'errors=0' --threshold 'lost=0'
        --max-wall "$(awk -v s="$EXAM_TIME_SCALE" -v x="$MAX_WALL_EXTRA" -v w="$EXAM_WINDOW_S" 'BEGIN { printf "%d", w / s + x }')")
      ;;
  esac
  log "$srv: $what"
  start_sampler "$out/server-tree-peak-rss"
  d0=$(disk_used)
  t0=$(tree_ticks "$SRV_PID")
  # In the background, so that a signal to this script is handled at once (cleanup stops it).
  nice -n "$NICE" "$BIN/skab-loadtest" "${args[@]}" >"$out/run.log" 2>&1 &
  LT_PID=$!
  wait "$LT_PID" || rc=$?
  LT_PID=""
  t1=$(tree_ticks "$SRV_PID")
  d1=$(disk_used)
  stop_sampler
  kill -0 "$SRV_PID" 2>/dev/null || { log "$srv died during $what"; rc=1; }
  jq -n --argjson rc "$rc" --argjson ticks "$((t1 > t0 ? t1 - t0 : 0))" --argjson tck "$CLK_TCK" \
    --argjson rss "$(cat "$out/server-tree-peak-rss" 2>/dev/null || echo 0)" \
    --argjson killed "$([ -f "$out/server-tree-peak-rss.killed" ] && echo true || echo false)" \
    --argjson d0 "${d0:-0}" --argjson d1 "${d1:-0}" --arg fs "$FS_KIND" \
    '{exit_code: $rc, server_tree_cpu_s: ($ticks / $tck), server_tree_peak_rss_bytes: $rss,
      killed_over_rss_limit: $killed, disk_used_before: $d0, disk_used_after: $d1, fs: $fs}' >"$out/extra.json"
  tail -n 25 "$out/run.log" >&2
  case "$rc" in
    0) ;;
    3) log "$srv $what: a threshold was missed"; FAILED=1 ;;
    *) log "$srv $what: failed (exit $rc), see $out/run.log"; FAILED=1; return 1 ;;
  esac
}

rss_now() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$SRV_PID/status" 2>/dev/null || echo 0; }

# ---- every server in turn ----------------------------------------------------------------------
port=$BASE_PORT
for srv in $SERVERS; do
  port=$((port + 1))
  RUN="$WORK/$srv-run"
  mkdir -p "$RUN" "$RESULTS/$srv"
  mount_data "$WORK/$srv-data"
  log "$srv: data on $FS_KIND, port $port"
  if [ "$srv" = skab ]; then
    t=$(date +%s.%N)
    "$BIN/skab" user import --data-dir "$MNT" --csv "$WORK/import.csv" >"$RUN/import.log" 2>&1 ||
      { cat "$RUN/import.log" >&2; die "skab user import failed"; }
    log "skab: imported $USERS users in $(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
  fi
  [ "$srv" = apache ] && chown -R www-data:www-data "$MNT"
  port_free "$port"
  "start_$srv" "$MNT" "$port"
  wait_up
  rss_started=$(rss_now)
  if [ "$SKIP_SEED" = 1 ] && [ "$srv" != skab ]; then
    sed -i 's/^files_per_user = .*/files_per_user = 0/' "$WORK/lt-$srv.toml"
  fi
  if [ "$SKIP_SEED" != 1 ] || [ "$srv" != skab ]; then
    if [ "$srv" = rclone ] && [ "$RCLONE_SEED_BATCH" -gt 0 ] && [ "$USERS" -gt "$RCLONE_SEED_BATCH" ]; then
      # rclone keeps every directory it served in memory: seed in batches, restarting between.
      rm -rf "$WORK/parts" && mkdir -p "$WORK/parts"
      tail -n +2 "$WORK/users.csv" | split -l "$RCLONE_SEED_BATCH" -d -a 3 - "$WORK/parts/p"
      seeded=1
      for part in "$WORK"/parts/p*; do
        { head -1 "$WORK/users.csv"; cat "$part"; } >"$part.csv"
        run_lt "$srv" seed "$port" "$part.csv" "seed-${part##*/}" || { seeded=0; break; }
        stop_server
        port_free "$port"
        "start_$srv" "$MNT" "$port"
        wait_up
      done
      [ "$seeded" = 1 ] || { stop_server; umount_data; continue; }
    else
      run_lt "$srv" seed "$port" || { stop_server; umount_data; continue; }
    fi
  fi
  rss_seeded=$(rss_now)
  # A fresh process for every scenario: its peak RSS is the scenario's own, not the seeding's.
  stop_server
  port_free "$port"
  "start_$srv" "$MNT" "$port"
  wait_up
  jq -n --argjson users "$USERS" --argjson a "$rss_started" --argjson b "$rss_seeded" \
    --argjson c "$(rss_now)" --argjson files "$([ "$SKIP_SEED" = 1 ] && echo 0 || echo "$SEED_FILES")" \
    '{users: $users, files_per_user: $files, rss_after_start: $a, rss_after_seed: $b,
      rss_after_restart: $c}' >"$RESULTS/$srv/rss-population.json"
  fresh=1
  for sc in $SCENARIOS; do
    if [ "$fresh" = 0 ]; then
      stop_server
      port_free "$port"
      "start_$srv" "$MNT" "$port"
      wait_up
    fi
    fresh=0
    run_lt "$srv" "$sc" "$port" || true
  done
  stop_server
  if [ "$srv" = skab ]; then du -sb "$MNT" >"$RESULTS/$srv/data-size.txt" 2>/dev/null || true; fi
  umount_data
done

# ---- the table ---------------------------------------------------------------------------------
{
  echo "| server | scenario | sessions / uploads | req/s avg | req/s peak | peak logins/s or uploads/s | p50 ms | p99 ms | errors | lost | server peak RSS MiB | server CPU s | disk B / logical B | passed |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
  for srv in $SERVERS; do
    for sc in $SCENARIOS; do
      f="$RESULTS/$srv/$sc/result.json"
      if [ ! -f "$f" ]; then
        why="no result"
        if cat "$RESULTS/$srv"/*/extra.json 2>/dev/null | jq -e -s 'any(.killed_over_rss_limit)' >/dev/null; then
          why="no result: the server was killed over RSS_KILL_MIB=$RSS_KILL_MIB"
        fi
        echo "| $srv | $sc | ($why) |||||||||||"
        continue
      fi
      jq -r --arg srv "$srv" --slurpfile x "$RESULTS/$srv/$sc/extra.json" '
        def r(n): (. * 10 | round) / 10;
        $x[0] as $e |
        ([.timeline[]?.per_s] | max // 0) as $peakrps |
        (if .scenario == "login-storm" then
           [.login_storm.sessions_started, (.peak_ok_per_s["login.*"] // 0), .latency_us]
         else
           [.exam.uploads_started, (.peak_ok_per_s.upload // 0), (.ops.upload.latency_us // .latency_us)]
         end) as $w |
        ([(.server.peak_rss_bytes // 0), $e.server_tree_peak_rss_bytes] | max) as $rss |
        ([(.server.cpu_s // 0), $e.server_tree_cpu_s] | max) as $cpu |
        (if .scenario == "exam-peak" and (.exam.logical_bytes_acknowledged // 0) > 0 then
           (($e.disk_used_after - $e.disk_used_before) / .exam.logical_bytes_acknowledged * 100 | round) / 100
         else "" end) as $disk |
        "| \($srv) | \(.scenario) | \($w[0]) | \(.requests.per_s | round) | \($peakrps | round) | \($w[1] | round) | \($w[2].p50 / 1000 | r(.)) | \($w[2].p99 / 1000 | r(.)) | \(.requests.errors) | \(.exam.lost // "") | \($rss / 1048576 | round) | \($cpu | r(.)) | \($disk) | \(if $e.killed_over_rss_limit then "**no** (killed: RSS over the limit)" elif .passed then "yes" else "**no**" end) |"
      ' "$f"
    done
  done
  echo
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r); skab $(git -C "$REPO" rev-parse --short HEAD)."
  echo "Population: $USERS users in $TENANTS tenants, $SEED_FILES seeded files of $SEED_FILE_SIZE bytes per home (shared content: $SEED_SHARED)."
  echo "login-storm: $SESSIONS sessions at time scale $TIME_SCALE; skab auth mix JWT $JWT_SHARE / token $TOKEN_SHARE / Basic $BASIC_SHARE; peers: Basic only."
  echo "exam-peak: $UPLOADS uploads at time scale $EXAM_TIME_SCALE; p50/p99 are the uploads' (the verify pass is not load). Data: $FS_KIND. Connections: $CONNECTIONS."
  echo "login-storm p50/p99: every request (logins, GETs, polls) from its scheduled start. Server RSS and CPU: the whole process tree (peak sampled every second, or VmHWM when larger)."
  for srv in $SERVERS; do
    [ -f "$RESULTS/$srv/rss-population.json" ] &&
      echo "$srv RSS: $(jq -r '"after start \(.rss_after_start / 1048576 | round) MiB, after seeding \(.rss_after_seed / 1048576 | round) MiB, restarted with the population \(.rss_after_restart / 1048576 | round) MiB (\(.rss_after_restart / .users | round) bytes per user)"' "$RESULTS/$srv/rss-population.json")"
    ls "$RESULTS/$srv"/seed*/result.json >/dev/null 2>&1 &&
      echo "$srv seed: $(jq -s -r '"\(map(.requests.total) | add) requests in \(map(.wall_s) | add | round) s (\((map(.requests.total) | add) / (map(.wall_s) | add) | round) req/s; \(length) part(s)), \(map(.requests.errors) | add) errors"' "$RESULTS/$srv"/seed*/result.json)"
  done
} | tee "$RESULTS/summary.md"
{
  echo "kernel: $(uname -r)"
  echo "cpus: $(nproc)"
  echo "skab: $(git -C "$REPO" rev-parse --short HEAD)"
  command -v rclone >/dev/null && echo "rclone: $(rclone version 2>/dev/null | head -1)"
  command -v apache2 >/dev/null && echo "apache: $(apache2 -v | head -1)"
} >"$RESULTS/versions.txt"
log "results in $RESULTS"
[ "$FAILED" = 0 ] || exit 3
