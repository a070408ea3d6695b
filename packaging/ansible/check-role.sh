#!/usr/bin/env bash
# The Ansible role, run for real on this machine (root; tests/run.sh runs it
# after packaging/check-deb.sh): yamllint and ansible-lint clean, then
#   present -> present again (changed=0) -> absent -> absent again
#   (changed=0) -> present
# each step checked against the Kea the role runs (on 127.0.31.1, from the
# package check-deb built), and finally absent with purge. This machine's
# /etc/kea/kea-dhcp4.conf is put back afterwards; the role does disable
# kea-ctrl-agent's start at boot, as it does on a real DHCP server.
set -euo pipefail
cd "$(dirname "$0")"

# Without systemd (containers, CI) the role drives Kea through Debian's init
# scripts, and the daemons they start are adopted by PID 1, which there may
# not reap them: a stopped Kea would stay a zombie that the next start
# waits for. tini as a subreaper (Debian's tini) reaps them.
if [[ -z "${CHECK_ROLE_UNDER_TINI:-}" && "$(ps -o comm= -p 1)" != systemd ]]; then
  exec env CHECK_ROLE_UNDER_TINI=1 tini -s -- bash "$PWD/$(basename "$0")" "$@"
fi
repo=$(cd ../.. && pwd)
venv="${BMC_TEST_VENV:-$HOME/.cache/kea-hook-bmc-discovery/venv}"
export PATH="$venv/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg" ANSIBLE_NOCOLOR=1
socket=/run/kea/kea4-ctrl-socket
conf=/etc/kea/kea-dhcp4.conf

say() { echo "check-role: $*" >&2; }
fail() {
  echo "check-role: FAIL: $*" >&2
  exit 1
}

((EUID == 0)) || fail "run as root (the role installs Kea and the hook here): sudo bash packaging/ansible/check-role.sh"
yamllint -s . || fail "yamllint"
ansible-lint --offline -q || fail "ansible-lint"
say "yamllint, ansible-lint (production profile): clean"

deb=$(ls -t "$repo"/target/debian/kea-hook-bmc-discovery_*_amd64.deb 2>/dev/null | head -1 || true)
if [[ -z "$deb" ]]; then
  bash ../build-deb.sh --quiet
  deb=$(ls -t "$repo"/target/debian/kea-hook-bmc-discovery_*_amd64.deb | head -1)
fi
if dpkg-query -W -f '${Status}' kea-hook-bmc-discovery 2>/dev/null | grep -q installed; then
  fail "kea-hook-bmc-discovery is installed on this machine; this check installs and purges it"
fi
if pgrep -f "kea-dhcp4 -c $conf" >/dev/null; then
  fail "a kea-dhcp4 runs on $conf; this check replaces it"
fi

work=$(mktemp -d /tmp/check-role.XXXXXX)
cp -p "$conf" "$work/kea-dhcp4.conf.orig"
# Kea's own files that its run here makes, removed afterwards unless they
# were here before.
kea_files=()
for f in /var/lib/kea/kea-leases4.csv /var/lib/kea/kea-leases4.csv2 /var/log/kea/kea-dhcp4.log \
  /etc/default/kea-dhcp4-server; do
  [[ -e "$f" ]] || kea_files+=("$f")
