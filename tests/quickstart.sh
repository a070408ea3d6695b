#!/usr/bin/env bash
# The README's quick start, section "Run Kea with the hook", run the way a
# reader runs it: the build command it names, then every ```sh block of the
# section in order, line by line, as written. Only two things differ from a
# terminal: the line that runs kea-dhcp4 in the foreground runs in the
# background with its output in a file, and `sudo` is the command itself
# when this runs as root without sudo (CI). Then the output the README shows
# is checked. Needs root (loopback address, port 67). tests/run.sh runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/shared-dir.sh

say() { echo "quickstart: $*" >&2; }
fail() {
  echo "quickstart: FAIL: $*" >&2
  [[ -f "${work:-}/kea.out" ]] && tail -20 "$work/kea.out" >&2
  exit 1
}
((EUID == 0)) || fail "run as root: sudo bash tests/quickstart.sh"
if ! command -v sudo >/dev/null; then
  sudo() { "$@"; }
fi

work=$(mktemp -d /tmp/quickstart.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  # `sudo` as a function runs in a subshell: its Kea is a grandchild.
  pkill -f "kea-dhcp4 -c kea-config/kea-dhcp4.conf" 2>/dev/null || true
  wait 2>/dev/null || true
  ip addr del 127.0.0.2/32 dev lo 2>/dev/null || true
  remove_example_files
  [[ -n "${KEEP:-}" ]] || rm -rf "$work"
}
# What the example writes: Kea's own files where Kea >= 2.6.3 allows them
# (/run/kea, /var/lib/kea), the hook's in /tmp.
remove_example_files() {
  rm -f /tmp/kea4-bmc-discovery-* /run/kea/kea4-bmc-discovery.sock* /var/lib/kea/kea4-bmc-discovery-leases.csv* \
    /tmp/bmc-discover-pins.json
}
trap cleanup EXIT
# A fresh machine has none of the example's files.
remove_example_files
if pgrep -f "kea-dhcp4 -c kea-config/kea-dhcp4.conf" >/dev/null; then
  fail "the README's Kea is running already"
fi

section=$(awk '/^## Run Kea with the hook/{on=1; next} /^## /{on=0} on' README.md)
build=$(grep -o 'after `cargo build[^`]*`' <<<"$section" | head -1 | sed 's/^after `//; s/`$//')
[[ -n "$build" ]] || fail "the section names no cargo build command"
say "\$ $build"
$build 2>&1 | tail -1 >&2

# The ```sh blocks, one command per line (continuation lines joined).
commands=$(awk '/^```sh$/{on=1; next} /^```$/{on=0} on' <<<"$section" | sed -e ':a' -e '/\\$/N; s/\\\n//; ta')
n=0
while IFS= read -r line; do
  [[ -z "${line// /}" || "$line" == \#* ]] && continue
  n=$((n + 1))
  say "\$ $line"
  if [[ "$line" == *"kea-dhcp4 -c "* ]]; then
    eval "$line" >"$work/kea.out" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 100); do
      grep -q "opted in" "$work/kea.out" && break
      sleep 0.2
    done
    grep -q "opted in" "$work/kea.out" || fail "Kea did not start"
  elif [[ "$line" == *"&" ]]; then
    eval "$line" >"$work/bg$n.out" 2>&1
    pids+=($!)
    sleep 1
    kill -0 "${pids[-1]}" 2>/dev/null || { cat "$work/bg$n.out" >&2; fail "'$line' exited"; }
  else
    eval "$line" >"$work/out$n" 2>&1 || { cat "$work/out$n" >&2; fail "'$line' failed"; }
    cp "$work/out$n" "$work/last.out"
    [[ "$line" == *perfdhcp* ]] && cp "$work/out$n" "$work/perfdhcp.out"
    [[ "$line" == *examples/bmc-discover* ]] && cp "$work/out$n" "$work/bmc-discover.out"
    [[ "$line" == *bmc-status* ]] && cp "$work/out$n" "$work/bmc-status.out"
  fi
done <<<"$commands"
((n >= 6)) || fail "only $n commands found in the section"

# The output the README shows (the workers may still be on the last BMCs).
for _ in $(seq 1 50); do
  (($(grep -c "discovered BMC" "$work/kea.out" || true) >= 10)) && break
  sleep 0.2
done
expect() { grep -qF -- "$2" "$work/$1" || fail "$1 lacks: $2"; }
# Which MAC gets which address varies (Kea's packet threads run in parallel).
expect_re() { grep -qE -- "$2" "$work/$1" || fail "$1 lacks: $2"; }
expect kea.out "BMC_DISCOVERY_LOADED bmc-discovery 0.1.0 loaded: 4 workers, queue capacity 1024; Redfish discovery on port 8443 (tls-mode pin, credentials kea-config/bmc-credentials.example.json)"
expect kea.out "HOOKS_LIBRARY_LOADED hooks library target/release/libdhcp_bmc_discovery.so successfully loaded"
expect kea.out "BMC_DISCOVERY_SUBNETS_CONFIGURED 2 subnets configured, opted in: [1]"
expect_re kea.out "pinned the TLS certificate of 14:18:77:00:00:0[0-9]: sha256 [0-9A-F:]{95}$"
expect_re kea.out "discovered BMC 14:18:77:00:00:0[0-9] at 127.1.0.13: Dell Inc. PowerEdge R750 serial CLLV0R3 \(dell module\), BMC 15G Monolithic firmware 7.10.30.00; [0-9]+ requests in [0-9]+ ms; 5 resources missing$"
expect_re kea.out "discovered BMC 14:18:77:00:00:0[0-9] at 127.1.0.17: HPE ProLiant DL325 Gen10 Plus serial MXQ019020H \(hpe module\), BMC iLO 5 firmware iLO 5 v2.14; [0-9]+ requests in [0-9]+ ms; 8 resources missing$"
discovered=$(grep -c "discovered BMC" "$work/kea.out" || true)
((discovered == 10)) || fail "$discovered BMCs discovered, the README shows 10"
expect bmc-discover.out "CLLV0R3"
# The queue is empty once the workers have taken the last BMCs, which a
# busy machine may not have done when bmc-status answers.
expect_re bmc-status.out '"text": "bmc-discovery 0.1.0: 4 workers, queue [0-9]/1024, 10 events accepted"'
say "ok: $n commands as the README writes them; 10 BMCs discovered; bmc-status as documented"
