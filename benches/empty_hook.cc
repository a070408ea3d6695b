// The floor for the throughput benchmark: a hook that registers the same
// callouts as ours and returns at once, so the difference between it and
// no hook is Kea's own callout machinery. Built by benches/kea_throughput.rs.
// First, as in the shim: Kea 3.0's headers want config.h before them.
#include <config.h>

#include <hooks/hooks.h>

using isc::hooks::CalloutHandle;
using isc::hooks::LibraryHandle;

extern "C" {
int version() { return KEA_HOOKS_VERSION; }
int multi_threading_compatible() { return 1; }
int load(LibraryHandle&) { return 0; }
int unload() { return 0; }
int lease4_select(CalloutHandle&) { return 0; }
int lease4_renew(CalloutHandle&) { return 0; }
}
