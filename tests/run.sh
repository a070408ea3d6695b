#!/usr/bin/env bash
# Runs every test: formatting, lints, unit tests, the integration tests
# that start the real kea-dhcp4 with the hook and drive it with perfdhcp,
# the fuzz targets for a bounded time, the README's quick start as written,
# the Debian package's build / install / examples / remove / purge, the
# Ansible role present / absent, and the Kea-version matrix (Kea 2.6 and 3.0
# in Debian roots: build, Kea tests, smoke checks, package).
# Needs root (it installs missing packages and adds 127.0.N.x addresses to lo).
# Prints how long each step took; the whole run's time is the last line.
set -euo pipefail
cd "$(dirname "$0")/.."

run_start=$SECONDS
step() { # step NAME COMMAND...: runs COMMAND, then says how long it took
  local name=$1 t=$SECONDS
  shift
  "$@"
  echo "run: $name: $((SECONDS - t)) s" >&2
}
logs=${BMC_RUN_LOGS:-${XDG_CACHE_HOME:-$HOME/.cache}/kea-hook-bmc-discovery/run}
mkdir -p "$logs"

step setup-packages bash tests/setup.sh packages
# The tests serve ../shared/redfish-mockups and start ../shared/netbox.
source tests/shared-dir.sh

# Two slow things wait mostly on one core, the network or dpkg rather than
# on both cores: NetBox's first start (pip install and 336 migrations, ~8
# minutes alone when cold, a second when up) and the matrix's Debian roots
# (debootstrap + apt, ~4.5 minutes when cold, a second when kept). Both
# start now and run while the tools and the host's build compile; each is
# waited for where it is needed.
background() { # background NAME COMMAND...: output in $logs/NAME.log
  local name=$1
  shift
  rm -f "$logs/$name.rc"
  (
    rc=0
    "$@" >"$logs/$name.log" 2>&1 || rc=$?
    echo "$rc" >"$logs/$name.rc"
  ) &
}
wait_for_background() { # wait_for_background NAME PID: fails with the log's tail
  local name=$1 t=$SECONDS
  wait "$2" || true
  echo "run: waited $((SECONDS - t)) s for $name" >&2
  if [[ "$(cat "$logs/$name.rc" 2>/dev/null)" != 0 ]]; then
    tail -n 40 "$logs/$name.log" >&2
    echo "run: $name failed; whole log: $logs/$name.log" >&2
    return 1
  fi
}
# A failing step ends the run only once these have finished: a root or a
# NetBox cut off half-way would cost the next run more than the wait.
trap 'jobs -pr | grep -q . && echo "run: waiting for background set-up to finish" >&2; wait' EXIT
netbox_pid=
if [[ -n "${NETBOX_SCRIPTS:-}" && -x "$NETBOX_SCRIPTS/netbox-up" ]]; then
  background netbox-up env NETBOX_PORT="${NETBOX_PORT:-18000}" "$NETBOX_SCRIPTS/netbox-up"
  netbox_pid=$!
else
  echo "run: netbox-up not found; the NetBox tests will fail (set SHARED_DIR or NETBOX_SCRIPTS)" >&2
fi
step setup-tools bash tests/setup.sh tools
# After the tools: the matrix needs cargo and cargo-deb on the host. A
# failed root here is made again by the matrix run itself.
background matrix-roots env KEA_MATRIX_STEPS=root bash tests/kea-matrix.sh
roots_pid=$!
step fmt cargo fmt --check
step clippy cargo clippy --all-targets -- -D warnings
step test-build cargo test --all-targets --no-run
# The fuzz build (every crate again, with the sanitizer) while NetBox may
# still be migrating on one core.
step fuzz-build bash tests/fuzz.sh build
[[ -z "$netbox_pid" ]] || wait_for_background netbox-up "$netbox_pid"
# The Kea-version matrix (Kea 2.6.3 in trixie, 3.0 in forky: build, Kea
# tests, smoke checks, package, each in a Debian root of its own, kept in
# /var/cache) runs beside the host's tests from here on: its Kea tests run
# in network namespaces of their own (no address or port of the host's is
# shared) and use no NetBox, while the host's tests spend most of their
# time waiting for NetBox. Its builds are niced, so that the host's tests,
# which wait on timers, get the CPU first. Output: $logs/kea-matrix.log.
wait_for_background matrix-roots "$roots_pid" || true
matrix_start=$SECONDS
background kea-matrix env KEA_MATRIX_BUILD_NICE=10 bash tests/kea-matrix.sh
matrix_pid=$!
step test cargo test --all-targets
# Every parser of what a device or a client sends, fuzzed for a bounded time
# (FUZZ_SECONDS per target, default 20).
step fuzz-fmt cargo fmt --check --manifest-path tests/fuzz/Cargo.toml
step fuzz bash tests/fuzz.sh
# The matrix ends here, before the steps that stop Kea by name: Debian's
# init script (check-role) ends every /usr/sbin/kea-dhcp4 it can see with
# SIGKILL, the quick start pkills its own command line, and the matrix's
# Kea processes, in PID namespaces of their own, are visible to both.
matrix_rc=0
wait_for_background kea-matrix "$matrix_pid" || matrix_rc=1
sed -n '/summary (/,$p' "$logs/kea-matrix.log" >&2
echo "run: kea-matrix: $((SECONDS - matrix_start)) s (beside test and fuzz)" >&2
((matrix_rc == 0)) || exit 1
# The README's quick start, command by command, with its documented output.
step quickstart bash tests/quickstart.sh
# Installs and purges the package on this machine (refuses if it is installed).
step check-deb bash packaging/check-deb.sh
# Runs the Ansible role here: present, present (changed=0), absent, present.
step check-role bash packaging/ansible/check-role.sh
echo "run: all passed in $((SECONDS - run_start)) s" >&2
