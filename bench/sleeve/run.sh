#!/usr/bin/env bash
# Sleeve data plane versus the kernel: container-to-container throughput, packet rate, latency
# and router cost between two simulated hosts, for weft's sleeve (plain and encrypted) and two
# baselines built in the same run (kernel VXLAN between the same lab hosts, a bare veth pair).
#
# Run as root from anywhere:
#   bench/sleeve/run.sh [--json PATH] [--time SECS] [--configs LIST]
#     --json PATH     also write the raw results (every number, iperf3 summaries) as JSON
#     --time SECS     duration of each iperf3 run (default 5)
#     --configs LIST  comma-separated subset of: sleeve,sleeve-enc,vxlan,vxlan-64k,veth
#                     (default: all; vxlan is the reference the ratios are computed against)
#
# Everything happens in namespaces named bslx-*: the weft-lab lab "bslx" (bslx-ul, bslx-h1,
# bslx-h2, bslx-h1-c1, bslx-h2-c2) and bslx-veth-a/b. Underlay 198.18.0.0/24, overlay
# 10.32.0.0/12 only inside the test namespaces; the root namespace is never changed.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

JSON_OUT=""
T=5
CONFIGS="sleeve,sleeve-enc,vxlan,vxlan-64k,veth"
while [ $# -gt 0 ]; do
  case $1 in
    --json) JSON_OUT=$2; shift 2 ;;
    --time) T=$2; shift 2 ;;
    --configs) CONFIGS=$2; shift 2 ;;
    -h|--help) sed -n 2,15p "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "run as root (network namespaces)" >&2; exit 1; }
for tool in iperf3 python3 ip ping timeout; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
case $JSON_OUT in ""|/*) ;; *) JSON_OUT=$ROOT/$JSON_OUT ;; esac

echo "building weft and weft-lab (release)..." >&2
if ! build_log=$(cargo build --release --locked --bin weft --bin weft-lab 2>&1); then
  echo "$build_log" >&2; exit 1
fi
WEFT=$ROOT/target/release/weft
LAB_BIN=$ROOT/target/release/weft-lab
PREFIX=bslx
lab() { "$LAB_BIN" --prefix "$PREFIX" "$@"; }
VETH_A=$PREFIX-veth-a
VETH_B=$PREFIX-veth-b
PASSWORD=bench-sleeve-password
CLK_TCK=$(getconf CLK_TCK)
RES=$(mktemp -d /tmp/bslx-results.XXXXXX)

# Remove every namespace (and the processes in it) this script may have made.
cleanup_all() {
  lab down >/dev/null 2>&1 || true
  for ns in "$VETH_A" "$VETH_B"; do
    if ip netns list | grep -qw "$ns"; then
      for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
      ip netns del "$ns" 2>/dev/null || true
    fi
  done
}
on_exit() {
  local rc=$?
  cleanup_all
  rm -rf "$RES"
  exit $rc
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# Set-ups. Each sets CNS (client namespace), SNS (server namespace), SIP (server overlay
# address), ROUTER_PIDS (router processes, empty for kernel baselines), DEV (client device).

setup_weft() {  # $1 = "" or the password
  lab up --hosts 2 >/dev/null
  lab container add h1 c1 >/dev/null
  lab container add h2 c2 >/dev/null
  local pw=()
  [ -n "$1" ] && pw=(--password "$1")
  lab exec h1 -- "$WEFT" launch "${pw[@]}" >/dev/null
  lab exec h2 -- "$WEFT" launch "${pw[@]}" 198.18.0.1 >/dev/null
  lab exec h1 -- "$WEFT" attach 10.32.0.1/12 "netns:$PREFIX-h1-c1" >/dev/null
  lab exec h2 -- "$WEFT" attach 10.32.0.2/12 "netns:$PREFIX-h2-c2" >/dev/null
  local deadline=$(( $(date +%s) + 30 ))
  until lab exec h1 -- "$WEFT" status connections 2>/dev/null | grep -q ' established '; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "connection not established after 30 s" >&2; return 1; }
    sleep 0.2
  done
  CNS=$PREFIX-h1-c1; SNS=$PREFIX-h2-c2; SIP=10.32.0.2; DEV=ethwe
  ROUTER_PIDS="$(cat "/run/weft-lab/$PREFIX/h1/run/weft.pid") $(cat "/run/weft-lab/$PREFIX/h2/run/weft.pid")"
}

# Kernel VXLAN between the lab hosts: vxlan42 (over eth0, UDP 4789) + bridge in each host
# namespace, a veth into each container namespace. $1 = inner MTU ("" = kernel default 1450,
# bound to eth0; otherwise not bound to eth0 so the MTU may exceed the underlay's and the
# kernel fragments the outer UDP datagrams, as weft's sleeve does).
setup_vxlan() {
  lab up --hosts 2 >/dev/null
  lab container add h1 c1 >/dev/null
  lab container add h2 c2 >/dev/null
  local i j hns cns
  for i in 1 2; do
    j=$((3 - i)); hns=$PREFIX-h$i; cns=$PREFIX-h$i-c$i
    if [ -z "$1" ]; then
      ip -n "$hns" link add vxlan42 type vxlan id 42 dstport 4789 local "198.18.0.$i" remote "198.18.0.$j" dev eth0
    else
      ip -n "$hns" link add vxlan42 type vxlan id 42 dstport 4789 local "198.18.0.$i" remote "198.18.0.$j"
      ip -n "$hns" link set vxlan42 mtu "$1"
    fi
    local mtu; mtu=$(ip -n "$hns" -o link show vxlan42 | sed -n 's/.* mtu \([0-9]*\).*/\1/p')
    ip -n "$hns" link add br42 type bridge
    ip -n "$hns" link set br42 mtu "$mtu"
    ip -n "$hns" link add vethc type veth peer name eth0 netns "$cns"
    ip -n "$hns" link set vethc mtu "$mtu"
    ip -n "$cns" link set eth0 mtu "$mtu"
    ip -n "$hns" link set vxlan42 master br42
    ip -n "$hns" link set vethc master br42
    ip -n "$hns" link set vxlan42 up
    ip -n "$hns" link set vethc up
    ip -n "$hns" link set br42 up
    ip -n "$cns" addr add "10.32.0.$i/12" dev eth0
    ip -n "$cns" link set eth0 up
  done
  CNS=$PREFIX-h1-c1; SNS=$PREFIX-h2-c2; SIP=10.32.0.2; DEV=eth0; ROUTER_PIDS=""
}

