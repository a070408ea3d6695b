#!/usr/bin/env bash
# Runs every test: formatting, lints, unit tests, the integration tests
# that start the real kea-dhcp4 with the hook and drive it with perfdhcp,
# the fuzz targets for a bounded time, the README's quick start as written,
# the Debian package's build / install / examples / remove / purge, the
# Ansible role present / absent, and the Kea-version matrix (Kea 2.6 and 3.0
# in Debian roots: build, Kea tests, smoke checks, package).
# Needs root (it installs missing packages and adds 127.0.N.x addresses to lo).
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/setup.sh
# The tests serve ../shared/redfish-mockups and start ../shared/netbox.
source tests/shared-dir.sh
cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets
# Every parser of what a device or a client sends, fuzzed for a bounded time
# (FUZZ_SECONDS per target, default 20).
cargo fmt --check --manifest-path tests/fuzz/Cargo.toml
bash tests/fuzz.sh
# The README's quick start, command by command, with its documented output.
bash tests/quickstart.sh
# Installs and purges the package on this machine (refuses if it is installed).
bash packaging/check-deb.sh
# Runs the Ansible role here: present, present (changed=0), absent, present.
bash packaging/ansible/check-role.sh
# The same hook built, tested and packaged against Kea 2.6.3 (trixie) and
# 3.0.4 (forky), each in a Debian root of its own (kept in /var/cache).
bash tests/kea-matrix.sh
