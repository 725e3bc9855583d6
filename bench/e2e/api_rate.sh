#!/usr/bin/env bash
# REST throughput over HTTPS keep-alive with wrk (Debian wrk), load generator on the same machine:
#   GET /v1/vpcs/ID and POST /v1/vpcs (creates; each a committed SQLite transaction + reconcile notify).
# Usage (root): bench/e2e/api_rate.sh [BUILD_DIR] [SECONDS]
set -euo pipefail
build=$(realpath "${1:-build}")
secs=${2:-10}
command -v wrk >/dev/null || { echo "api_rate.sh: wrk missing: scripts/install-deps.sh bench" >&2; exit 1; }
state=$(mktemp -d /tmp/vpcd-apirate-XXXXXX)
token=$("$build/vpcd" token create --state-dir "$state" --role admin)
"$build/vpcd" --state-dir "$state" --listen "127.0.0.1:0" --workers 1 --log-level warn >"$state/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$state"' EXIT
# vpcd writes the URL it bound (port 0: the kernel's choice) to STATE/listen-url once it listens.
for _ in $(seq 300); do [ -s "$state/listen-url" ] && break; kill -0 $pid || { cat "$state/log" >&2; exit 1; }; sleep 0.1; done
port=$(sed -n 's|^https://127\.0\.0\.1:\([0-9]*\)$|\1|p' "$state/listen-url")
[ -n "$port" ] || { echo "api_rate.sh: vpcd did not say its port" >&2; cat "$state/log" >&2; exit 1; }
for _ in $(seq 100); do curl -sk "https://127.0.0.1:$port/v1/health" >/dev/null && break; sleep 0.1; done
id=$(curl -sk -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d '{"cidrs":["10.0.0.0/16"]}' "https://127.0.0.1:$port/v1/vpcs" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
cat >"$state/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"cidrs":["10.1.0.0/16"]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
LUA
cat >"$state/get.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $token"
LUA
echo "GET /v1/vpcs/ID:"
wrk -t2 -c32 -d"${secs}s" -s "$state/get.lua" "https://127.0.0.1:$port/v1/vpcs/$id" | grep -E "Requests/sec|Latency|Non-2xx"
echo "POST /v1/vpcs:"
wrk -t2 -c32 -d"${secs}s" -s "$state/post.lua" "https://127.0.0.1:$port/v1/vpcs" | grep -E "Requests/sec|Latency|Non-2xx"
