#!/usr/bin/env bash
# Builds the vpcd Debian package (and its -dbgsym) from this checkout into dist/.
# Usage: packaging/build-deb.sh [OUTDIR]
# VPCD_PREBUILT=DIR (absolute): package the binaries of that already built cmake tree instead of compiling (CI:
# scripts/test.sh; see packaging/README.md and debian/rules).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-$src/dist}")
bash "$src/scripts/install-deps.sh" build
export DEBIAN_FRONTEND=noninteractive
need=()
for p in debhelper dpkg-dev lintian fakeroot; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
((${#need[@]})) && { apt-get update -qq; apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }

work=$(mktemp -d /tmp/vpcd-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
tree="$work/vpcd"
mkdir -p "$tree" "$out"
# A clean tree: the files git tracks (plus untracked, not ignored ones), never build directories.
(cd "$src" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$tree" 2>/dev/null) || \
  (cd "$src" && tar --exclude='./build*' --exclude=./dist --exclude=./.git -cf - . | tar -C "$tree" -xf -)
cp -r "$src/packaging/debian" "$tree/debian"
if [ -n "${VPCD_PREBUILT:-}" ]; then
  case $VPCD_PREBUILT in /*) ;; *) echo "build-deb.sh: VPCD_PREBUILT must be an absolute path" >&2; exit 1 ;; esac
  echo "build-deb.sh: packaging the binaries of $VPCD_PREBUILT (no compile)"
fi
(cd "$tree" && dpkg-buildpackage -b -uc -us -j"$(nproc)" >"$work/build.log" 2>&1) || {
  tail -60 "$work/build.log" >&2; echo "build-deb.sh: dpkg-buildpackage failed" >&2; exit 1; }
cp "$work"/*.deb "$work"/*.buildinfo "$work"/*.changes "$out"/ 2>/dev/null || true
ls -1 "$out"/*.deb
