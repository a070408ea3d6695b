#!/usr/bin/env bash
# The Debian package, checked on this machine the way an operator meets it
# (root; tests/run.sh runs it after the tests, tests/kea-matrix.sh inside
# each suite's root): build for the Kea installed here (build-deb.sh picks
# the variant), lintian clean (this suite's lintian), install, Depends
# admit only this upstream Kea, files where Kea looks and owned by Kea's
# user, every packaged example passes kea-dhcp4 -t / kea-ctrl-agent -t (and
# -T from Kea 2.4), kea-dhcp4 runs the installed single-site example and
# answers bmc-status and bmc-pool-report (from Kea 3.0 also the HTTP
# example, over kea-dhcp4's own HTTP socket with authentication), remove
# keeps the BMC state, purge leaves nothing.
# The examples name eth1 and /etc/kea files: they are checked verbatim in a
# network namespace of this script's with an eth1, and a private mount of
# /etc/kea holding throwaway credentials, so the machine's own files are
# never touched.
set -euo pipefail
cd "$(dirname "$0")/.."

pkg=kea-hook-bmc-discovery
doc=/usr/share/doc/$pkg
lib=/usr/lib/x86_64-linux-gnu/kea/hooks/libdhcp_bmc_discovery.so
socket=/run/kea/kea4-ctrl-socket
state=(/var/lib/kea/bmc-discovery.sqlite /var/lib/kea/bmc-inventory)

say() { echo "check-deb: $*" >&2; }
fail() {
  echo "check-deb: FAIL: $*" >&2
  exit 1
}

if ((EUID != 0)); then
  fail "run as root (installs and purges $pkg): sudo bash packaging/check-deb.sh"
fi

deb=$(bash packaging/build-deb.sh --quiet | tail -1)
[[ -f "$deb" ]] || fail "build-deb.sh made no package"
say "built $deb ($(du -h "$deb" | cut -f1))"
kea=$(kea-dhcp4 -v)
# Kea's version as a number (2.6.3 -> 20603), for what differs between them.
kea_n=$(awk -F. '{printf "%d", $1 * 10000 + $2 * 100 + $3}' <<<"$kea")

# Lintian refuses to run as root without saying so; overrides are in
# packaging/lintian-overrides, each with its reason.
lintian --fail-on error,warning "$deb" 2> >(grep -v 'running with root privileges' >&2) ||
  fail "lintian"
say "lintian: clean"

if dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q installed; then
  fail "$pkg is installed on this machine; this check installs and purges it (apt-get purge $pkg first)"
fi

work=$(mktemp -d /tmp/check-deb.XXXXXX)
ns=bmcdeb$$
kea_pid=
made_log_dir=
installed=
cleanup() {
  [[ -n "$kea_pid" ]] && kill "$kea_pid" 2>/dev/null && wait "$kea_pid" 2>/dev/null
  # A failed check must not leave the package behind for the next run.
  [[ -n "$installed" ]] && DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "$pkg" >/dev/null 2>&1
  ip netns del "$ns" 2>/dev/null || true
  [[ -n "$made_log_dir" ]] && rmdir /var/log/kea 2>/dev/null
  rm -f /var/lib/kea/kea-leases4.csv* /var/lib/kea/kea-dhcp4.pid
  rm -rf "$work"
}
trap cleanup EXIT

files=$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {print substr($6, 2)}')
installed=1
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "./$deb" >/dev/null
say "installed: $(dpkg-query -W -f '${Package} ${Version}, Depends: ${Depends}' $pkg)"
depends=$(dpkg-query -W -f '${Depends}' $pkg)
upstream=${kea%%-*}
[[ "$depends" == *"kea-dhcp4-server (>= $upstream)"* && "$depends" == *"kea-common (>= $upstream)"* ]] ||
  fail "Depends do not name this Kea ($upstream) as the lowest: $depends"
# ... and nothing from the next upstream version on (Kea refuses a hook built
# for another upstream version).
next=$(awk -F. '{printf "%d.%d.%d~", $1, $2, $3 + 1}' <<<"$upstream")
[[ "$depends" == *"kea-dhcp4-server (<< $next)"* && "$depends" == *"kea-common (<< $next)"* ]] ||
  fail "Depends do not stop below the next upstream Kea ($next): $depends"
# Any Debian revision of this upstream Kea, not one exactly (Cargo.toml: why).
[[ "$depends" != *"kea-common (="* ]] || fail "Depends pin kea-common to one Debian revision: $depends"
[[ -f "$lib" ]] || fail "$lib missing"
[[ -x /usr/bin/bmc-pool-report ]] || fail "/usr/bin/bmc-pool-report missing"
owner=$(stat -c %U /var/lib/kea/bmc-inventory)
[[ "$owner" == _kea ]] || fail "/var/lib/kea/bmc-inventory is owned by $owner, not _kea"

