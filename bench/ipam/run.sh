#!/usr/bin/env bash
# IPAM allocation latency with real routers in two simulated hosts, through the HTTP API as
# `weft attach` calls it (POST /ip/<id>[/<subnet>]), measured inside h2 by one client:
#   local  - h2 already owns space in the subnet: allocation is local (+ one store commit);
#   remote - each allocation is in a /24 of h1's range that h2 owns nothing of, so h2 must
#            send h1 a space request and wait for the donation (mesh round trip, two commits).
# The ratio remote/local is from the same run. Run as root: bench/ipam/run.sh [N] (default 200)
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-200}
cargo build --release --locked --bin weft --bin weft-lab >/dev/null 2>&1
weft=$PWD/target/release/weft
lab() { "$PWD/target/release/weft-lab" --prefix bipam "$@"; }
trap 'lab down >/dev/null 2>&1 || true' EXIT
lab down >/dev/null 2>&1 || true
lab up --hosts 2 >/dev/null
# seed=h1: the ring starts with h1 owning everything, so h2's first allocation in any subnet
# needs a donation from h1.
seed=--ipalloc-init=seed=00:00:00:00:00:01
lab exec h1 -- "$weft" launch --name 00:00:00:00:00:01 "$seed" >/dev/null
lab exec h2 -- "$weft" launch --name 00:00:00:00:00:02 "$seed" 198.18.0.1 >/dev/null
lab exec h1 -- "$weft" prime
lab exec h2 -- "$weft" prime
cat > /tmp/bipam.py <<'PY'
import json, sys, time, urllib.request as u
mode, n = sys.argv[1], int(sys.argv[2])
def post(path):
    t = time.perf_counter()
    body = u.urlopen(u.Request("http://127.0.0.1:6784" + path, method="POST"), timeout=60).read().decode()
    return time.perf_counter() - t, body
lat = []
for i in range(n):
    if mode == "local":
        # warm: the first one in 10.33.0.0/16 fetches the space, the rest are local
        if i == 0:
            post("/ip/warm/10.33.0.0/16")
        d, body = post("/ip/local-%d/10.33.0.0/16" % i)
    else:
        d, body = post("/ip/remote-%d/10.34.%d.0/24" % (i, i % 256))
    assert body.startswith("10."), body
    lat.append(d * 1e3)
lat.sort()
print(json.dumps({"mode": mode, "n": n, "mean_ms": sum(lat) / n, "p50_ms": lat[n // 2], "p99_ms": lat[min(n - 1, n * 99 // 100)]}))
PY
local_json=$(lab exec h2 -- python3 /tmp/bipam.py local "$N")
remote_n=$(( N < 256 ? N : 256 ))
remote_json=$(lab exec h2 -- python3 /tmp/bipam.py remote "$remote_n")
python3 - "$local_json" "$remote_json" <<'PY'
import json, sys
l, r = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print("| allocation | n | mean ms | p50 ms | p99 ms |")
print("|---|---|---|---|---|")
for x in (l, r):
    print("| %s | %d | %.2f | %.2f | %.2f |" % (x["mode"], x["n"], x["mean_ms"], x["p50_ms"], x["p99_ms"]))
print("remote/local (p50): %.1fx" % (r["p50_ms"] / l["p50_ms"]))
PY
