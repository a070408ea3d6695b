#!/usr/bin/env bash
# Installs everything the build and the tests need on Debian 12 (Kea 2.2),
# 13 (Kea 2.6) or forky (Kea 3.0), as root.
# Idempotent: returns in a second when everything is there already.
#
#   bash tests/setup.sh             everything
#   bash tests/setup.sh packages    only the Debian packages and Kea's directories
#   bash tests/setup.sh tools       only the Rust and Python tools (no NetBox)
#
# tests/run.sh runs the two halves apart and starts NetBox between them,
# so that NetBox's first install overlaps the tools' compile.
set -euo pipefail
phase=${1:-all}
case "$phase" in
  all | packages | tools) ;;
  *) echo "setup: unknown phase '$phase'; usage: bash tests/setup.sh [packages|tools]" >&2; exit 2 ;;
esac

packages_phase() {
  packages=(
    kea-dhcp4-server kea-dev kea-admin kea-ctrl-agent  # Kea 2.2, its headers, perfdhcp
    kea-dhcp6-server                                  # the same hook in kea-dhcp6 (tests/kea_dhcp6.rs)
    libboost-dev                                      # Kea's headers include Boost
    libssl-dev                                        # ... and from Kea 3.0 Boost.Asio's SSL headers
    libclang-dev clang                                # bindgen (build.rs)
    g++ pkg-config iproute2 socat                     # C++ shim; test addresses; README examples
    lintian                                           # packaging/check-deb.sh
    prometheus                                        # promtool: the metrics page, alert rules
    tini                                              # packaging/ansible/check-role.sh without systemd
    debootstrap                                       # tests/kea-matrix.sh: a Debian root per Kea version
    postgresql redis-server libpq-dev gcc curl        # ../shared/netbox's NetBox (installed here, in one
                                                      # apt run, so that netbox-up never runs apt itself)
  )
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    if ((EUID != 0)); then
      echo "setup: missing Debian packages: ${missing[*]}; run as root: sudo bash tests/setup.sh" >&2
      exit 1
    fi
    echo "setup: apt-get install ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi

  # Kea's own directories, as Debian's kea-dhcp4-server unit makes them when
  # systemd starts it (RuntimeDirectory, StateDirectory, LogsDirectory; 0750,
  # owned by _kea): containers and chroots never start the unit, and the
  # README's quick start puts its socket and lease file there. Kea 2.6.3 and
  # later accept sockets, lease files and log files only in these (the tests
  # point each Kea at directories of its own instead). Kea 2.6.3 refuses every
  # unix socket unless /run/kea is exactly 0750 ("does not have permssions =
  # 750"), 3.0 when it is more open: an existing /run/kea is set to 0750.
  if ((EUID == 0)); then
    owner=root
    getent passwd _kea >/dev/null && owner=_kea
    for d in /run/kea /var/lib/kea /var/log/kea; do
      [[ -d "$d" ]] || install -d -m 0750 -o "$owner" -g "$owner" "$d"
    done
    [[ "$(stat -c %a /run/kea)" == 750 ]] || chmod 0750 /run/kea
  fi
}

tools_phase() {
  if ! command -v cargo >/dev/null; then
    echo "setup: cargo not found: install Rust (https://rustup.rs) and run again" >&2
    exit 1
  fi
  for component in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
  done
  # cargo-deb builds the Debian package (packaging/build-deb.sh); ~1 minute
  # to compile the first time.
  if ! command -v cargo-deb >/dev/null || [[ "$(cargo-deb --version 2>/dev/null)" != *" 3.8."* ]]; then
    cargo install --quiet --locked cargo-deb --version '~3.8'
  fi
  # cargo-fuzz runs the fuzz targets (tests/fuzz.sh, docs/FUZZING.md).
  if ! command -v cargo-fuzz >/dev/null || [[ "$(cargo-fuzz --version 2>/dev/null)" != *" 0.13."* ]]; then
    cargo install --quiet --locked cargo-fuzz --version '~0.13'
  fi
  # yamllint and ansible-core (PyPI) check the Ansible inventory the hook
  # writes; a virtualenv of their own keeps them off the system Python.
  tools_venv="${BMC_TEST_VENV:-$HOME/.cache/kea-hook-bmc-discovery/venv}"
  if [[ ! -x "$tools_venv/bin/ansible-inventory" || ! -x "$tools_venv/bin/yamllint" || ! -x "$tools_venv/bin/ansible-lint" ]]; then
    python3 -m venv "$tools_venv"
    "$tools_venv/bin/pip" install -q 'ansible-core>=2.15,<2.18' 'yamllint>=1.33' 'ansible-lint>=24.7,<26'
  fi
}

netbox_phase() {
  # A real NetBox for the NetBox tests, from the team's shared scripts (beside
  # this repository). The first run installs and migrates it (~8 minutes on 2
  # cores); later runs find it up in a fraction of a second. Port 18000: 8000
  # is kea-ctrl-agent's.
  source "$(dirname "$0")/shared-dir.sh"
  netbox_scripts="${NETBOX_SCRIPTS:-}"
  if [[ -n "$netbox_scripts" && -x "$netbox_scripts/netbox-up" ]]; then
    NETBOX_PORT="${NETBOX_PORT:-18000}" "$netbox_scripts/netbox-up" >/dev/null
  else
    echo "setup: netbox-up not found; the NetBox tests will fail (set SHARED_DIR or NETBOX_SCRIPTS)" >&2
  fi
}

case "$phase" in
  packages) packages_phase ;;
  tools) tools_phase ;;
  all) packages_phase; tools_phase; netbox_phase ;;
esac
case "$phase" in
  packages) echo "setup: packages ok (kea-dhcp4 $(kea-dhcp4 -v), kea-dhcp6 $(kea-dhcp6 -v))" >&2 ;;
  *) echo "setup: $phase ok (kea-dhcp4 $(kea-dhcp4 -v), $(cargo --version))" >&2 ;;
esac
