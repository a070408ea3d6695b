#!/usr/bin/env bash
# Builds target/debian/kea-hook-bmc-discovery_<version>_amd64.deb with
# cargo-deb (tests/setup.sh installs it). Refuses when the Kea headers this
# build compiles against are not the Kea version the package depends on
# (Cargo.toml, [package.metadata.deb] depends): Kea would refuse the hook.
set -euo pipefail
cd "$(dirname "$0")/.."

arch=$(dpkg --print-architecture)
if [[ "$arch" != amd64 ]]; then
  echo "build-deb: the package's paths are amd64's (x86_64-linux-gnu); this is $arch:" \
       "change the hooks path in Cargo.toml's [package.metadata.deb] assets" >&2
  exit 1
fi
declared=$(sed -n 's/^depends = .*kea-dhcp4-server (>= \([0-9][0-9.]*\)).*/\1/p' Cargo.toml)
headers=$(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"$/\1/p' /usr/include/kea/config.h 2>/dev/null || true)
if [[ -z "$declared" || "$declared" != "$headers" ]]; then
  echo "build-deb: the package depends on Kea '${declared:-?}' but the headers in" \
       "/usr/include/kea are Kea '${headers:-missing}'; build against kea-dev $declared," \
       "or change 'depends' in Cargo.toml to the Kea you build for" >&2
  exit 1
fi
# Stripped: panics unwind without debug info, and the package is 4x smaller.
exec cargo deb --locked --strip "$@"
