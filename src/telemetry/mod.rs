//! What the hook measures and where it publishes it.

pub mod counters;
pub mod kea_stats;
pub mod latency;
pub mod prometheus;
