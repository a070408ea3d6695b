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
pub const COUNTERS: [Metric; 13] = [
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
        "leases-no-mac",
        "bmc_discovery_leases_no_mac_total",
        "DHCPv6 leases of opted-in subnets without a MAC address (Kea's mac-sources found none).",
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

/// The help of `bmc_discovery_attempt_failures_total`: every failure class
/// there is (the discovery's, `redfish::FailureKind`, and the
/// registration's, `work::pipeline`); tests on both sides check it.
pub const FAILURE_CLASSES_HELP: &str = "Failed attempts by class: discovery (unreachable, \
    timeout, tls, auth, credential-suspended, protocol, cancelled, foreign-link, \
    budget-requests, budget-bytes, budget-response, budget-members, budget-memory, budget-time) \
    and registration (netbox-unavailable, netbox-refused, netbox-conflict, netbox-failed, \
    cancelled).";

/// Host ports' LLDP neighbours the registration could not cable, by
/// reason (`netbox::cables::REASONS`): in Kea's statistics
/// `lldp-unmatched.<reason>`, in Prometheus one series per reason.
pub const LLDP_UNMATCHED: Metric = metric(
    "lldp-unmatched",
    "bmc_discovery_lldp_unmatched_total",
    "LLDP neighbours of host ports not cabled in NetBox, counted when first reported for a BMC, \
     by reason: switch-unknown, switch-ambiguous, port-unknown, port-taken (the switch port is \
     cabled to something else), host-port-taken (the host interface has a cable not the hook's).",
);

/// Whether `class` is one of the classes [`FAILURE_CLASSES_HELP`] lists.
pub fn failure_class_listed(class: &str) -> bool {
    FAILURE_CLASSES_HELP
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .any(|w| w == class)
}

/// The credentials entries' failure budgets (redfish.credential-failure-budget),
/// published with discovery. In Kea's statistics the first is the number
/// of entries suspended; in Prometheus one series per entry.
pub const CREDENTIALS: [Metric; 2] = [
    metric(
        "credentials-suspended",
        "bmc_discovery_credential_suspended",
        "1 while a credentials entry is suspended (it failed redfish.credential-failure-budget \
         logins across BMCs), else 0.",
    ),
    metric(
        "credential-suspensions",
        "bmc_discovery_credential_suspensions_total",
        "Suspensions of credentials entries begun since the hook was loaded.",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redfish::FailureKind;

    #[test]
    fn the_failure_help_lists_every_discovery_class() {
        for kind in FailureKind::ALL {
            assert!(failure_class_listed(kind.as_str()), "{}", kind.as_str());
        }
        assert!(!failure_class_listed("netbox"));
        for reason in crate::netbox::register::cables::REASONS {
            assert!(LLDP_UNMATCHED.help.contains(reason), "{reason}");
        }
        assert!(!failure_class_listed("budget"));
    }
}
