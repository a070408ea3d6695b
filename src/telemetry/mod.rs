//! What the hook measures and where it shows it: counters and the
//! callout-cost histogram (`counters`, sharded for the packet path), the
//! workers' latencies and failures (`latency`), the metric catalogue
//! (`catalogue`), one moment of all of it (`snapshot`), and the two
//! publishers: Kea's statistics (`kea_stats`) and the Prometheus page
//! (`prometheus`).

pub mod catalogue;
pub mod counters;
pub mod kea_stats;
pub mod latency;
pub mod prometheus;
pub mod snapshot;

pub use snapshot::{Batches, CredentialsState, GateLoad, QueueStatus, Snapshot};