setup_veth() {
  ip netns add "$VETH_A"
  ip netns add "$VETH_B"
  ip -n "$VETH_A" link set lo up
  ip -n "$VETH_B" link set lo up
  ip -n "$VETH_A" link add eth0 type veth peer name eth0 netns "$VETH_B"
  ip -n "$VETH_A" addr add 10.32.0.1/12 dev eth0
  ip -n "$VETH_B" addr add 10.32.0.2/12 dev eth0
  ip -n "$VETH_A" link set eth0 up
  ip -n "$VETH_B" link set eth0 up
  CNS=$VETH_A; SNS=$VETH_B; SIP=10.32.0.2; DEV=eth0; ROUTER_PIDS=""
}

# ---------------------------------------------------------------------------------------------
# Measurements. Each writes $OUT/<name>.json; a failed one writes $OUT/<name>.err instead.

# Sum of utime+stime (seconds) of the given processes.
cpu_seconds() {
  local total=0 p t
  for p in "$@"; do
    # fields after "(comm)": state=3 ... utime=14 stime=15 (comm is "weft", no spaces)
    t=$(awk '{print $14 + $15}' "/proc/$p/stat")
    total=$((total + t))
  done
  python3 -c "print($total / $CLK_TCK)"
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
rss_json() {  # -> [kB of each router]
  local out="[" sep="" p
  for p in $ROUTER_PIDS; do out+="$sep$(rss_kb "$p")"; sep=","; done
  echo "$out]"
}

# iperf3 NAME ARGS...: one-shot server in SNS, client in CNS, client JSON to $OUT/NAME.json.
run_iperf() {
  local name=$1; shift
  ip netns exec "$SNS" timeout $((T + 30)) iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
  local srv=$!
  local i
  for i in $(seq 50); do
    ip netns exec "$SNS" ss -Hltn 'sport = :5201' 2>/dev/null | grep -q . && break
    sleep 0.1
  done
  local rc=0
  ip netns exec "$CNS" timeout $((T + 20)) iperf3 -c "$SIP" -p 5201 -t "$T" -J "$@" \
    >"$OUT/$name.raw" 2>"$OUT/$name.stderr" || rc=$?
  kill "$srv" 2>/dev/null || true
  wait "$srv" 2>/dev/null || true
  if [ $rc -ne 0 ] || ! python3 - "$OUT/$name.raw" "$OUT/$name.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
if "error" in d:
    sys.exit(d["error"])
json.dump({"end": d["end"], "start": d.get("start", {}).get("test_start", {})}, open(sys.argv[2], "w"))
EOF
  then
    local why
    why=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("error",""))' "$OUT/$name.raw" 2>/dev/null || true)
    [ -n "$why" ] || why=$(tail -c 300 "$OUT/$name.stderr")
    [ $rc -eq 124 ] && why="timed out after $((T + 20)) s${why:+: $why}"
    echo "iperf3 $* failed (exit $rc): $why" >"$OUT/$name.err"
    sleep 1   # let a stuck server's port go before the next test
  fi
  rm -f "$OUT/$name.raw"
}

