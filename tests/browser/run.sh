#!/usr/bin/env bash
# Browser tests of the vpcd dashboard: installs Debian's chromium and the npm dependencies when missing, starts vpcd
# from $VPCD_BUILD_DIR with a temporary state dir on 127.0.0.1:0 (the bound port read back from STATE/listen-url),
# creates an admin and a viewer token, runs the unit tests of the dashboard's JS modules and the end-to-end test with
# `node --test`, then stops vpcd.
# Screenshots go to $VPCD_SCREENSHOT_DIR (default: SOURCE/artifacts/screenshots). Exits non-zero on failure.
# Needs root (the test creates network namespaces). Usage: tests/browser/run.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${VPCD_SOURCE_DIR:-$(cd "$here/../.." && pwd)}
build=${VPCD_BUILD_DIR:-$src/build}
export VPCD_SCREENSHOT_DIR=${VPCD_SCREENSHOT_DIR:-$src/artifacts/screenshots}

[ "$(id -u)" = 0 ] || { echo "run.sh: run as root (the test creates network namespaces)" >&2; exit 1; }
[ -x "$build/vpcd" ] || { echo "run.sh: $build/vpcd not found: build it first (ninja -C build vpcd)" >&2; exit 1; }

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
for p in iproute2 iputils-ping curl; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "run.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ! -f "$here/node_modules/playwright-core/package.json" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi

state=$(mktemp -d /tmp/vpcd-browser-XXXXXX)
vpcd_pid=
cleanup() {
  if [ -n "$vpcd_pid" ] && kill -0 "$vpcd_pid" 2>/dev/null; then
    kill -TERM "$vpcd_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$vpcd_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$vpcd_pid" 2>/dev/null || true
    wait "$vpcd_pid" 2>/dev/null || true
  fi
  # vpcd keeps its run dir (/run/vpcd/INSTANCE: the markers of what it created) for its next start; this one was
  # for this temporary state dir only. The instance name is in vpcd's first log line (as tests/lib/vpcdtest.py reads it).
  local inst
  inst=$(grep -o -m1 'instance [0-9a-f]*' "$state/vpcd.log" 2>/dev/null | cut -d' ' -f2 || true)
  if [ -n "$inst" ]; then rm -rf "/run/vpcd/$inst"; fi
  rm -rf "$state"
}
trap cleanup EXIT

admin=$("$build/vpcd" token create --state-dir "$state" --role admin)
viewer=$("$build/vpcd" token create --state-dir "$state" --role viewer)
# The test makes its guest namespaces itself (bt<pid>a, bt<pid>b) so it can remove them whatever happens; vpcd uses
# a namespace it did not create only when the config allows it (netns-allow), and then leaves its routes alone.
printf 'netns-allow = bt*\n' >"$state/vpcd.conf"
"$build/vpcd" --config "$state/vpcd.conf" --state-dir "$state" --listen "127.0.0.1:0" --web-root "$src/web" \
  --workers 1 >"$state/vpcd.log" 2>&1 &
vpcd_pid=$!

# Port 0: the kernel picks a free port and vpcd writes the URL it bound to STATE/listen-url.
for _ in $(seq 300); do
  [ -s "$state/listen-url" ] && break
  kill -0 "$vpcd_pid" 2>/dev/null || { echo "run.sh: vpcd exited:" >&2; cat "$state/vpcd.log" >&2; exit 1; }
  sleep 0.1
done
url=$(cat "$state/listen-url" 2>/dev/null || true)
[ -n "$url" ] || { echo "run.sh: vpcd did not write $state/listen-url" >&2; cat "$state/vpcd.log" >&2; exit 1; }
for _ in $(seq 150); do
  curl -skf --max-time 1 "$url/v1/health" >/dev/null 2>&1 && break
  kill -0 "$vpcd_pid" 2>/dev/null || { echo "run.sh: vpcd exited:" >&2; cat "$state/vpcd.log" >&2; exit 1; }
  sleep 0.2
done
curl -skf --max-time 2 "$url/v1/health" >/dev/null || { echo "run.sh: vpcd did not answer" >&2; cat "$state/vpcd.log" >&2; exit 1; }

rc=0
(cd "$here" && VPCD_URL="$url" VPCD_ADMIN_TOKEN="$admin" VPCD_VIEWER_TOKEN="$viewer" \
  node --test --test-reporter=spec unit/ e2e/) || rc=$?
if [ "$rc" != 0 ]; then
  echo "run.sh: tests failed; vpcd log:" >&2
  tail -n 60 "$state/vpcd.log" >&2
fi
exit "$rc"
