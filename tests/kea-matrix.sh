#!/usr/bin/env bash
# The Kea version matrix: builds, tests and packages the hook against each
# Debian suite's own Kea, each in a Debian root of its own made with
# debootstrap (tests/run.sh runs it on the Debian 12 host, whose own Kea
# 2.2.0 the rest of tests/run.sh covers).
#
#   bash tests/kea-matrix.sh [SUITE...]      # default: trixie forky
#
#   trixie            Debian 13, Kea 2.6.3
#   forky             Debian testing, Kea 3.0.x
#   trixie-backports  Debian 13 with Kea 3.0.3 from trixie-backports (not
#                     in the default list: bash tests/kea-matrix.sh trixie-backports)
#
# Per suite: root (debootstrap + apt, kept between runs), build (the hook
# against that Kea), kea_hook (the hook core's Kea integration tests),
# kea_discovery (the Kea + emulated-BMC tests that need no NetBox:
# the files in discovery_tests below), kea_dhcp6 (tests/kea_dhcp6.rs: the
# same hook in kea-dhcp6, in network namespaces of its own), smoke
# (tests/matrix/smoke.py), quickstart (the README's quick start as written,
# tests/quickstart.sh), package (tests/matrix/package.sh: packaging/
# check-deb.sh in the root), kea_upgrade (packaging/check-kea-upgrade.sh: apt
# upgrade of Kea with the hook installed, in a throwaway overlay of the root).
# Opt-in, never in the default steps: bench (benches/kea_throughput.rs in the
# root, after every suite's tests, one suite at a time; BENCH_ROUNDS and
# BENCH_SECONDS, default 5 and 5, about 3 minutes a suite), e.g.
# KEA_MATRIX_STEPS="build bench" bash tests/kea-matrix.sh.
# Prints one line per step (seconds, ok/FAIL) and exits non-zero if any step
# failed, with the tail of the failing step's log; whole logs are in
# $KEA_MATRIX_CACHE/logs/<suite>/.
#
# Needs root (debootstrap, chroot, namespaces). Everything it keeps lives in
# KEA_MATRIX_CACHE (default /var/cache/kea-hook-bmc-discovery), outside the
# repository: roots/<suite> (rebuilt when broken, when the package list
# below changes, or after KEA_MATRIX_ROOT_MAX_AGE_DAYS, default 7), target/<suite> (cargo's target dir), vendor (the crates,
# vendored on the host: a root has no way to the crate registry).
# Settings: KEA_MATRIX_SUITES (instead of arguments), KEA_MATRIX_MIRROR
# (default: the Debian mirror of this host's apt sources), KEA_MATRIX_STEPS
# (a subset of the steps above, e.g. "build smoke").
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
source tests/shared-dir.sh

cache=${KEA_MATRIX_CACHE:-/var/cache/kea-hook-bmc-discovery}
read -ra suites <<<"${*:-${KEA_MATRIX_SUITES:-trixie forky}}"
read -ra steps <<<"${KEA_MATRIX_STEPS:-root build kea_hook kea_discovery kea_dhcp6 smoke quickstart package kea_upgrade}"

# What each root holds. kea-admin brings perfdhcp; libssl-dev is Kea 3.0's
# undeclared build dependency; clang/libclang-dev are bindgen's; dpkg-dev
# (dpkg-shlibdeps), lintian, socat and python3 are cargo-deb's and
# packaging/check-deb.sh's; prometheus brings promtool for the metrics test;
# postgresql (server, psql, the postgres user) the lease-database test's
# own cluster (tests/kea_postgresql.rs).
packages=(
  kea-dev kea-dhcp4-server kea-dhcp6-server kea-admin kea-ctrl-agent
  g++ libboost-dev pkg-config libssl-dev clang libclang-dev
  iproute2 ca-certificates dpkg-dev lintian socat python3 procps prometheus
  postgresql
)

# The kea_discovery step's test files: discovery through Kea with emulated
# BMCs, one feature a file. tests/kea_netbox.rs is not among them: NetBox is
# not reachable in a root (the host run of tests/run.sh covers it); nor is
# kea_ha's NetBox tests (skipped below), their discovery-only twins are.
discovery_tests=(
  kea_lease_discovery kea_retries_and_state kea_reconciliation kea_tls_pins
  kea_ctrl_agent kea_pool_report kea_metrics_page kea_ha kea_postgresql
)
# Their tests that only check files no Kea reads, or need NetBox.
discovery_skip=(
  packaged_alert_rules_and_dashboard_are_valid
  hot_standby_primary_killed_mid_burst_every_bmc_registered_once
  load_balancing_each_registers_its_share_the_survivor_the_rest
)

