//! The metric catalogue: every counter, gauge and histogram the hook
//! publishes, with its name in Kea's statistics and in Prometheus and what
//! it means. Both publishers (`kea_stats`, `prometheus`) read this one
//! table, so the two can never disagree on a name or a meaning.
//!
//! The names are part of the interface (dashboards, alert rules): see
//! docs/METRICS.md before changing one.

/// One metric the hook publishes: its name in Kea's statistics (after
/// [`PREFIX`]) and in Prometheus (`prometheus.rs`), and what it means.
#[derive(Debug)]
pub struct Metric {
    pub kea: &'static str,
    pub prom: &'static str,
    pub help: &'static str,
}

const fn metric(kea: &'static str, prom: &'static str, help: &'static str) -> Metric {
    Metric { kea, prom, help }
}

/// Counters, in `Snapshot::counter_values` order.
pub const COUNTERS: [Metric; 12] = [
    metric(
        "leases-seen",
        "bmc_discovery_leases_seen_total",
        "Real leases the lease callouts saw (no DHCPDISCOVER).",
    ),
    metric(
        "leases-accepted",
        "bmc_discovery_leases_accepted_total",
        "BMC leases handed to the workers.",
    ),
    metric(
        "leases-not-opted-in",
        "bmc_discovery_leases_not_opted_in_total",
        "Leases of subnets not opted in.",
    ),
    metric(
        "leases-no-match",
        "bmc_discovery_leases_no_match_total",
        "Leases of opted-in subnets no pattern matched.",
    ),
    metric(
        "leases-merged-in-flight",
        "bmc_discovery_leases_merged_in_flight_total",
        "Leases of a BMC already queued or in a worker.",
    ),
    metric(
        "queue-drops",
        "bmc_discovery_queue_drops_total",
        "BMC leases dropped because the queue was full (reconciliation recovers them).",
    ),
    metric(
        "scheduled",
        "bmc_discovery_scheduled_total",
        "BMCs queued from the state file (retries, reconciliation) or by a command.",
    ),
    metric(
        "attempts-succeeded",
        "bmc_discovery_attempts_succeeded_total",
        "Attempts that ended registered (or discovered without NetBox).",
    ),
    metric(
        "attempts-failed",
        "bmc_discovery_attempts_failed_total",
        "Attempts that failed.",
    ),
    metric(
        "abandoned-at-unload",
        "bmc_discovery_abandoned_at_unload_total",
        "BMC leases still queued when the hook was unloaded.",
    ),
    metric(
        "reconciliations",
        "bmc_discovery_reconciliations_total",
        "Walks of Kea's lease database.",
    ),
    metric(
        "panics",
        "bmc_discovery_panics_total",
        "Internal errors caught before they reached Kea.",
    ),
];

/// Gauges of the queue and the workers, in `Snapshot::gauge_values` order.
pub const GAUGES: [Metric; 4] = [
    metric(
        "queue-depth",
        "bmc_discovery_queue_depth",
        "BMC leases waiting for a worker.",
    ),
    metric(
        "queue-capacity",
        "bmc_discovery_queue_capacity",
        "Size of the queue between packet threads and workers.",
    ),
    metric(
        "in-flight",
        "bmc_discovery_in_flight",
        "BMCs queued or in a worker.",
    ),
    metric("workers", "bmc_discovery_workers", "Worker threads."),
];

/// Histograms, in `Snapshot::histograms` order.
pub const HISTOGRAMS: [Metric; 3] = [
    metric(
        "lease-to-done-ms",
        "bmc_discovery_lease_to_done_seconds",
        "From the lease to registered in NetBox (or discovered without NetBox), retries included.",
    ),
    metric(
        "discovery-ms",
        "bmc_discovery_discovery_seconds",
        "One Redfish discovery.",
    ),
    metric(
        "netbox-ms",
        "bmc_discovery_netbox_seconds",
        "One NetBox registration.",
    ),
];
