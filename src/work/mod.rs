//! The work behind the queue.

pub mod gate;
pub mod pipeline;
pub mod pool;
pub mod scheduler;
