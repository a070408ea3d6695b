#!/usr/bin/env bash
# What a Kea update does to the installed hook: builds fake updates of this
# machine's Kea packages (same files, another version), serves them from a
# local repository, and runs `apt upgrade` and `apt full-upgrade` with the
# hook's package installed.
#  1. The next Debian revision of the same upstream Kea (a security update,
#     or a backports rebuild: 2.6.3-1+deb13u1 -> 2.6.3-1+deb13u1.1,
#     3.0.3-1~bpo13+1 -> 3.0.3-1~bpo13+1.1). Passes when Kea is upgraded,
#     the hook stays installed, and kea-dhcp4 -t still loads it from the
#     packaged example.
#  2. The next upstream Kea (what backports and testing bring: 3.0.3-1~bpo13+1
#     -> 3.0.4-1~bpo13+1; Kea refuses a hook built for another upstream
#     version). Passes when `apt upgrade` holds Kea back and keeps the hook,
#     kea-dhcp4 -t still loads it, and `apt full-upgrade` never leaves the
#     hook installed beside the new Kea (apt either holds Kea back or removes
#     the hook; which one is printed).
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
echo "deb [trusted=yes] file:$work/repo ./" >"$work/sources.list"

old=$(dpkg-query -W -f '${Version}' kea-common)
kea_pkgs=$(dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\n' 'kea-*' 'python3-kea*' 2>/dev/null |
  awk -v v="$old" '$2 == v && $3 == "ii" {print $1}')
