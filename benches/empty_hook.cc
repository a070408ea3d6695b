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
// What the hook registers in kea-dhcp6 (benches/kea6_throughput.rs).
// Kea looks up only the hook points its daemon has: kea-dhcp4 never asks
// for leases6_committed and never calls the lease6 ones.
int lease6_select(CalloutHandle&) { return 0; }
int lease6_renew(CalloutHandle&) { return 0; }
int lease6_rebind(CalloutHandle&) { return 0; }
int leases6_committed(CalloutHandle&) { return 0; }
}
