# Sourced by tests/setup.sh and tests/run.sh: finds the team's shared folder
# (Redfish mockups, NetBox scripts) and exports REDFISH_MOCKUPS and
# NETBOX_SCRIPTS for the tests. Looked for, in order: $SHARED_DIR; `shared`
# beside this repository; `shared` inside it; and, for a clone of a local
# checkout (git clone . /tmp/x), `shared` beside the repository it was
# cloned from.
shared_dir_candidates() {
  local repo origin
  repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  [[ -n "${SHARED_DIR:-}" ]] && echo "$SHARED_DIR"
  echo "$repo/../shared"
  echo "$repo/shared"
  origin="$(git -C "$repo" config --get remote.origin.url 2>/dev/null || true)"
  origin="${origin#file://}"
  if [[ "$origin" == /* && -d "$origin" ]]; then
    echo "$origin/../shared"
  fi
}

if [[ -z "${REDFISH_MOCKUPS:-}" || -z "${NETBOX_SCRIPTS:-}" ]]; then
  while read -r dir; do
    if [[ -d "$dir/redfish-mockups" && -d "$dir/netbox" ]]; then
      dir="$(cd "$dir" && pwd)"
      export REDFISH_MOCKUPS="${REDFISH_MOCKUPS:-$dir/redfish-mockups}"
      export NETBOX_SCRIPTS="${NETBOX_SCRIPTS:-$dir/netbox}"
      break
    fi
  done < <(shared_dir_candidates)
fi
if [[ -z "${REDFISH_MOCKUPS:-}" ]]; then
  echo "tests: the shared folder (redfish-mockups, netbox) was not found beside this repository;" \
       "set SHARED_DIR=/path/to/shared" >&2
fi