say() { echo "kea-matrix: $*" >&2; }
die() {
  echo "kea-matrix: FAIL: $*" >&2
  exit 1
}
((EUID == 0)) || die "run as root (debootstrap, chroot, namespaces): sudo bash tests/kea-matrix.sh"
for s in "${suites[@]}"; do
  [[ "$s" =~ ^[a-z]+(-backports)?$ ]] ||
    die "suite '$s' is not a Debian suite name (trixie, forky, trixie-backports, ...)"
done

# A SUITE-backports root is a SUITE root (debootstrap SUITE) whose apt also
# has SUITE-backports, and whose Kea comes from there: every binary package
# of the isc-kea source is pinned to SUITE-backports (Pin-Priority 990; the
# rest of the root stays SUITE's). Pinned rather than `apt-get -t`: -t would
# prefer backports for every package of that one command (g++, clang,
# lintian, ... too, wherever backports has them) and be forgotten after it,
# while the pin names exactly the packages that come from backports and
# stays in the root for every later apt run (check-deb.sh's install of the
# package, check-kea-upgrade.sh's upgrade), as on an operator's machine that
# follows backports for Kea.
base_suite() { echo "${1%-backports}"; }
backports_of() { [[ "$1" == *-backports ]]; }

# The Debian mirror this host's apt uses (deb822 or one-line sources).
host_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "$f" ]] || continue
    awk '
      /^URIs:/ { uri = $2 }
      /^Suites:/ && uri != "" && / (bookworm|trixie|forky|sid|stable)( |$)/ && uri !~ /security/ { print uri; exit }
      /^$/ { uri = "" }
      /^deb / && $0 !~ /security/ && / (bookworm|trixie|forky|sid|stable) / {
        for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }
    ' "$f"
  done | head -1
}
mirror=${KEA_MATRIX_MIRROR:-$(host_mirror)}
[[ -n "$mirror" ]] || die "no Debian mirror found in /etc/apt/sources.list*; set KEA_MATRIX_MIRROR=http://deb.debian.org/debian"

if ! command -v debootstrap >/dev/null; then
  say "apt-get install debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null ||
    die "cannot install debootstrap"
fi
toolchain=$(readlink -f "$(rustc --print sysroot)") || die "rustc not found: install Rust (https://rustup.rs)"
cargo_deb=$(command -v cargo-deb) || die "cargo-deb not found on this host: run tests/setup.sh"
[[ -n "${REDFISH_MOCKUPS:-}" ]] || die "the shared folder's redfish-mockups was not found (set SHARED_DIR)"

mkdir -p "$cache"/{roots,target,logs,scratch}
# The repository is mounted read-only in each root; the suite's target dir
# is mounted over its target/, which must exist to be mounted on.
mkdir -p "$repo/target"

# --- the crates, vendored once on the host --------------------------------
vendor_crates() {
  local stamp want
  want=$(sha256sum Cargo.lock | cut -d' ' -f1)
  stamp=$cache/vendor/.kea-matrix-stamp
  if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    rm -rf "$cache/vendor"
    cargo vendor --locked --quiet "$cache/vendor" >/dev/null || return 1
    echo "$want" >"$stamp"
  fi
}

# --- running things inside a root -------------------------------------------
# in_root SUITE net|nonet COMMAND: see tests/matrix/enter.sh. With net, in a
# network namespace of its own, with the suite's scratch dir as /tmp (kept
# for a look after a failure); without, on the host's network (apt) and a
# tmpfs /tmp.
in_root() {
  local suite=$1 net=$2 command=$3 flags=(--mount --propagation private --pid --fork --kill-child)
  local scratch='' overlay=''
  # check-kea-upgrade.sh replaces the root's Kea: in an overlay, thrown away.
  [[ "$command" == *check-kea-upgrade.sh* ]] && overlay=$cache/overlay/$suite
  if [[ "$net" == net ]]; then
    flags+=(--net)
    scratch=$cache/scratch/$suite
  fi
  mkdir -p "$cache/scratch/$suite" "$cache/target/$suite"
  M_ROOT=$cache/roots/$suite M_REPO=$repo M_TARGET=$cache/target/$suite \
    M_SCRATCH=$scratch M_TOOLCHAIN=$toolchain M_VENDOR=$cache/vendor \
    M_CARGO_DEB=$cargo_deb M_MOCKUPS=${REDFISH_MOCKUPS:-} M_NETBOX=${NETBOX_SCRIPTS:-} \
    M_NET=$([[ "$net" == net ]] && echo 1 || echo 0) M_OVERLAY=$overlay KEA_MATRIX_SUITE=$suite \
    unshare "${flags[@]}" bash "$repo/tests/matrix/enter.sh" "$command" </dev/null
}

