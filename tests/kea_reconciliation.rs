//! Reconciliation inside the real kea-dhcp4 brings back every BMC whose
//! lease the hook did not finish: leases dropped by a full queue, and work
//! lost when Kea is killed mid-burst. Leases in Kea's memfile; the same
//! scenarios with leases in PostgreSQL are in tests/kea_postgresql.rs.
//!
//! Needs root (loopback addresses), kea-dhcp4 and perfdhcp: see README.md.

use bmc_test_support::discovery::LeaseStore;
use bmc_test_support::kea::Net;
use bmc_test_support::reconciliation::{full_queue_recovered, killed_mid_burst_recovered};

#[test]
fn a_full_queue_loses_nothing_reconciliation_recovers_every_bmc() {
    full_queue_recovered(
        Net::new(26),
        "discovery-queue-full",
        500,
        &LeaseStore::Memfile,
    );
}

#[test]
fn kea_killed_mid_burst_discovers_every_bmc_after_restart() {
    killed_mid_burst_recovered(Net::new(27), "discovery-sigkill", 200, &LeaseStore::Memfile);
}
