#!/usr/bin/env bash
# Builds target/debian/kea-hook-bmc-discovery_<version>-<revision>_amd64.deb
# with cargo-deb (tests/setup.sh installs it) for the Kea this machine
# builds against: the variant of Cargo.toml's [package.metadata.deb.variants]
# whose Kea (its `kea-dhcp4-server (>= X)`) is the VERSION in the Kea headers
# (${KEA_INCLUDE_DIR:-/usr/include/kea}/config.h). Refuses when no variant
# is for that Kea (Kea would refuse the hook), or when the variant belongs to
# another Debian suite than this one. Prints the package's path last.
#
# Then it widens the exact kea-common pin dpkg-shlibdeps puts in on trixie
# and forky to the upstream Kea range of the variant; Cargo.toml says why.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "build-deb: $*" >&2; }
die() {
  echo "build-deb: $*" >&2
  exit 1
}

arch=$(dpkg --print-architecture)
if [[ "$arch" != amd64 ]]; then
  die "the package's paths are amd64's (x86_64-linux-gnu); this is $arch:" \
    "change the hooks path in Cargo.toml's [package.metadata.deb] assets"
fi

include=${KEA_INCLUDE_DIR:-/usr/include/kea}
# VERSION, not PACKAGE_VERSION: Kea 3.0's meson build leaves the latter unquoted.
kea=$(sed -n 's/^#define VERSION "\(.*\)"$/\1/p' "$include/config.h" 2>/dev/null || true)
[[ -n "$kea" ]] || die "no Kea headers: $include/config.h has no VERSION; install kea-dev (tests/setup.sh)"

# variant<TAB>lowest Kea<TAB>upper bound<TAB>revision, from Cargo.toml.
variants=$(awk '
  /^\[package\.metadata\.deb\.variants\./ { name = $0; sub(/^\[package\.metadata\.deb\.variants\./, "", name); sub(/\]$/, "", name); next }
  /^\[/ { name = "" }
  name != "" && /^depends = / {
    lo = $0; sub(/.*kea-dhcp4-server \(>= /, "", lo); sub(/\).*/, "", lo)
    hi = $0; sub(/.*kea-dhcp4-server \(<< /, "", hi); sub(/\).*/, "", hi)
    dep[name] = lo "\t" hi
  }
  name != "" && /^revision = / { rev = $0; sub(/^revision = "/, "", rev); sub(/".*/, "", rev); revision[name] = rev }
  END { for (n in dep) print n "\t" dep[n] "\t" revision[n] }
' Cargo.toml | sort)
line=$(awk -F'\t' -v kea="$kea" '$2 == kea' <<<"$variants")
if [[ -z "$line" ]]; then
  die "no package variant for Kea $kea in Cargo.toml (have: $(awk -F'\t' '{printf "%s%s %s", sep, $1, $2; sep=", "}' <<<"$variants"));" \
    "add [package.metadata.deb.variants.<suite>] for it, or build against one of those"
fi
IFS=$'\t' read -r variant low high revision <<<"$line"
if [[ "$*" == *--variant* ]]; then
  die "the variant is chosen from the Kea headers ($variant for Kea $kea); do not pass --variant"
fi
codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
if [[ -n "$codename" && "${variant%%-*}" != "$codename" ]]; then
  die "Kea $kea's package is the $variant variant, but this is Debian $codename:" \
    "build each suite's package in a root of that suite (tests/kea-matrix.sh)"
fi

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
deb=target/debian/kea-hook-bmc-discovery_${version}-${revision}_${arch}.deb
mkdir -p target/debian
say "Kea $kea: variant $variant, $deb"
# Stripped: panics unwind without debug info, and the package is 4x smaller.
cargo deb --locked --strip --variant "$variant" --output "$deb" "$@" >/dev/null

# kea-common: whatever $auto said (= 2.6.3-1+deb13u1, or >= 2.2.0) becomes
# the variant's upstream range.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb -R "$deb" "$work/pkg"
range="kea-common (>= $low), kea-common (<< $high)"
sed -i -E "/^Depends:/ s/kea-common \([^)]*\)/$range/" "$work/pkg/DEBIAN/control"
depends=$(sed -n 's/^Depends: //p' "$work/pkg/DEBIAN/control")
[[ "$depends" == *"$range"* && "$depends" != *"kea-common (="* ]] ||
  die "could not set kea-common to the upstream range in Depends: $depends"
dpkg-deb --root-owner-group -Zxz --build "$work/pkg" "$deb" >/dev/null
say "Depends: $depends"
echo "$deb"
