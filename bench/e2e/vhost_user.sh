#!/usr/bin/env bash
# vhost-user throughput, 64-byte frames, one run: (1) dpdk-testpmd txonly (virtio-user) straight into dpdk-testpmd
# rxonly (its net_vhost back-end): the ceiling; (2) testpmd txonly into a vpcd vhost-user NIC, switched by vpcd (one
# worker) to a second vhost-user NIC of the same VPC, into testpmd rxonly. Reports the receiver's average Rx-pps over
# the last seconds of each and the ratio (target: vpcd >= 50% of direct). On a busy 2-core machine the three busy
# pollers share two cores: the figures are lower bounds.
# Usage (root): bench/e2e/vhost_user.sh [BUILD_DIR] [SECONDS]
# RX_MAIN_LCORE=0 puts the receiving testpmd's forwarding lcore on CPU 1 with the sender's (default: CPU 0), leaving
# CPU 0 to vpcd's worker on a 2-core machine: then vpcd's input rate shows what it can take in.
# With PERF_OUT=FILE, vpcd is profiled during the through-vpcd run (perf record -e cpu-clock -g: no PMU needed);
# read it with perf report -i FILE --no-children. With STATS_OUT=FILE, vpcd's GET /v1/stats after that run.
set -euo pipefail
build=$(realpath "${1:-build}")
secs=${2:-8}
[ -z "${PERF_OUT:-}" ] || command -v perf >/dev/null ||
  { echo "vhost_user.sh: PERF_OUT needs perf: scripts/install-deps.sh bench" >&2; exit 1; }
command -v dpdk-testpmd >/dev/null || { echo "vhost_user.sh: dpdk-testpmd missing: scripts/install-deps.sh test" >&2; exit 1; }
w=$(mktemp -d /tmp/vpcd-vhostbench-XXXXXX)
eal="--no-pci --no-huge -m 256 --no-shconf --no-telemetry"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  sleep 1
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  # vpcd keeps its run dir (/run/vpcd/INSTANCE, named in its log) for a restart on the same state: this one is gone.
  local inst
  inst=$(sed -n 's/.*, instance \([0-9a-f][0-9a-f]*\)$/\1/p' "$w/vpcd.log" 2>/dev/null | head -n 1)
  [ -z "$inst" ] || rm -rf "/run/vpcd/$inst"
  rm -rf "$w" /var/run/dpdk/vhb-*
}
trap cleanup EXIT

# Average of the last 3 "Rx-pps:" values testpmd printed for port 0 (stats every second).
rx_pps() { grep -a 'Rx-pps:' "$1" | awk '{print $2}' | tail -n 4 | head -n 3 | awk '{s+=$1; n++} END {printf "%d", n ? s/n : 0}'; }

# (1) direct
timeout -s INT $((secs + 4)) dpdk-testpmd -l 0,1 --main-lcore 0 $eal --file-prefix=vhb-be \
  --vdev "net_vhost0,iface=$w/direct.sock,queues=1" -- --forward-mode=rxonly --stats-period 1 --nb-cores=1 \
  --total-num-mbufs=16384 </dev/null >"$w/direct-rx.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ -S "$w/direct.sock" ] && break; sleep 0.2; done
timeout -s INT $((secs + 2)) dpdk-testpmd -l 1,0 --main-lcore 1 $eal --file-prefix=vhb-fe \
  --vdev "net_virtio_user0,path=$w/direct.sock,queues=1,mac=02:00:00:00:00:01" -- --forward-mode=txonly \
  --txpkts=64 --stats-period 1 --nb-cores=1 --total-num-mbufs=16384 </dev/null >"$w/direct-tx.log" 2>&1 || true
wait "${pids[-1]}" 2>/dev/null || true
direct=$(rx_pps "$w/direct-rx.log")