run_ping() {
  local rc=0
  ip netns exec "$CNS" timeout 20 ping -n -q -c 20 -i 0.05 -W 1 "$SIP" >"$OUT/ping.txt" 2>&1 || rc=$?
  if ! python3 - "$OUT/ping.txt" "$OUT/ping.json" <<'EOF'
import json, re, sys
t = open(sys.argv[1]).read()
m = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms", t)
l = re.search(r"(\d+) packets transmitted, (\d+) received", t)
if not m:
    sys.exit(1)
json.dump({"min_ms": float(m[1]), "avg_ms": float(m[2]), "max_ms": float(m[3]), "mdev_ms": float(m[4]),
           "sent": int(l[1]), "received": int(l[2])}, open(sys.argv[2], "w"))
EOF
  then
    echo "ping failed (exit $rc): $(tail -n 2 "$OUT/ping.txt" | tr '\n' ' ')" >"$OUT/ping.err"
  fi
}

# One configuration, in a subshell (set -e active): set up, measure, tear down.
run_config() {
  local cfg=$1
  OUT=$RES/$cfg
  mkdir -p "$OUT"
  cleanup_all
  case $cfg in
    sleeve) setup_weft "" ;;
    sleeve-enc) setup_weft "$PASSWORD" ;;
    vxlan) setup_vxlan "" ;;
    vxlan-64k) setup_vxlan 65449 ;;
    veth) setup_veth ;;
    *) echo "unknown configuration $cfg" >&2; return 1 ;;
  esac
  # connectivity (also resolves ARP) before anything is measured
  local ok=""
  for _ in $(seq 20); do
    if ip netns exec "$CNS" timeout 3 ping -n -q -c 1 -W 1 "$SIP" >/dev/null 2>&1; then ok=1; break; fi
    sleep 0.5
  done
  [ -n "$ok" ] || { echo "no connectivity: $CNS cannot ping $SIP" >&2; return 1; }
  local mtu; mtu=$(ip -n "$CNS" -o link show "$DEV" | sed -n 's/.* mtu \([0-9]*\).*/\1/p')
  sleep 1
  local rss_idle="[]"; [ -n "$ROUTER_PIDS" ] && rss_idle=$(rss_json)

  run_ping
  local cpu0="" t0 t1 cpu1=""
  # shellcheck disable=SC2086
  [ -n "$ROUTER_PIDS" ] && cpu0=$(cpu_seconds $ROUTER_PIDS)
  t0=$(date +%s.%N)
  run_iperf tcp1
  run_iperf tcp4 -P 4
  t1=$(date +%s.%N)
  # shellcheck disable=SC2086
  [ -n "$ROUTER_PIDS" ] && cpu1=$(cpu_seconds $ROUTER_PIDS)
  run_iperf udp1400 -u -b 0 -l 1400
  run_iperf udp64 -u -b 0 -l 64
  local rss_load="[]"; [ -n "$ROUTER_PIDS" ] && rss_load=$(rss_json)

  python3 - "$OUT/meta.json" <<EOF
import json, sys
json.dump({"mtu": int("$mtu" or 0), "router_pids": "$ROUTER_PIDS".split(),
           "rss_idle_kb": $rss_idle, "rss_after_load_kb": $rss_load,
           "tcp_wall_s": $t1 - $t0,
           "tcp_cpu_s": (${cpu1:-0} - ${cpu0:-0}) if "$cpu0" else None}, open(sys.argv[1], "w"))
