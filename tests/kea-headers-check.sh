#!/usr/bin/env bash
# Compiles the hook's C++ shim (and benches/empty_hook.cc) against the
# headers of a Kea that has no Debian package to build against, Kea 3.2
# first: taken straight from ISC's source, with a config.h written here.
#
#   bash tests/kea-headers-check.sh KEA_GIT_DIR [TAG]   # TAG default Kea-3.2.0
#   bash tests/kea-headers-check.sh KEA_SOURCE_DIR      # an unpacked kea-X.Y.Z.tar.xz
#
# KEA_GIT_DIR is a clone of ISC's Kea (bare or not), e.g.
#   git clone --bare https://github.com/isc-projects/kea.git /var/tmp/kea.git
# Nothing of Kea is copied into this repository: the headers are copied
# into a temporary directory (removed at the end), laid out as kea-dev
# installs them (src/lib/<lib>/*.h -> include/kea/<lib>/*.h). The version
# comes from their hooks/hooks.h (KEA_HOOKS_VERSION 30200 is Kea 3.2.0).
#
# What it runs:
#   1. `cargo check --lib` with KEA_INCLUDE_DIR at those headers: build.rs
#      reads the version, and compiles src/shim/*.cc with its own flags
#      (-std=c++14 -Wall -Wextra -Werror) exactly as a real build does. A
#      Kea that build.rs does not support is built with BMC_KEA_UNTESTED=1.
#   2. g++ -fsyntax-only -Wall -Wextra -Werror of src/shim/*.cc under C++17
#      and C++20 as well, and of benches/empty_hook.cc.
# What it cannot check: linking (that needs this Kea's libraries, hence a
# build of Kea), and anything at run time.
#
# The config.h is what a Linux build with OpenSSL (Debian's choice) defines
# that the included headers read; meson would generate it from config.h.in.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

die() {
  echo "kea-headers-check: FAIL: $*" >&2
  exit 1
}
say() { echo "kea-headers-check: $*" >&2; }

usage="usage: bash tests/kea-headers-check.sh KEA_GIT_DIR [TAG] | KEA_SOURCE_DIR (a clone of https://github.com/isc-projects/kea.git, or an unpacked release)"
source_dir=${1:-}
[[ -n "$source_dir" ]] || die "$usage"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kea-headers-check.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
include=$tmp/include/kea
mkdir -p "$tmp/include"
if [[ -f "$source_dir/src/lib/hooks/hooks.h" ]]; then
  what=$source_dir
  mkdir -p "$include"
  (cd "$source_dir/src/lib" && find . -name '*.h' -print0 | tar --null -T - -cf -) | tar -x -C "$include"
else
  tag=${2:-Kea-3.2.0}
  git_dir=$source_dir
  git --git-dir="$git_dir" rev-parse --git-dir >/dev/null 2>&1 || git_dir=$source_dir/.git
  git --git-dir="$git_dir" rev-parse -q --verify "$tag^{commit}" >/dev/null ||
    die "$source_dir is neither a Kea source tree (no src/lib/hooks/hooks.h) nor a Kea git clone with '$tag' (git --git-dir=$git_dir tag -l 'Kea-*' lists the tags); $usage"
  what="$tag ($(git --git-dir="$git_dir" rev-parse --short "$tag^{commit}"))"
  git --git-dir="$git_dir" archive --format=tar "$tag" -- ':(glob)src/lib/**/*.h' | tar -x -C "$tmp"
  mv "$tmp/src/lib" "$include"
fi
hooks=$(sed -n 's/^const int KEA_HOOKS_VERSION = \([0-9]*\);.*/\1/p' "$include/hooks/hooks.h")
[[ "$hooks" =~ ^[1-9][0-9]{4}$ ]] || die "no KEA_HOOKS_VERSION = N in $what's src/lib/hooks/hooks.h"
version=$((hooks / 10000)).$((hooks / 100 % 100)).$((hooks % 100))
say "$what: $(find "$include" -name '*.h' | wc -l) headers, KEA_HOOKS_VERSION $hooks (Kea $version)"

cat >"$include/config.h" <<EOF
/* Written by tests/kea-headers-check.sh for Kea $version: the config.h.in macros
   that the headers read, as a Linux build with OpenSSL sets them. */
#define CONFIG_H_WAS_INCLUDED
#define CHRONO_SAME_DURATION
#define LOG4CPLUS_INITIALIZER_H
#define OS_LINUX
#define PACKAGE kea
#define PACKAGE_NAME kea
#define PACKAGE_VERSION $version
#define VERSION "$version"
#define WITH_OPENSSL
#define HAVE_NEW_SSL_API
#define HAVE_OPENSSL_VERSION
EOF

failed=()
target=$repo/target/kea-headers-check
log=$tmp/cargo-check.log
say "1. cargo check --lib (build.rs compiles src/shim/*.cc with -std=c++14 -Wall -Wextra -Werror)"
if KEA_INCLUDE_DIR=$include BMC_KEA_UNTESTED=1 CARGO_TARGET_DIR=$target \
  cargo check --locked --lib >"$log" 2>&1; then
  build=$(ls -td "$target"/debug/build/kea-hook-bmc-discovery-*/out | head -1)
  say "   ok: build.rs said: $(sed -n 's/^cargo:warning=//p; s/^cargo:rustc-env=\(BMC_KEA_VERSION=\)/\1/p' "${build%/out}/output" | tr '\n' ' ')"
else
  grep -v '^warning: kea-hook-bmc-discovery@' "$log" | tail -40 >&2
  failed+=("shim (build.rs, c++14)")
fi

# build.rs's generated message files, for the shim's other standards.
out=$(ls -td "$target"/debug/build/kea-hook-bmc-discovery-*/out 2>/dev/null | head -1 || true)
flags=(-fsyntax-only -Wall -Wextra -Werror -I include -isystem "$include" "-DBMC_KEA_HOOKS_VERSION=$hooks")
for std in c++17 c++20; do
  for src in src/shim/*.cc; do
    if [[ -z "$out" ]]; then
      failed+=("$src $std (no build.rs output)")
      continue
    fi
    say "2. g++ -std=$std ${flags[*]/$include/\$KEA} -I \$OUT $src"
    g++ -std=$std "${flags[@]}" -I "$out" "$src" || failed+=("$src $std")
  done
done
say "2. g++ -std=c++14 -fsyntax-only -Wall -Wextra -Werror -isystem \$KEA benches/empty_hook.cc"
g++ -std=c++14 -fsyntax-only -Wall -Wextra -Werror -isystem "$include" benches/empty_hook.cc ||
  failed+=(benches/empty_hook.cc)

((${#failed[@]} == 0)) || die "against Kea $version's headers: ${failed[*]}"
say "ok: the shim and the empty hook compile against Kea $version's headers ($(g++ -dumpfullversion), Boost $(sed -n 's/^#define BOOST_LIB_VERSION "\(.*\)"/\1/p' /usr/include/boost/version.hpp)); not linked, not run"
