#!/usr/bin/env python3
# Memory per idle keep-alive connection: opens N connections to a running skab (user
# u@bench:pw12345678 with /dav/bench/u/f.txt), sends one PROPFIND Depth 0 on each, reads the
# answers, and prints the server RSS before and after. Usage: idle_conns.py PORT N SERVER_PID
# (raise `ulimit -n` first). Loopback only; closes everything when it exits.
import socket, base64, sys, time, os
port=int(sys.argv[1]); n=int(sys.argv[2]); pid=int(sys.argv[3])
auth=base64.b64encode(b"u@bench:pw12345678").decode()
req=(f"PROPFIND /dav/bench/u/f.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nDepth: 0\r\nContent-Length: 0\r\n\r\n").encode()
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS:"): return int(l.split()[1])
base=rss(); socks=[]
for i in range(n):
    s=socket.create_connection(("127.0.0.1",port)); s.sendall(req); socks.append(s)
for s in socks:
    d=b""
    while b"</D:multistatus>" not in d:
        d+=s.recv(65536)
time.sleep(1)
after=rss()
print(f"{n} idle keep-alive connections: RSS {base} -> {after} KiB, {(after-base)*1024/n:.0f} bytes per connection")