# (2) through vpcd: two vhost-user NICs (client mode: testpmd listens with server=1)
state="$w/state"
mkdir -p "$state"
port=$((20000 + RANDOM % 20000))
token=$("$build/vpcd" token create --state-dir "$state" --role admin)
"$build/vpcd" --state-dir "$state" --listen "127.0.0.1:$port" --workers 1 >"$w/vpcd.log" 2>&1 &
vpcd=$!
pids+=($vpcd)
api() { curl -sk -H "Authorization: Bearer $token" -H 'Content-Type: application/json' "$@"; }
for _ in $(seq 100); do curl -sk "https://127.0.0.1:$port/v1/health" >/dev/null && break; sleep 0.1; done
vpc=$(api -d '{"cidrs":["10.63.0.0/16"]}' "https://127.0.0.1:$port/v1/vpcs" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
sub=$(api -d "{\"vpc_id\":\"$vpc\",\"cidr\":\"10.63.1.0/24\"}" "https://127.0.0.1:$port/v1/subnets" |
  sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
timeout -s INT $((secs + 15)) dpdk-testpmd -l 0,1 --main-lcore "${RX_MAIN_LCORE:-1}" $eal --file-prefix=vhb-rx \
  --vdev "net_virtio_user0,path=$w/rx.sock,server=1,queues=1,mac=02:63:00:00:00:02" -- --forward-mode=rxonly \
  --stats-period 1 --nb-cores=1 --total-num-mbufs=16384 </dev/null >"$w/vpcd-rx.log" 2>&1 &
pids+=($!)
sleep 1
for n in 1 2; do
  api -d "{\"subnet_id\":\"$sub\",\"ips\":[\"10.63.1.1$n\"],\"mac\":\"02:63:00:00:00:0$n\",
           \"backend\":{\"type\":\"vhost-user\",\"socket\":\"$w/$([ $n = 1 ] && echo tx || echo rx).sock\"}}" \
    "https://127.0.0.1:$port/v1/nics" >/dev/null
done
sleep 2
# CPU ticks (utime + stime) of vpcd's worker threads, and their packet count and the frames dropped for want of
# receive buffers: the through-vpcd figure on a machine with fewer free cores than busy pollers measures the
# scheduler (a descheduled receiver has no buffers), while packets per worker CPU second measure vpcd.
wk_ticks() { local t=0 f; for f in /proc/$vpcd/task/*; do
  grep -q '^vpcd-wk-' "$f/comm" 2>/dev/null && t=$((t + $(awk '{print $14 + $15}' "$f/stat"))); done; echo $t; }
wk_stats() { api "https://127.0.0.1:$port/v1/stats" | python3 -c 'import json,sys; s=json.load(sys.stdin)
print(sum(w["packets"] for w in s["workers"]), s["totals"]["drops"].get("vhost_no_rx_buffers", 0))'; }
ticks0=$(wk_ticks); read -r pk0 nob0 < <(wk_stats)
t0=$(date +%s.%N)
if [ -n "${PERF_OUT:-}" ]; then
  perf record -q -e cpu-clock -g -p "$vpcd" -o "$PERF_OUT" -- sleep "$secs" >/dev/null 2>&1 &
  pids+=($!)
fi
timeout -s INT $((secs + 2)) dpdk-testpmd -l 1,0 --main-lcore 0 $eal --file-prefix=vhb-tx \
  --vdev "net_virtio_user0,path=$w/tx.sock,server=1,queues=1,mac=02:63:00:00:00:01" -- --forward-mode=txonly \
  --txpkts=64 --eth-peer=0,02:63:00:00:00:02 --tx-ip=10.63.1.11,10.63.1.12 --stats-period 1 --nb-cores=1 \
  --total-num-mbufs=16384 </dev/null >"$w/vpcd-tx.log" 2>&1 || true
through=$(rx_pps "$w/vpcd-rx.log")
ticks1=$(wk_ticks); read -r pk1 nob1 < <(wk_stats)
t1=$(date +%s.%N)
# vpcd's own view: worker batches/packets (packets per rx burst) and drops, for reading a profile against.
if [ -n "${STATS_OUT:-}" ]; then api "https://127.0.0.1:$port/v1/stats" >"$STATS_OUT" || true; fi
echo "direct testpmd -> testpmd over vhost-user: ${direct} pps (64 B)"
echo "testpmd -> vpcd (1 worker) -> testpmd:     ${through} pps (64 B)"
awk -v a="$through" -v b="$direct" 'BEGIN { if (b > 0) printf "ratio: %.0f%% of direct\n", 100 * a / b }'
awk -v p=$((pk1 - pk0)) -v t=$((ticks1 - ticks0)) -v hz="$(getconf CLK_TCK)" -v d=$((nob1 - nob0)) \
    -v w0="$t0" -v w1="$t1" 'BEGIN {
  printf "vpcd worker: %d frames in %.1f s (%.2f Mpps taken in, including testpmd start-up) and %.2f CPU s",
         p, w1 - w0, p / (w1 - w0) / 1e6, t / hz
  printf " = %.2f Mpps per worker CPU second; %d (%.0f%%) dropped: receiver had no buffers\n",
         t ? p * hz / t / 1e6 : 0, d, p ? 100 * d / p : 0 }'
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
