#!/usr/bin/env bash
# What a Kea security update does to the installed hook: builds a fake next
# Debian revision of this machine's Kea packages (same files, version
# +1, e.g. 2.6.3-1+deb13u1 -> 2.6.3-1+deb13u1.1), serves them from a local
# repository, and runs `apt upgrade` and `apt full-upgrade` with the hook's
# package installed. Passes when Kea is upgraded, the hook stays installed,
# and kea-dhcp4 -t still loads it from the packaged example.
#
# It replaces the installed Kea packages, so it runs only in a throwaway
# root (tests/kea-matrix.sh runs it in an overlay of a suite's root) and
# refuses elsewhere: set KEA_UPGRADE_CHECK_THROWAWAY=1 to say that this is
# one. Needs the Kea .debs apt installed in /var/cache/apt/archives and the
# hook's package built (packaging/build-deb.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "check-kea-upgrade: $*" >&2; }
fail() {
  echo "check-kea-upgrade: FAIL: $*" >&2
  exit 1
}
((EUID == 0)) || fail "run as root"
[[ "${KEA_UPGRADE_CHECK_THROWAWAY:-}" == 1 ]] ||
  fail "this replaces the installed Kea packages: run it only in a throwaway root, with KEA_UPGRADE_CHECK_THROWAWAY=1"

pkg=kea-hook-bmc-discovery
deb=$(bash packaging/build-deb.sh --quiet | tail -1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export DEBIAN_FRONTEND=noninteractive
# Only the local repository: no network needed, nothing else upgraded.
apt=(apt-get -o "Dir::Etc::sourcelist=$work/sources.list" -o Dir::Etc::sourceparts=-
  -o "Dir::State::Lists=$work/lists" -o APT::Get::List-Cleanup=0 -o APT::Sandbox::User=root)
mkdir -p "$work/repo" "$work/lists/partial" "$work/x"

old=$(dpkg-query -W -f '${Version}' kea-common)
new="$old.1"
kea_pkgs=$(dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\n' 'kea-*' 'python3-kea*' 2>/dev/null |
  awk -v v="$old" '$2 == v && $3 == "ii" {print $1}')
for p in $kea_pkgs; do
  arch=$(dpkg-query -W -f '${Architecture}' "$p")
  src=/var/cache/apt/archives/${p}_${old//:/%3a}_${arch}.deb
  [[ -f "$src" ]] || fail "$src is not in apt's cache; reinstall $p with apt to get it there"
  rm -rf "$work/x/pkg"
  dpkg-deb -R "$src" "$work/x/pkg"
  sed -i "s/$(sed 's/[.]/\\./g' <<<"$old")/$new/g" "$work/x/pkg/DEBIAN/control"
  dpkg-deb --root-owner-group -b "$work/x/pkg" "$work/repo/${p}_${new}_${arch}.deb" >/dev/null
done
(
  cd "$work/repo"
  for f in *.deb; do
    dpkg-deb -f "$f"
    printf 'Filename: ./%s\nSize: %s\nSHA256: %s\n\n' "$f" "$(stat -c %s "$f")" "$(sha256sum "$f" | cut -d' ' -f1)"
  done >Packages
)
echo "deb [trusted=yes] file:$work/repo ./" >"$work/sources.list"
"${apt[@]}" update -qq >/dev/null
say "Kea $old installed; a fake security update $new of: $(echo $kea_pkgs)"

apt-get install -y -qq "./$deb" >/dev/null
say "installed $(dpkg-query -W -f '${Package} ${Version}' $pkg), Depends: $(dpkg-query -W -f '${Depends}' $pkg)"
"${apt[@]}" upgrade -y -qq >"$work/upgrade.log" 2>&1 || { cat "$work/upgrade.log"; fail "apt upgrade"; }
[[ "$(dpkg-query -W -f '${Version}' kea-common)" == "$new" ]] ||
  fail "apt upgrade held Kea back at $old: $(grep -A3 'kept back' "$work/upgrade.log")"
"${apt[@]}" full-upgrade -y -qq >"$work/full.log" 2>&1 || { cat "$work/full.log"; fail "apt full-upgrade"; }
dpkg-query -W -f '${db:Status-Abbrev}' $pkg 2>/dev/null | grep -q '^ii' ||
  fail "the Kea update removed $pkg: $(cat "$work/full.log")"
say "apt upgrade and full-upgrade: Kea $old -> $new, $pkg kept"

example=/usr/share/doc/$pkg/examples/single-site.conf
lib=/usr/lib/x86_64-linux-gnu/kea/hooks/libdhcp_bmc_discovery.so
# The example names eth1: -t checks it exists.
ns=bmcupg$$
ip netns add "$ns"
ip link add "v$ns" type veth peer name eth1 netns "$ns"
ip netns exec "$ns" ip addr add 10.20.0.2/22 dev eth1
ip netns exec "$ns" ip link set eth1 up
mkdir -p "$work/etc"
printf '[{"username": "root", "password_file": "/etc/kea/bmc-password"}]\n' >"$work/etc/bmc-credentials.json"
echo x >"$work/etc/bmc-password"
echo x >"$work/etc/netbox-token"
chmod 600 "$work/etc/"*
out=$(ip netns exec "$ns" unshare -m sh -c 'mount --bind "$0" /etc/kea && exec kea-dhcp4 -t "$1"' \
  "$work/etc" "$example" 2>&1) || { ip netns del "$ns"; fail "kea-dhcp4 -t $example after the update: $out"; }
ip netns del "$ns"
grep -q "$lib successfully closed" <<<"$out" || fail "kea-dhcp4 -t did not load $lib: $out"
say "kea-dhcp4 $(kea-dhcp4 -v) -t still loads $lib"
say "ok"
