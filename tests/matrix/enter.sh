#!/usr/bin/env bash
# Runs one command inside a suite's Debian root. tests/kea-matrix.sh calls it
# as the first process of fresh mount and PID namespaces (and, for
# everything but apt, a network namespace of its own):
#   unshare --mount --propagation private --pid --fork --kill-child [--net] \
#     bash tests/matrix/enter.sh COMMAND
# with the host paths to mount in the environment: M_ROOT (the root), M_REPO
# (this repository, mounted read-only), M_TARGET (the suite's cargo target
# dir, over the repository's target/), M_SCRATCH (the root's /tmp; a tmpfs
# when empty),
# M_TOOLCHAIN (the host's rustup toolchain), M_VENDOR (the vendored crates),
# M_CARGO_DEB (the host's cargo-deb binary), M_MOCKUPS and M_NETBOX (the
# shared folder's parts), M_NET=1 when in a network namespace of its own,
# M_OVERLAY=DIR to run in an overlay of the root (its changes kept in DIR).
# Every mount below lives only in that mount namespace: the host never sees
# them, and they vanish with the namespace even if this script is killed.
# When this script (PID 1 of the namespace) ends, the kernel kills whatever
# the command left running, so no Kea or emulator survives a run.
set -euo pipefail

command=$1
root=$M_ROOT
src=/build/kea-hook-bmc-discovery

mounted=()
bind() { # bind SOURCE DEST [ro]
  if [[ -d "$1" ]]; then mkdir -p "$2"; else mkdir -p "$(dirname "$2")" && touch "$2"; fi
  mount --bind "$1" "$2"
  [[ "${3:-}" == ro ]] && mount -o remount,bind,ro "$2"
  mounted+=("$2")
}
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount -R "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" 2>/dev/null || true
  done
}
trap cleanup EXIT

if [[ -n "${M_OVERLAY:-}" ]]; then
  # A throwaway copy of the root: the command's changes (it replaces the
  # installed Kea) go to M_OVERLAY/upper and the cached root stays as it was.
  rm -rf "$M_OVERLAY"
  mkdir -p "$M_OVERLAY"/{upper,work,merged}
  mount -t overlay overlay -o "lowerdir=$root,upperdir=$M_OVERLAY/upper,workdir=$M_OVERLAY/work" \
    "$M_OVERLAY/merged"
  root=$M_OVERLAY/merged
  mounted+=("$root")
else
  # The root a mount point of its own, as / is on a machine: `ip netns exec`
  # (packaging/check-deb.sh) remounts / and fails on a plain directory.
  mount --bind "$root" "$root" && mounted+=("$root")
fi
mount -t proc proc "$root/proc" && mounted+=("$root/proc")
mount -t sysfs sysfs "$root/sys" && mounted+=("$root/sys")
mount --rbind /dev "$root/dev" && mounted+=("$root/dev")
mount -t tmpfs -o mode=0755 tmpfs "$root/run" && mounted+=("$root/run")
# Kea's directories as systemd makes them for Debian's kea-dhcp4-server unit
# (RuntimeDirectory, LogsDirectory, StateDirectory: 0750, _kea), which no
# package script makes without systemd. Kea 3.0 refuses unix sockets in a
# /run/kea more open than 0750.
kea_ids=$(awk -F: '$1 == "_kea" {print $3 ":" $4}' "$root/etc/passwd")
for d in run/kea run/lock/kea var/lib/kea var/log/kea; do
  mkdir -p "$root/$d"
  chmod 0750 "$root/$d"
  [[ -n "$kea_ids" ]] && chown "$kea_ids" "$root/$d"
done
if [[ -n "${M_SCRATCH:-}" ]]; then
  bind "$M_SCRATCH" "$root/tmp"
else
  mount -t tmpfs tmpfs "$root/tmp" && mounted+=("$root/tmp")
fi
chmod 1777 "$root/tmp"

bind "$M_REPO" "$root$src" ro
bind "$M_TARGET" "$root$src/target"
# The tests find the shared folder beside the repository, as on the host.
[[ -n "${M_MOCKUPS:-}" ]] && bind "$M_MOCKUPS" "$root/build/shared/redfish-mockups" ro
[[ -n "${M_NETBOX:-}" ]] && bind "$M_NETBOX" "$root/build/shared/netbox" ro
bind "$M_TOOLCHAIN" "$root/opt/rust" ro
bind "$M_VENDOR" "$root/opt/vendor" ro
bind "$M_CARGO_DEB" "$root/opt/cargo-bin/cargo-deb" ro

# A network namespace of its own starts with lo down.
[[ "${M_NET:-}" == 1 ]] && ip link set lo up

status=0
chroot "$root" /usr/bin/env -i \
  PATH=/opt/rust/bin:/opt/cargo-bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOME=/root CARGO_HOME=/opt/cargo-home LANG=C.UTF-8 TERM=dumb CI="${CI:-}" \
  DEBIAN_FRONTEND=noninteractive \
  REDFISH_MOCKUPS=/build/shared/redfish-mockups NETBOX_SCRIPTS=/build/shared/netbox \
  KEA_MATRIX_SUITE="${KEA_MATRIX_SUITE:-}" \
  /bin/bash -c "cd $src && $command" || status=$?
exit "$status"
