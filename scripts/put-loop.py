#!/usr/bin/env python3
"""A closed loop of PUTs (scripts/object-bench.sh, scripts/cluster-throughput.sh): CLIENTS
threads, each on one kept-alive connection to one of PORTS (round-robin) as user `u` of one of
TENANTS (round-robin), PUT UPLOADS random files of SIZE bytes in all, each as soon as the last
one was answered. Prints one line: PUTs, errors, p50, p99, uploads/s, MB/s. Loopback only.

  put-loop.py CLIENTS UPLOADS SIZE PASSWORD TENANT[,TENANT...] PORT[,PORT...] TAG
"""
import base64, http.client, os, sys, threading, time

clients, uploads, size = (int(a) for a in sys.argv[1:4])
password, tenants = sys.argv[4], sys.argv[5].split(",")
ports, tag = [int(p) for p in sys.argv[6].split(",")], sys.argv[7]
lat, lock, errors = [], threading.Lock(), [0]


def worker(w):
    t = tenants[w % len(tenants)]
    auth = "Basic " + base64.b64encode(f"u@{t}:{password}".encode()).decode()
    c = http.client.HTTPConnection("127.0.0.1", ports[w % len(ports)], timeout=120)
    for i in range(w, uploads, clients):
        body = os.urandom(size)
        s = time.perf_counter()
        c.request("PUT", f"/dav/{t}/u/{tag}-{i}.bin", body, {"Authorization": auth})
        r = c.getresponse()
        r.read()
        d = time.perf_counter() - s
        with lock:
            lat.append(d)
            if r.status not in (201, 204):
                errors[0] += 1


t0 = time.perf_counter()
threads = [threading.Thread(target=worker, args=(w,)) for w in range(clients)]
for x in threads:
    x.start()
for x in threads:
    x.join()
wall = time.perf_counter() - t0
lat.sort()
q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] * 1000
print(
    f"{len(lat)} PUTs, {errors[0]} errors, p50 {q(0.5):.1f} ms, p99 {q(0.99):.1f} ms, "
    f"{len(lat) / wall:.0f} uploads/s, {len(lat) * size / wall / 1e6:.1f} MB/s",
    flush=True,
)