# Nothing may be mounted under a directory that is about to be deleted (the
# repository is bind-mounted into each root).
assert_unmounted() {
  if findmnt -rn -o TARGET | grep -q "^$1\(/\|$\)"; then
    die "something is still mounted under $1 (findmnt); not deleting it"
  fi
}

root_stamp() { # what the root of suite $1 is made of
  printf 'suite %s\nmirror %s\npackages %s\nformat 1\n' "$1" "$mirror" "${packages[*]}"
  if backports_of "$1"; then printf 'pin src:isc-kea %s 990\n' "$1"; fi
}

# A root older than this is made again, so that the matrix follows its
# suite's Kea (forky is Debian testing: its Kea moves).
max_age_days=${KEA_MATRIX_ROOT_MAX_AGE_DAYS:-7}

root_ok() {
  local root=$cache/roots/$1
  [[ -f "$root/.kea-matrix-stamp" && "$(cat "$root/.kea-matrix-stamp")" == "$(root_stamp "$1")" ]] || return 1
  [[ -z "$(find "$root/.kea-matrix-stamp" -mtime "+$max_age_days")" ]] || return 1
  # Every package installed, nothing half-configured.
  local status
  status=$(chroot "$root" dpkg-query -W -f '${db:Status-Abbrev}\n' "${packages[@]}" 2>&1) || return 1
  ! grep -qv '^ii' <<<"$status" || return 1
  [[ -z "$(chroot "$root" dpkg --audit 2>&1)" ]] || return 1
  # A backports root's Kea is backports' (Debian's ~bpo revision).
  if backports_of "$1"; then
    ! chroot "$root" dpkg-query -W -f '${Version}\n' kea-dhcp4-server kea-dev | grep -qv '~bpo' || return 1
  fi
}

make_root() {
  local suite=$1 root=$cache/roots/$1 script=
  if root_ok "$suite"; then
    echo "root $root is up to date"
    return 0
  fi
  assert_unmounted "$root"
  rm -rf "$root"
  local base
  base=$(base_suite "$suite")
  # bookworm's debootstrap knows no suites after trixie; sid's script fits them.
  [[ -e "/usr/share/debootstrap/scripts/$base" ]] || script=/usr/share/debootstrap/scripts/sid
  echo "debootstrap --variant=minbase $base $root $mirror $script"
  # In a mount namespace of its own: if it is killed, its /proc and /sys
  # mounts in the new root go with it.
  unshare --mount --propagation private debootstrap --variant=minbase "$base" "$root" "$mirror" $script ||
    return 1
  if backports_of "$suite"; then
    echo "deb $mirror $suite main" >"$root/etc/apt/sources.list.d/kea-matrix-backports.list"
    printf 'Package: src:isc-kea\nPin: release n=%s\nPin-Priority: 990\n' "$suite" \
      >"$root/etc/apt/preferences.d/kea-matrix-backports"
    cat "$root/etc/apt/sources.list.d/kea-matrix-backports.list" "$root/etc/apt/preferences.d/kea-matrix-backports"
  fi
  # No daemon starts inside (the tests start their own Kea); dpkg need not
  # fsync a throwaway root.
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 755 "$root/usr/sbin/policy-rc.d"
  echo force-unsafe-io >"$root/etc/dpkg/dpkg.cfg.d/kea-matrix-unsafe-io"
  echo 'APT::Install-Recommends "false";' >"$root/etc/apt/apt.conf.d/99kea-matrix"
  cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
  if ! in_root "$suite" nonet "apt-get update -qq" 2>&1 | tee "$root.apt-update.log"; then
    # Debian testing's Release can be past its Valid-Until by this machine's
    # clock (forky was); only then is the check turned off, for this root.
    grep -q 'is expired\|invalid since' "$root.apt-update.log" || return 1
    echo 'Acquire::Check-Valid-Until "false";' >>"$root/etc/apt/apt.conf.d/99kea-matrix"
    in_root "$suite" nonet "apt-get update -qq" || return 1
  fi
  rm -f "$root.apt-update.log"
  in_root "$suite" nonet "apt-get install -y -qq --no-install-recommends ${packages[*]}" || return 1
  mkdir -p "$root/opt/cargo-home"
  root_stamp "$suite" >"$root/.kea-matrix-stamp"
  root_ok "$suite" || { echo "the root is not complete after apt-get install"; return 1; }
  chroot "$root" dpkg-query -W -f '${Package} ${Version}\n' kea-dev kea-dhcp4-server
}

