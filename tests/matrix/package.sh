#!/usr/bin/env bash
# The Debian package for this root's Kea: packaging/check-deb.sh (build with
# cargo-deb, lintian clean, install, the installed library loaded by Kea from
# the packaged example, remove, purge leaves nothing), run inside the suite's
# root by tests/kea-matrix.sh.
#
# Stopgap while the packaging knows only Kea 2.2.0: when build-deb.sh refuses
# this root's Kea (Cargo.toml's single `depends` names 2.2.0), check-deb.sh
# runs unchanged from a scratch copy of the repository whose Cargo.toml
# depends on this root's upstream Kea version instead, and whose
# build-deb.sh reads config.h's VERSION (Kea 3.0's PACKAGE_VERSION is
# unquoted). It says so on its first line. As soon as the packaging builds
# for this Kea by itself, the copy is not used.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)

pkg=kea-hook-bmc-discovery
say() { echo "package: $*" >&2; }
# The root is the matrix's own and kept between runs: a run killed halfway
# through check-deb.sh may have left the package installed, which
# check-deb.sh refuses.
if dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q 'installed\|config-files'; then
  say "purging $pkg left by an interrupted run"
  apt-get purge -y -qq "$pkg" >/dev/null
fi
kea=$(sed -n 's/^#define VERSION "\(.*\)"$/\1/p' /usr/include/kea/config.h)
say "kea-dhcp4-server $(dpkg-query -W -f '${Version}' kea-dhcp4-server) (headers: Kea $kea), $(cargo-deb --version)"

refusal=$(bash packaging/build-deb.sh --help 2>&1 >/dev/null | grep '^build-deb: the package depends on Kea' || true)
if [[ -z "$refusal" ]]; then
  exec bash packaging/check-deb.sh
fi

say "STOPGAP: $refusal"
say "STOPGAP: checking the package from a copy whose Cargo.toml depends on Kea $kea"
copy=$(mktemp -d /tmp/package-src.XXXXXX)
tar -C "$repo" --exclude=./target -cf - . | tar -C "$copy" -xf -
# The same target dir: only this crate is compiled again (its path differs).
ln -s "$repo/target" "$copy/target"
next=$(awk -F. '{printf "%s.%s.%d", $1, $2, $3 + 1}' <<<"$kea")
sed -i "s/^depends = .*/depends = \"\$auto, kea-dhcp4-server (>= $kea), kea-dhcp4-server (<< $next~)\"/" "$copy/Cargo.toml"
sed -i 's/#define PACKAGE_VERSION /#define VERSION /' "$copy/packaging/build-deb.sh"
grep -n '^depends' "$copy/Cargo.toml" >&2
grep -n 'define VERSION' "$copy/packaging/build-deb.sh" >&2 || { say "FAIL: could not point build-deb.sh at VERSION"; exit 1; }
cd "$copy"
exec bash packaging/check-deb.sh