# fake_update VERSION: this Kea's packages as VERSION, added to the local
# repository (its index rewritten, apt's lists of it updated).
fake_update() {
  local version=$1 p arch src f
  for p in $kea_pkgs; do
    arch=$(dpkg-query -W -f '${Architecture}' "$p")
    src=/var/cache/apt/archives/${p}_${old//:/%3a}_${arch}.deb
    [[ -f "$src" ]] || fail "$src is not in apt's cache; reinstall $p with apt to get it there"
    rm -rf "$work/x/pkg"
    dpkg-deb -R "$src" "$work/x/pkg"
    sed -i "s/${old//./\\.}/$version/g" "$work/x/pkg/DEBIAN/control"
    dpkg-deb --root-owner-group -Znone -b "$work/x/pkg" "$work/repo/${p}_${version}_${arch}.deb" >/dev/null
  done
  (
    cd "$work/repo"
    for f in *.deb; do
      dpkg-deb -f "$f"
      printf 'Filename: ./%s\nSize: %s\nSHA256: %s\n\n' "$f" "$(stat -c %s "$f")" "$(sha256sum "$f" | cut -d' ' -f1)"
    done >Packages
  )
  "${apt[@]}" update -qq >/dev/null
}

example=/usr/share/doc/$pkg/examples/single-site.conf
lib=/usr/lib/x86_64-linux-gnu/kea/hooks/libdhcp_bmc_discovery.so
mkdir -p "$work/etc"
printf '[{"username": "root", "password_file": "/etc/kea/bmc-password"}]\n' >"$work/etc/bmc-credentials.json"
echo x >"$work/etc/bmc-password"
echo x >"$work/etc/netbox-token"
chmod 600 "$work/etc/"*
# config_test CONFIG: kea-dhcp4 -t CONFIG, its output in $work/t.log.
config_test() {
  local ns=bmcupg$$ rc=0
  # The example names eth1: -t checks it exists.
  ip netns add "$ns"
  ip link add "v$ns" type veth peer name eth1 netns "$ns"
  ip netns exec "$ns" ip addr add 10.20.0.2/22 dev eth1
  ip netns exec "$ns" ip link set eth1 up
  ip netns exec "$ns" unshare -m sh -c 'mount --bind "$0" /etc/kea && exec kea-dhcp4 -t "$1"' \
    "$work/etc" "$1" >"$work/t.log" 2>&1 || rc=$?
  ip netns del "$ns"
  return "$rc"
}
# loads_hook WHEN: kea-dhcp4 -t of the packaged example loads the library.
loads_hook() {
  config_test "$example" || fail "kea-dhcp4 -t $example $1: $(cat "$work/t.log")"
  grep -q "$lib successfully closed" "$work/t.log" || fail "kea-dhcp4 -t did not load $lib $1: $(cat "$work/t.log")"
  say "kea-dhcp4 $(kea-dhcp4 -v) -t still loads $lib $1"
}
hook_installed() { dpkg-query -W -f '${db:Status-Abbrev}' $pkg 2>/dev/null | grep -q '^ii'; }

# 1. The next Debian revision.
new="$old.1"
fake_update "$new"
say "Kea $old installed; a fake security update $new of: ${kea_pkgs//$'\n'/ }"

apt-get install -y -qq "./$deb" >/dev/null
say "installed $(dpkg-query -W -f '${Package} ${Version}' $pkg), Depends: $(dpkg-query -W -f '${Depends}' $pkg)"
"${apt[@]}" upgrade -y -qq >"$work/upgrade.log" 2>&1 || { cat "$work/upgrade.log"; fail "apt upgrade"; }
[[ "$(dpkg-query -W -f '${Version}' kea-common)" == "$new" ]] ||
  fail "apt upgrade held Kea back at $old: $(grep -A3 'kept back' "$work/upgrade.log")"
"${apt[@]}" full-upgrade -y -qq >"$work/full.log" 2>&1 || { cat "$work/full.log"; fail "apt full-upgrade"; }
hook_installed || fail "the Kea update removed $pkg: $(cat "$work/full.log")"
say "apt upgrade and full-upgrade: Kea $old -> $new, $pkg kept"
loads_hook "after the Debian revision update"

# 2. The next upstream Kea (x.y.z+1, the same Debian revision).
upstream=${old%%-*}
next=$(awk -F. '{printf "%d.%d.%d", $1, $2, $3 + 1}' <<<"${upstream#*:}")
[[ "$upstream" == *:* ]] && next="${upstream%%:*}:$next"
newer="$next-${old#*-}"
fake_update "$newer"
say "a fake upstream update $newer of the same packages"
# -q, not -qq: apt names what it keeps back.
"${apt[@]}" upgrade -y -q >"$work/upgrade2.log" 2>&1 || { cat "$work/upgrade2.log"; fail "apt upgrade to $newer"; }
now=$(dpkg-query -W -f '${Version}' kea-common)
[[ "$now" == "$new" ]] || fail "apt upgrade moved Kea to $now beside a hook built for $upstream"
hook_installed || fail "apt upgrade removed $pkg: $(cat "$work/upgrade2.log")"
say "apt upgrade: Kea held back at $now (kept back: $(sed -n '/kept back:/,/^[^ ]/{/^ /p}' "$work/upgrade2.log" | xargs)), $pkg kept"
loads_hook "with Kea held back"
# The operator's configuration, which stays when the package goes.
cp "$example" "$work/kea-dhcp4.conf"
"${apt[@]}" full-upgrade -y -qq >"$work/full2.log" 2>&1 || { cat "$work/full2.log"; fail "apt full-upgrade to $newer"; }
now=$(dpkg-query -W -f '${Version}' kea-common)
if hook_installed; then
  [[ "$now" == "$new" ]] || fail "apt full-upgrade left $pkg installed beside Kea $now"
  say "apt full-upgrade: Kea held back at $now, $pkg kept"
  loads_hook "with Kea held back"
else
  [[ "$now" == "$newer" ]] || fail "apt full-upgrade removed $pkg but left Kea at $now"
  ! config_test "$work/kea-dhcp4.conf" || fail "kea-dhcp4 -t passed a configuration naming the removed $lib"
  say "apt full-upgrade: Kea $now installed and $pkg REMOVED (dpkg status" \
    "$(dpkg-query -W -f '${db:Status-Abbrev}' $pkg | xargs)); a kea-dhcp4.conf naming it is then refused" \
    "until the hook built for $next is installed: $(grep -m1 -o 'HOOKS_OPEN_ERROR.*' "$work/t.log" | cut -c1-240)"
fi
say "ok"