# The cargo configuration of every root: the host's vendored crates, never
# the network.
cargo_config() {
  cat >"$cache/roots/$1/opt/cargo-home/config.toml" <<'EOF'
[source.crates-io]
replace-with = "vendored-sources"
[source.vendored-sources]
directory = "/opt/vendor"
[net]
offline = true
EOF
}

# --- the steps --------------------------------------------------------------
step_cmd() { # the command of step $2 for suite $1, run in the root
  local skip tests
  tests=$(printf -- ' --test %s' "${discovery_tests[@]}")
  case $2 in
    build)
      # KEA_MATRIX_BUILD_NICE: tests/run.sh builds beside the host's tests,
      # which must get the CPU first; the matrix's own tests run un-niced.
      echo "cargo --version && nice -n ${KEA_MATRIX_BUILD_NICE:-0} sh -c" \
        "'cargo build --release --locked --lib --bins --examples" \
        "&& cargo test --release --locked --no-run --test kea_hook --test kea_dhcp6$tests'"
      ;;
    kea_hook) echo "cargo test --release --locked --test kea_hook" ;;
    kea_dhcp6) echo "cargo test --release --locked --test kea_dhcp6" ;;
    kea_discovery)
      skip=$(printf -- ' --skip %s' "${discovery_skip[@]}")
      echo "cargo test --release --locked$tests -- --exact$skip"
      ;;
    smoke) echo "python3 tests/matrix/smoke.py" ;;
    quickstart) echo "bash tests/quickstart.sh" ;;
    package) echo "bash tests/matrix/package.sh" ;;
    kea_upgrade) echo "KEA_UPGRADE_CHECK_THROWAWAY=1 bash packaging/check-kea-upgrade.sh" ;;
    bench)
      echo "BENCH_MODE=$bench_mode BENCH_ROUNDS=$bench_rounds BENCH_SECONDS=$bench_seconds" \
        "cargo bench --locked --bench kea_throughput"
      ;;
  esac
}

all_steps=(root build kea_hook kea_discovery kea_dhcp6 smoke quickstart package kea_upgrade bench)
test_steps=(kea_hook kea_discovery kea_dhcp6 smoke quickstart package kea_upgrade)
wants() { [[ " ${steps[*]} " == *" $1 "* ]]; }
# The bench's length (they go into a command line run in the root).
bench_rounds=${BENCH_ROUNDS:-5}
bench_seconds=${BENCH_SECONDS:-5}
if wants bench && ! [[ "$bench_rounds" =~ ^[1-9][0-9]?$ && "$bench_seconds" =~ ^[1-9][0-9]?$ ]]; then
  die "BENCH_ROUNDS and BENCH_SECONDS must be 1..99, got '$bench_rounds' and '$bench_seconds'"
fi
# BENCH_MODE=instructions counts instructions under callgrind instead of
# timing (benches/kea_throughput.rs); the root then needs valgrind.
bench_mode=${BENCH_MODE:-}
if wants bench && ! [[ "$bench_mode" == "" || "$bench_mode" == instructions ]]; then
  die "BENCH_MODE must be empty (throughput) or 'instructions', got '$bench_mode'"
fi

# run_step SUITE STEP: runs it with its output in logs/SUITE/STEP.log, prints
# its line, and leaves "ok|FAIL SECONDS" in logs/SUITE/STEP.result (steps run
# in background jobs too).
run_step() {
  local suite=$1 step=$2 log=$cache/logs/$1/$2.log start rc=0 outcome
  start=$(date +%s)
  if [[ "$step" == root ]]; then
    make_root "$suite" >"$log" 2>&1 || rc=$?
  else
    in_root "$suite" net "$(step_cmd "$suite" "$step")" >"$log" 2>&1 || rc=$?
  fi
  outcome=$( ((rc == 0)) && echo ok || echo FAIL)
  echo "$outcome $(($(date +%s) - start))" >"$cache/logs/$suite/$step.result"
  printf 'kea-matrix: %-7s %-14s %5d s  %s\n' "$suite" "$step" "$(($(date +%s) - start))" "$outcome" >&2
  return "$rc"
}
outcome() { cut -d' ' -f1 "$cache/logs/$1/$2.result" 2>/dev/null || echo not-run; }

