#!/usr/bin/env bash
# The Debian package for this root's Kea: packaging/check-deb.sh (build-deb.sh
# picks the suite's cargo-deb variant from the Kea headers; lintian clean on
# this suite's lintian, install, the installed library loaded by Kea from the
# packaged examples, remove, purge leaves nothing), run inside the suite's
# root by tests/kea-matrix.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."

pkg=kea-hook-bmc-discovery
# The root is the matrix's own and kept between runs: a run killed halfway
# through check-deb.sh may have left the package installed, which
# check-deb.sh refuses.
if dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q 'installed\|config-files'; then
  echo "package: purging $pkg left by an interrupted run" >&2
  apt-get purge -y -qq "$pkg" >/dev/null
fi
echo "package: kea-dhcp4-server $(dpkg-query -W -f '${Version}' kea-dhcp4-server), $(cargo-deb --version)" >&2
exec bash packaging/check-deb.sh
