#!/usr/bin/env bash
# Runs every fuzz target (tests/fuzz, docs/FUZZING.md) for a bounded time:
# builds them with cargo-fuzz (libFuzzer, AddressSanitizer, debug
# assertions), seeds their corpora from the shared Redfish mockups, and
# runs each for FUZZ_SECONDS. Fails on the first crash, leak, timeout or
# out-of-memory, naming the input that caused it.
#
#   bash tests/fuzz.sh          build, then run every target
#   bash tests/fuzz.sh build    only build (tests/run.sh builds while it
#                               waits for NetBox, and runs them later)
#
#   FUZZ_SECONDS   seconds per target (default 20: the CI run, all targets
#                  and the build within ~5 minutes on 2 cores)
#   FUZZ_TARGETS   targets to run (default: all), space-separated
#   FUZZ_CACHE     seeds, corpora, crash inputs and the build (default
#                  ~/.cache/kea-hook-bmc-discovery/fuzz)
#   FUZZ_TARGET_DIR  cargo's target dir for the fuzz build (default
#                  $FUZZ_CACHE/target)
#   FUZZ_KEEP_CORPUS=1  keep what each run finds and start the next from it
#                  (long runs); by default every run starts from the seeds
#                  alone, so that loading a grown corpus cannot stretch a
#                  CI run past its time
#
# cargo-fuzz needs nightly flags (-Zsanitizer, -Cpasses=sancov-module):
# RUSTC_BOOTSTRAP=1 lets the stable compiler accept them.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/shared-dir.sh

case "${1:-}" in
  "" | build) ;;
  *) echo "fuzz: unknown argument '$1'; usage: bash tests/fuzz.sh [build]" >&2; exit 2 ;;
esac
seconds="${FUZZ_SECONDS:-20}"
cache="${FUZZ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kea-hook-bmc-discovery/fuzz}"
all="redfish_inventory redfish_json placement lease_event command_args credentials hook_config"
targets="${FUZZ_TARGETS:-$all}"

if ! command -v cargo-fuzz >/dev/null; then
  echo "fuzz: cargo-fuzz is not installed; tests/setup.sh installs it" \
       "(cargo install --locked cargo-fuzz --version '~0.13')" >&2
  exit 1
fi
if [[ -z "${REDFISH_MOCKUPS:-}" ]]; then
  echo "fuzz: no shared Redfish mockups to seed the corpora from; set SHARED_DIR" >&2
  exit 1
fi

started=$SECONDS
export RUSTC_BOOTSTRAP=1
# The sanitizer build of every dependency takes minutes; kept in the cache
# (outside the clone, like the Kea matrix's), later runs redo what changed.
target_dir="${FUZZ_TARGET_DIR:-$cache/target}"
cargo fuzz build --fuzz-dir tests/fuzz -O -a --target-dir "$target_dir"
bin="$target_dir/$(rustc -vV | sed -n 's/^host: //p')/release"
echo "fuzz: built in $((SECONDS - started)) s"
[[ "${1:-}" != build ]] || exit 0

rm -rf "$cache/seeds"
python3 tests/fuzz/seed.py "$REDFISH_MOCKUPS" "$cache/seeds"

for t in $targets; do
  corpus="$cache/corpus/$t"
  [[ "${FUZZ_KEEP_CORPUS:-0}" == 1 ]] || rm -rf "$corpus"
  mkdir -p "$corpus" "$cache/artifacts/$t"
  echo "fuzz: $t for $seconds s"
  # -timeout: one input taking seconds is a finding (every parser here
  # must be bounded); -rss_limit_mb: so is one taking gigabytes.
  # -max_len: real Redfish answers are at most ~40 KB and a whole
  # discovery ~240 KB; the others are a lease struct or a short text.
  case "$t" in
    redfish_inventory) max_len=262144 ;;
    redfish_json) max_len=131072 ;;
    lease_event) max_len=520 ;;  # sizeof(bmc_lease_event) is 520 (504 before family + ipv6)
    *) max_len=16384 ;;
  esac
  log="$cache/artifacts/$t/last-run.log"
  # Inputs that once crashed a target run first, every time.
  regressions=()
  [[ -d "tests/fuzz/regressions/$t" ]] && regressions=("tests/fuzz/regressions/$t")
  if ! "$bin/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -max_len="$max_len" -print_final_stats=1 \
      -artifact_prefix="$cache/artifacts/$t/" \
      "$corpus" "$cache/seeds/$t" "${regressions[@]}" >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz: $t FAILED; the input is in $cache/artifacts/$t/ (see docs/FUZZING.md" \
         "to reproduce and minimise it); log: $log" >&2
    exit 1
  fi
  grep -E '^stat::(number_of_executed_units|peak_rss_mb)|^#[0-9]+.*DONE' "$log" \
    | sed "s/^/fuzz: $t: /"
done
echo "fuzz: all targets passed in $((SECONDS - started)) s"