EOF
  cleanup_all
}

DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
IFS=, read -r -a cfgs <<<"$CONFIGS"
for cfg in "${cfgs[@]}"; do
  echo "== $cfg" >&2
  set +e
  ( set -e; run_config "$cfg" ) 2>"$RES/$cfg.log"
  rc=$?
  set -e
  if [ $rc -ne 0 ]; then
    mkdir -p "$RES/$cfg"
    { echo "set-up or measurement failed (exit $rc):"; tail -n 5 "$RES/$cfg.log"; } >"$RES/$cfg/failed.txt"
    cat "$RES/$cfg/failed.txt" >&2
  fi
  for e in "$RES/$cfg"/*.err; do [ -e "$e" ] && cat "$e" >&2; done
done

# ---------------------------------------------------------------------------------------------
# Report: Markdown table on stdout, everything as JSON to --json.
python3 - "$RES" "$CONFIGS" "$DATE" "$(nproc)" "$(uname -r)" "$(iperf3 --version | head -n 1)" \
  "$T" "$JSON_OUT" <<'EOF'
import json, os, sys
res, configs, date, nproc, kernel, iperf_version, secs, json_out = sys.argv[1:]
configs = configs.split(",")
LABEL = {
    "sleeve": "weft sleeve",
    "sleeve-enc": "weft sleeve, --password",
    "vxlan": "kernel VXLAN (reference)",
    "vxlan-64k": "kernel VXLAN, MTU 65449",
    "veth": "direct veth",
}

def load(path):
    try:
        with open(path) as f:
            return f.read() if path.endswith((".err", ".txt")) else json.load(f)
    except OSError:
        return None

def tcp(j, streams):
    s = j["end"]["sum_received"]
    return {"streams": streams, "gbit_s": s["bits_per_second"] / 1e9,
            "retransmits": j["end"]["sum_sent"].get("retransmits")}

def udp(j, length):
    sent, recv = j["end"]["sum_sent"], j["end"]["sum_received"]
    secs_r = recv["seconds"] or 1
    rx_pkts = recv["bytes"] / length
    return {"len": length, "sent_mbit_s": sent["bits_per_second"] / 1e6,
            "sent_kpps": sent["packets"] / (sent["seconds"] or 1) / 1e3,
            "recv_mbit_s": recv["bytes"] * 8 / secs_r / 1e6, "recv_kpps": rx_pkts / secs_r / 1e3,
            "loss_pct": recv.get("lost_percent", sent.get("lost_percent"))}

results = {}
for c in configs:
    d = os.path.join(res, c)
    r = {"label": LABEL.get(c, c), "ok": True, "errors": {}}
    failed = load(os.path.join(d, "failed.txt"))
    if failed is not None:
        r["ok"] = False
        r["errors"]["setup"] = failed.strip()
    meta = load(os.path.join(d, "meta.json")) or {}
    r.update(meta)
    for name, fn in (("tcp1", lambda j: tcp(j, 1)), ("tcp4", lambda j: tcp(j, 4)),
                     ("udp1400", lambda j: udp(j, 1400)), ("udp64", lambda j: udp(j, 64))):
        j = load(os.path.join(d, name + ".json"))
        err = load(os.path.join(d, name + ".err"))
        if j is not None:
            try:
                r[name] = fn(j)
            except (KeyError, TypeError, ZeroDivisionError) as e:
                r["errors"][name] = "unexpected iperf3 JSON: %r" % e
        elif err is not None:
            r["errors"][name] = err.strip()
    p = load(os.path.join(d, "ping.json"))
    if p is not None:
        r["ping"] = p
    elif load(os.path.join(d, "ping.err")) is not None:
        r["errors"]["ping"] = load(os.path.join(d, "ping.err")).strip()
    results[c] = r

ref = results.get("vxlan", {})

def ratio(v, rv):
    return " (%.2f×)" % (v / rv) if rv else ""

def get(r, *path):
    for p in path:
        if not isinstance(r, dict) or p not in r:
            return None
        r = r[p]
    return r

def cell(c, r, *path, fmt="%.2f", ref_ok=True):
    v = get(r, *path)
    if v is None:
        return "FAIL" if path[0] in r.get("errors", {}) or not r["ok"] else "–"
    rv = get(ref, *path) if ref_ok and c != "vxlan" else None
    return (fmt % v) + (ratio(v, rv) if rv else "")

def udp_cell(c, r, k):
    u = r.get(k)
    if u is None:
        return "FAIL" if k in r.get("errors", {}) or not r["ok"] else "–"
    rv = get(ref, k, "recv_mbit_s") if c != "vxlan" else None
    return "%.0f%s / %.0f / %.0f%%" % (u["recv_mbit_s"], ratio(u["recv_mbit_s"], rv) if rv else "",
                                        u["recv_kpps"], u["loss_pct"] or 0)

def mb(kbs):
    return " / ".join("%.1f" % (k / 1024) for k in kbs) if kbs else "–"

print()
print("%s, nproc %s, kernel %s, %s, %s s per iperf3 run" % (date, nproc, kernel, iperf_version, secs))
print()
print("| configuration | MTU | TCP 1 stream Gbit/s | TCP 4 streams Gbit/s | UDP 1400 B: Mbit/s / kpps / loss "
      "| UDP 64 B: Mbit/s / kpps / loss | ping avg ms | router CPU s in TCP tests (h1+h2) "
      "| router RSS idle MB (h1 / h2) | router RSS after load MB |")
print("|---|---|---|---|---|---|---|---|---|---|")
for c, r in results.items():
    if not r["ok"] and not any(k in r for k in ("tcp1", "tcp4", "udp1400", "udp64", "ping")):
        reason = r["errors"]["setup"].replace("\n", " ").replace("|", "\\|")
        print("| %s | FAILED: %s |||||||||" % (r["label"], reason[:200]))
        continue
    cpu = r.get("tcp_cpu_s")
    cpu_s = "%.1f (%.0f%% of %.0f s)" % (cpu, 100 * cpu / r["tcp_wall_s"], r["tcp_wall_s"]) if cpu is not None else "– (kernel)"
    print("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        r["label"], r.get("mtu", "?"),
        cell(c, r, "tcp1", "gbit_s"), cell(c, r, "tcp4", "gbit_s"),
        udp_cell(c, r, "udp1400"), udp_cell(c, r, "udp64"),
        cell(c, r, "ping", "avg_ms", fmt="%.3f"),
        cpu_s, mb(r.get("rss_idle_kb")), mb(r.get("rss_after_load_kb"))))

errs = [(r["label"], k, v) for r in results.values() for k, v in r["errors"].items()]
if errs:
    print()
    print("Failures:")
    for label, k, v in errs:
        print("- %s, %s: %s" % (label, k, v.replace("\n", " ")))

# the issue's targets
print()
targets = []
def target(name, ok, detail):
    targets.append({"target": name, "met": ok, "detail": detail})
    print("- %s: %s (%s)" % (name, "n/a" if ok is None else ("met" if ok else "NOT met"), detail))
rt = get(ref, "tcp1", "gbit_s")
for c, share, name in (("sleeve", 0.50, "unencrypted sleeve TCP ≥ 50% of kernel VXLAN"),
                       ("sleeve-enc", 0.35, "encrypted sleeve TCP ≥ 35% of kernel VXLAN")):
    v = get(results.get(c, {}), "tcp1", "gbit_s")
    v4, rt4 = get(results.get(c, {}), "tcp4", "gbit_s"), get(ref, "tcp4", "gbit_s")
    if v is None or not rt:
        target(name, None, "missing measurement")
    else:
        q4 = " / 4 streams %.0f%%" % (100 * v4 / rt4) if v4 is not None and rt4 else ""
        ok = v / rt >= share and (v4 is None or not rt4 or v4 / rt4 >= share)
        target(name, ok, "1 stream %.0f%%%s" % (100 * v / rt, q4))
idle = [k for c in ("sleeve", "sleeve-enc") for k in (get(results.get(c, {}), "rss_idle_kb") or [])]
if idle:
    target("idle router RSS ≤ 30 MB", max(idle) <= 30 * 1024, "max %.1f MB" % (max(idle) / 1024))
else:
    target("idle router RSS ≤ 30 MB", None, "missing measurement")

if json_out:
    with open(json_out, "w") as f:
        json.dump({"date": date, "nproc": int(nproc), "kernel": kernel, "iperf3": iperf_version,
                   "seconds_per_run": float(secs), "reference": "vxlan", "configs": results,
                   "targets": targets}, f, indent=2)
    print("\nraw results: %s" % json_out, file=sys.stderr)
EOF
