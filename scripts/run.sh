#!/usr/bin/env bash
# The README's first command: on a fresh Debian 12, as root, installs what vpcd needs to build, builds it (Release),
# creates the first admin token when the state directory has none (printed once, here), and runs vpcd in the
# foreground on its embedded defaults: state in ./state, https://127.0.0.1:8443, the dashboard at /.
#   scripts/run.sh [vpcd flags...]      e.g. scripts/run.sh --listen 127.0.0.1:9443 --workers 1
# Environment: VPCD_STATE_DIR (default ./state, relative to where you run this), BUILD_DIR (default build-release).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
state=${VPCD_STATE_DIR:-$PWD/state}
build=${BUILD_DIR:-$src/build-release}

[ "$(id -u)" = 0 ] || { echo "run.sh: run as root (vpcd creates network namespaces, veth pairs and taps)" >&2; exit 1; }
bash "$src/scripts/install-deps.sh" build

echo "run.sh: building vpcd in $build" >&2
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DVPCD_BENCH=OFF >/dev/null
cmake --build "$build" --target vpcd vpcctl -j "$(nproc)"

mkdir -p "$state"
state=$(cd "$state" && pwd)
token=$("$build/vpcd" token create --state-dir "$state" --role admin --if-none)
if [ -n "$token" ]; then
  cat >&2 <<MSG

  First admin token (shown once; only its hash is stored in $state/vpcd.db):

      $token

  Dashboard: https://127.0.0.1:8443/   (the certificate is self-signed: $state/tls/cert.pem)
  CLI:       VPCD_TOKEN=$token $build/vpcctl --cacert $state/tls/cert.pem vpcs list

MSG
fi

exec "$build/vpcd" --state-dir "$state" "$@"