# The examples' world: eth1 with the single-site subnet's address, and the
# files the examples name.
ip netns add "$ns"
ip link add "v$ns" type veth peer name eth1 netns "$ns"
ip netns exec "$ns" ip link set lo up
ip netns exec "$ns" ip link set eth1 up
ip netns exec "$ns" ip addr add 10.20.0.2/22 dev eth1
mkdir -p "$work/etc" "$work/log"
# Throwaway secrets, made up for this run, in files as on a real server
# (the credentials file names the password file; /etc/kea is $work/etc
# inside the namespace).
head -c 18 /dev/urandom | base64 >"$work/etc/bmc-password"
head -c 18 /dev/urandom | base64 >"$work/etc/netbox-token"
printf '[{"username": "root", "password_file": "/etc/kea/bmc-password"}]\n' >"$work/etc/bmc-credentials.json"
# The HTTP example's API user and password (Kea 3.0 reads them at -t).
printf 'bmc-check\n' >"$work/etc/kea-api-user"
head -c 18 /dev/urandom | base64 >"$work/etc/kea-api-password"
chmod 600 "$work/etc/"*
if [[ ! -d /var/log/kea ]]; then
  mkdir /var/log/kea
  made_log_dir=1
fi
# As Debian's unit makes it; Kea 3.0 refuses unix sockets in a /run/kea
# more open than 0750.
[[ -d /run/kea ]] || install -d -m 0750 /run/kea
# Runs "$@" in the namespace with the private /etc/kea and /var/log/kea
# (exec all the way down, so that $! of a background in_ns is the command).
in_ns() {
  exec ip netns exec "$ns" unshare -m sh -c \
    'mount --bind "$0" /etc/kea && mount --bind "$1" /var/log/kea && shift && exec "$@"' \
    "$work/etc" "$work/log" "$@"
}

