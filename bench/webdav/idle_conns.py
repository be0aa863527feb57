#!/usr/bin/env python3
# Memory per idle keep-alive connection: opens N connections (plain or TLS) to a running server,
# sends one request on each (PROPFIND Depth 0 by default; --wave connections at a time, as
# clients arrive), reads every answer, then leaves them all open and idle and prints the growth of the server's resident memory (the process and its
# children, e.g. nginx's workers) per connection. A warm-up of a few connections that are opened,
# used and closed first keeps one-off costs (caches, thread arenas) out of the figure.
# Loopback only; closes everything when it exits. Raise `ulimit -n` first (each connection is a
# descriptor here and one in the server). Exit status 1 when --max-bytes is given and exceeded.
#
# Example: idle_conns.py --port 8080 --pid PID --n 19000 --path /dav/bench/u/f.txt \
#   --auth u@bench:pw --tls --max-bytes 4096
import argparse, base64, os, socket, ssl, sys, time


def tree_rss_kib(root):
    """VmRSS of `root` and all its descendants, KiB."""
    children = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(p))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def read_response(s):
    """Reads one HTTP/1.1 response (Content-Length or chunked) and returns its status."""
    data = b""
    while b"\r\n\r\n" not in data:
        got = s.recv(65536)
        if not got:
            raise ConnectionError("closed before the response head")
        data += got
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    fields = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip() for l in lines[1:]}
    if "content-length" in fields:
        need = int(fields["content-length"])
        while len(rest) < need:
            got = s.recv(65536)
            if not got:
                raise ConnectionError("closed inside the body")
            rest += got
    elif fields.get("transfer-encoding", "").lower() == "chunked":
        while not rest.endswith(b"0\r\n\r\n"):
            got = s.recv(65536)
            if not got:
                raise ConnectionError("closed inside the body")
            rest += got
    return status


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True, help="server process (children are added)")
    ap.add_argument("--n", type=int, default=10000, help="idle connections to open")
    ap.add_argument("--tls", action="store_true", help="TLS (the certificate is not verified)")
    ap.add_argument("--method", default="PROPFIND")
    ap.add_argument("--path", default="/dav/bench/u/f.txt")
    ap.add_argument("--auth", default="", help="user:password for Basic auth (none if empty)")
    ap.add_argument("--sources", type=int, default=4, help="client addresses 127.0.0.2.. to spread ports over")
    ap.add_argument("--warmup", type=int, default=200, help="connections used and closed first")
    ap.add_argument("--settle-s", type=float, default=2.0, help="wait before reading the RSS")
    ap.add_argument("--wave", type=int, default=64,
                    help="connections that send their request at once (then read, then the next wave)")
    ap.add_argument("--label", default="server")
    ap.add_argument("--verbose", action="store_true", help="RSS after every 1,000 connections")
    ap.add_argument("--max-bytes", type=float, default=0, help="fail above this many bytes per connection")
    a = ap.parse_args()

    hdrs = f"{a.method} {a.path} HTTP/1.1\r\nHost: localhost\r\n"
    if a.auth:
        hdrs += f"Authorization: Basic {base64.b64encode(a.auth.encode()).decode()}\r\n"
    if a.method == "PROPFIND":
        hdrs += "Depth: 0\r\nContent-Length: 0\r\n"
    req = (hdrs + "\r\n").encode()
    ctx = None
    if a.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["http/1.1"])

    def connect(i):
        src = f"127.0.0.{2 + i % max(a.sources, 1)}"
        s = socket.create_connection(("127.0.0.1", a.port), source_address=(src, 0))
        if ctx is not None:
            s = ctx.wrap_socket(s, server_hostname="localhost")
        return s

    def exchange(count):
        socks, bad = [], 0
        for start in range(0, count, a.wave):
            wave = []
            for i in range(start, min(start + a.wave, count)):
                s = connect(i)
                s.sendall(req)
                wave.append(s)
            for s in wave:
                if read_response(s) >= 300:
                    bad += 1
            socks.extend(wave)
            if a.verbose and len(socks) % 1000 < a.wave:
                print(f"  {len(socks)} connections: RSS {tree_rss_kib(a.pid)} KiB", file=sys.stderr)
        if bad:
            sys.exit(f"{a.label}: {bad} of {count} answers were not 2xx")
        return socks

    for s in exchange(a.warmup):
        s.close()
    time.sleep(a.settle_s)
    base = tree_rss_kib(a.pid)
    socks = exchange(a.n)
    time.sleep(a.settle_s)
    after = tree_rss_kib(a.pid)
    per = (after - base) * 1024 / a.n
    kind = "TLS" if a.tls else "plain"
    print(f"{a.label} {kind}: {a.n} idle keep-alive connections: RSS {base} -> {after} KiB, "
          f"{per:.0f} bytes per connection", flush=True)
    for s in socks:
        s.close()
    if a.max_bytes and per > a.max_bytes:
        print(f"{a.label} {kind}: {per:.0f} bytes per idle connection is over the limit of "
              f"{a.max_bytes:.0f}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