# One suite's tests, after the previous suite's (a lock): they run while the
# next suite builds, but never beside another suite's tests.
run_tests() {
  local suite=$1 step
  exec 9>"$cache/.tests.lock"
  flock 9
  for step in "${test_steps[@]}"; do
    wants "$step" && { run_step "$suite" "$step" || true; }
  done
  return 0
}

# One suite's bench, alone: after every suite's build and tests (and under
# the tests' lock, so not beside another run's tests either), since
# anything else on the CPU moves Kea's throughput. Prints its figures.
run_bench() {
  local suite=$1
  (
    exec 9>"$cache/.tests.lock"
    flock 9
    if [[ "$bench_mode" == instructions ]]; then
      in_root "$suite" nonet "command -v valgrind >/dev/null ||
        apt-get install -y -qq --no-install-recommends valgrind" >"$cache/logs/$suite/valgrind.log" 2>&1 ||
        { say "$suite: apt-get install valgrind failed ($cache/logs/$suite/valgrind.log)"; exit 1; }
    fi
    run_step "$suite" bench
  ) || return 1
  sed -n '/^$/d; /^kea_throughput: Kea/p; /^load average/p; /^median/,/^hook callout/p;
    /^kea_throughput (instructions)/,/^profiles of/p' "$cache/logs/$suite/bench.log" |
    sed "s/^/kea-matrix: $suite: /" >&2
}

# Background jobs get a process group of their own (set -m), so that an
# interrupted run stops the whole tree each started (debootstrap, apt,
# cargo, Kea), and only that.
jobs_started=()
background() {
  set -m
  "$@" </dev/null &
  jobs_started+=($!)
  set +m
}
stop_jobs() {
  local j
  for j in "${jobs_started[@]}"; do
    kill -0 "$j" 2>/dev/null && kill -- "-$j" 2>/dev/null
  done
  return 0
}
trap stop_jobs EXIT

total_start=$(date +%s)
for suite in "${suites[@]}"; do
  mkdir -p "$cache/logs/$suite"
  rm -f "$cache/logs/$suite/"*.result
done
vendor_crates || die "cargo vendor --locked into $cache/vendor failed"

# Making a root waits mostly on the network and dpkg, a build and the tests
# on the CPU: every root is made at once, each suite builds as soon as its
# root is there, and its tests run while the next suite builds.
declare -A root_job
if wants root; then
  for suite in "${suites[@]}"; do
    background run_step "$suite" root
    root_job[$suite]=${jobs_started[-1]}
  done
fi
test_jobs=()
ready=()
for suite in "${suites[@]}"; do
  if wants root; then
    wait "${root_job[$suite]}" || true
    [[ "$(outcome "$suite" root)" == ok ]] || continue
  fi
  if [[ ! -d "$cache/roots/$suite/opt/cargo-home" ]]; then
    say "$suite: no root: run the root step (KEA_MATRIX_STEPS=root)"
    echo "FAIL 0" >"$cache/logs/$suite/root.result"
    continue
  fi
  cargo_config "$suite"
  # A fresh /tmp for this run's tests (the last run's stays until now).
  rm -rf "${cache:?}/scratch/$suite"
  if wants build; then
    run_step "$suite" build || continue
  fi
  background run_tests "$suite"
  test_jobs+=("${jobs_started[-1]}")
  ready+=("$suite")
done
for j in "${test_jobs[@]}"; do
  wait "$j" || true
done
if wants bench; then
  for suite in "${ready[@]}"; do
    run_bench "$suite" || true
  done
fi

failed=()
left=$(findmnt -rn -o TARGET | grep "^$cache" || true)
[[ -z "$left" ]] || { say "mounts left behind: $left"; failed+=(mounts); }

say "summary ($(($(date +%s) - total_start)) s in all):"
for suite in "${suites[@]}"; do
  line=""
  for step in "${all_steps[@]}"; do
    wants "$step" || continue
    read -r res secs < <(cat "$cache/logs/$suite/$step.result" 2>/dev/null || echo "not-run 0")
    line+=" $step $res ${secs}s;"
    [[ "$res" == ok ]] || failed+=("$suite.$step")
  done
  say "  $suite:${line%;}"
done
if ((${#failed[@]})); then
  for f in "${failed[@]}"; do
    [[ "$f" == mounts || ! -f "$cache/logs/${f%%.*}/${f#*.}.log" ]] && continue
    say "--- ${f%%.*} ${f#*.}: last 40 lines of $cache/logs/${f%%.*}/${f#*.}.log"
    tail -40 "$cache/logs/${f%%.*}/${f#*.}.log" >&2
  done
  die "failed: ${failed[*]}"
fi
say "ok"