for example in "$doc"/examples/*.conf; do
  name=$(basename "$example")
  if [[ "$name" == kea-ctrl-agent.conf ]]; then
    if ! command -v kea-ctrl-agent >/dev/null; then
      say "$name: not checked, kea-ctrl-agent is not installed (Kea 3.2 has none)"
      continue
    fi
    kea-ctrl-agent -t "$example" >"$work/check.log" 2>&1 || { tail -5 "$work/check.log"; fail "kea-ctrl-agent -t $example"; }
    say "$name: passes kea-ctrl-agent -t"
    continue
  fi
  # The same library in kea-dhcp6: its example is checked by kea-dhcp6.
  daemon=kea-dhcp4
  if grep -q '"Dhcp6"' "$example"; then
    daemon=kea-dhcp6
    if ! command -v kea-dhcp6 >/dev/null; then
      say "$name: not checked, kea-dhcp6 is not installed (kea-dhcp6-server)"
      continue
    fi
  fi
  (in_ns "$daemon" -t "$example") >"$work/check.log" 2>&1 || { tail -5 "$work/check.log"; fail "$daemon -t $example"; }
  grep -q "libdhcp_bmc_discovery.so successfully closed" "$work/check.log" || fail "$daemon -t $example did not load $lib"
  checks="-t"
  # -T (Kea >= 2.4) runs the hooks' load() and unload() too; ours then
  # only validates.
  if ((kea_n >= 20400)); then
    (in_ns "$daemon" -T "$example") >"$work/check.log" 2>&1 || { tail -5 "$work/check.log"; fail "$daemon -T $example"; }
    grep -q "$daemon -T check: nothing started" "$work/check.log" || fail "$daemon -T $example: the hook did not check: $(tail -5 "$work/check.log")"
    checks="-t and -T"
  fi
  say "$name: passes $daemon $checks"
done

# Kea runs the installed example with the installed library.
in_ns kea-dhcp4 -c "$doc/examples/single-site.conf" >"$work/kea.out" 2>&1 &
kea_pid=$!
ask() { printf '%s' "$1" | socat -t 10 - UNIX-CONNECT:$socket; }
for _ in $(seq 1 100); do
  [[ -S $socket ]] && ask '{"command": "bmc-status"}' >"$work/status.json" 2>/dev/null && break
  kill -0 "$kea_pid" 2>/dev/null || { tail -20 "$work/log/kea-dhcp4.log" "$work/kea.out"; fail "kea-dhcp4 exited"; }
  sleep 0.1
done
python3 - "$work/status.json" <<'PY' || fail "bmc-status from the installed hook: $(cat "$work/status.json")"
import json, sys
a = json.load(open(sys.argv[1]))
assert a["result"] == 0 and a["arguments"]["subnets"]["opted-in"] == [1], a
PY
say "kea-dhcp4 loaded $lib: $(python3 -c 'import json,sys; print(json.load(sys.stdin)["text"])' <"$work/status.json")"
report=$(bmc-pool-report --socket $socket) || fail "bmc-pool-report: $report"
grep -q "subnet 1 10.20.0.0/22, site ams1: 0/" <<<"$report" || fail "bmc-pool-report said: $report"
say "bmc-pool-report: $(grep '^subnet' <<<"$report")"
# The first page is rendered at Kea's first timer tick (a second at most).
metrics=
for _ in $(seq 1 30); do
  metrics=$(ip netns exec "$ns" python3 -c \
    'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:9547/metrics", timeout=5).read().decode())' \
    2>/dev/null) && break
  sleep 0.2
done
[[ -n "$metrics" ]] || fail "no metrics page at 127.0.0.1:9547 (the example's metrics-listen)"
grep -q '^bmc_discovery_info{version=' <<<"$metrics" || fail "the metrics page lacks bmc_discovery_info: $metrics"
say "metrics: $(grep -c '^bmc_discovery_' <<<"$metrics") samples at http://127.0.0.1:9547/metrics"
kill "$kea_pid"
wait "$kea_pid" || true
kea_pid=
grep -q "unloaded" "$work/log/kea-dhcp4.log" || fail "the hook did not log its unload: $(tail -5 "$work/log/kea-dhcp4.log")"
[[ -f /var/lib/kea/bmc-discovery.sqlite ]] || fail "the hook made no state file"

# Kea >= 3.0: the HTTP example answers the hook's commands on kea-dhcp4's
# own HTTP socket, with the API credentials from files.
if [[ -f "$doc/examples/single-site-http.conf" ]]; then
  in_ns kea-dhcp4 -c "$doc/examples/single-site-http.conf" >"$work/kea-http.out" 2>&1 &
  kea_pid=$!
  http_status() { # http_status with|without: prints the HTTP status, then the body
    ip netns exec "$ns" python3 - "$1" "$work/etc/kea-api-user" "$work/etc/kea-api-password" <<'PY'
import base64, sys, urllib.error, urllib.request
req = urllib.request.Request("http://127.0.0.1:8004/", data=b'{"command": "bmc-status"}',
                             headers={"Content-Type": "application/json"})
if sys.argv[1] == "with":
    user, password = (open(f).read().strip() for f in sys.argv[2:4])
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
try:
    r = urllib.request.urlopen(req, timeout=10)
    print(r.status); print(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code)
PY
  }
  answer=
  for _ in $(seq 1 100); do
    answer=$(http_status with 2>/dev/null) && [[ "$answer" == 200* ]] && break
    kill -0 "$kea_pid" 2>/dev/null || { tail -20 "$work/kea-http.out" "$work/log/kea-dhcp4.log"; fail "kea-dhcp4 (HTTP example) exited"; }
    sleep 0.1
  done
  python3 -c 'import json, sys; a = json.loads(sys.argv[1].split("\n", 1)[1])[0]; assert a["result"] == 0, a' "$answer" ||
    fail "bmc-status over kea-dhcp4's HTTP socket: $answer"
  [[ "$(http_status without | head -1)" == 401 ]] || fail "kea-dhcp4's HTTP socket answered without credentials"
  say "single-site-http.conf: bmc-status over kea-dhcp4's HTTP socket with authentication (401 without)"
  kill "$kea_pid"
  wait "$kea_pid" || true
  kea_pid=
fi

DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq "$pkg" >/dev/null
[[ ! -e "$lib" ]] || fail "remove left $lib"
for f in "${state[@]}"; do
  [[ -e "$f" ]] || fail "remove deleted $f (state is kept until purge)"
done
say "removed: library gone, BMC state kept"

DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "$pkg" >/dev/null
if dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q 'config-files\|installed'; then
  fail "purge left $pkg in dpkg's database"
fi
left=()
for f in $files "${state[@]}" /var/lib/kea/bmc-discovery.sqlite-wal /var/lib/kea/bmc-discovery.sqlite-shm \
  /var/lib/kea/bmc-discovery-tls-pins.json "$doc"; do
  [[ -e "$f" ]] && left+=("$f")
done
((${#left[@]} == 0)) || fail "purge left: ${left[*]}"
installed=
say "purged: nothing of $pkg left ($(wc -w <<<"$files") packaged files, state, inventory)"
say "ok"