done
cleanup() {
  say "cleaning up: absent with purge, this machine's $conf back"
  ansible-playbook -i tests/inventory.yml site.yml -e kea_bmc_discovery_state=absent \
    -e kea_bmc_discovery_purge=true >"$work/cleanup.log" 2>&1 || tail -20 "$work/cleanup.log"
  /etc/init.d/kea-dhcp4-server stop >/dev/null 2>&1 || true
  pkill -f "kea-dhcp4 -c $conf" 2>/dev/null || true
  cp -p "$work/kea-dhcp4.conf.orig" "$conf"
  rm -f "${kea_files[@]}"
  ip addr del 127.0.31.1/32 dev lo 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# Debian's init script waits for a pid file nothing writes
# (/run/kea-dhcp4-server.pid: it starts Kea without --make-pidfile), so
# without systemd every stop is 30 s of waiting and then SIGKILL. Kea's own
# pid file (KEA_PIDFILE_DIR /run/kea, named after the configuration file)
# makes it a SIGTERM that Kea answers at once. The script reads this file;
# one left by the machine's owner is used as it is.
if [[ ! -e /etc/default/kea-dhcp4-server && "$(ps -o comm= -p 1)" != systemd ]]; then
  printf '%s\n' "# Written by check-role.sh for its run, removed afterwards." \
    "PIDFILE=/run/kea/kea-dhcp4.kea-dhcp4.pid" "NAME=kea-dhcp4" >/etc/default/kea-dhcp4-server
fi
ip addr replace 127.0.31.1/32 dev lo

# Throwaway secrets made up for this run, handed over the way an operator
# does: in the controller's environment.
BMC_PASSWORD=$(head -c 18 /dev/urandom | base64)
NETBOX_TOKEN=$(head -c 18 /dev/urandom | base64)
export BMC_PASSWORD NETBOX_TOKEN BMC_USERNAME=root
play() {
  ansible-playbook -i tests/inventory.yml site.yml -e "kea_bmc_discovery_deb=$deb" "$@" >"$work/play.log" 2>&1 ||
    { tail -40 "$work/play.log"; fail "ansible-playbook $*"; }
  changed=$(sed -n 's/^localhost *: .*changed=\([0-9]*\).*/\1/p' "$work/play.log")
  [[ -n "$changed" ]] || { tail -20 "$work/play.log"; fail "no PLAY RECAP"; }
}
# Kea's answer to a command, once its socket answers (it restarts).
ask() {
  local answer
  for _ in $(seq 1 100); do
    if answer=$(printf '%s' "$1" | socat -t 10 - UNIX-CONNECT:$socket 2>/dev/null) && [[ -n "$answer" ]]; then
      echo "$answer"
      return
    fi
    sleep 0.1
  done
  fail "Kea does not answer on $socket: $(tail -5 /var/log/kea/kea-dhcp4.log 2>/dev/null)"
}
result_of() { python3 -c 'import json,sys; a=json.load(sys.stdin); print(a["result"], a.get("text", ""))'; }

play
((changed > 0)) || fail "the first run changed nothing"
status=$(ask '{"command": "bmc-status"}' | result_of)
[[ "$status" == "0 bmc-discovery"* ]] || fail "bmc-status after the role: $status"
[[ $(stat -c '%a %U' /etc/kea/bmc-credentials.json) == "600 _kea" ]] || fail "credentials file mode/owner: $(stat -c '%a %U' /etc/kea/bmc-credentials.json)"
[[ $(stat -c '%a %U' /etc/kea/netbox-token) == "600 _kea" ]] || fail "token file mode/owner"
grep -qF -e "$BMC_PASSWORD" -e "$NETBOX_TOKEN" /var/log/kea/kea-dhcp4.log /etc/kea/kea-dhcp4.conf "$work/play.log" &&
  fail "a secret is in Kea's log, its configuration or the playbook's output"
grep -qxF "$NETBOX_TOKEN" /etc/kea/netbox-token || fail "the token file does not hold NETBOX_TOKEN"
python3 -c 'import json,os,sys; e=json.load(open(sys.argv[1])); sys.exit(e != [{"username": "root", "password": os.environ["BMC_PASSWORD"]}])' \
  /etc/kea/bmc-credentials.json || fail "the credentials file does not hold BMC_PASSWORD"
say "present: changed=$changed; Kea answers bmc-status: $status"

play
((changed == 0)) || { grep -B2 'changed:' "$work/play.log" | head -20; fail "the second run changed $changed tasks"; }
say "present again: changed=0"

play -e kea_bmc_discovery_state=absent
((changed > 0)) || fail "absent changed nothing"
status=$(ask '{"command": "bmc-status"}' | result_of)
[[ "$status" == 2* ]] || fail "bmc-status after absent: $status (want 2: no such command)"
hooks=$(ask '{"command": "config-get"}' | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["arguments"]["Dhcp4"]["hooks-libraries"]))')
((hooks == 0)) || fail "Kea still has $hooks hook libraries"
dpkg-query -W -f '${Status}' kea-hook-bmc-discovery 2>/dev/null | grep -q '^install ok installed' && fail "the package is still installed"
[[ -e /etc/kea/bmc-credentials.json || -e /etc/kea/netbox-token ]] && fail "absent left the secrets"
[[ -e /var/lib/kea/bmc-discovery.sqlite ]] || fail "absent without purge deleted the BMC state"
grep -q '"package kea-hook-bmc-discovery (BMC state kept' "$work/play.log" || { tail -30 "$work/play.log"; fail "no removal summary"; }
say "absent: changed=$changed; Kea serves on without the hook (bmc-status: $status); state kept; summary:"
sed -n '/Say what was removed/,/^$/p' "$work/play.log" | grep '^ *"' >&2

play -e kea_bmc_discovery_state=absent
((changed == 0)) || fail "absent again changed $changed tasks"
say "absent again: changed=0"

play
status=$(ask '{"command": "bmc-status"}' | result_of)
[[ "$status" == "0 bmc-discovery"* ]] || fail "bmc-status after present again: $status"
say "present again: changed=$changed; bmc-status: $status"
say "ok"
