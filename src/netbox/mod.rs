//! NetBox registration: the REST client (`client`) and the idempotent,
//! race-safe upserts of one server (`register`).

mod batch;
pub mod client;
mod error;
pub mod items;
pub mod register;
mod shared;

pub use client::{BatchCounts, NetBox, NetBoxError, ObjectId};
pub use register::cables::Unmatched;
pub use register::{
    register, AddressMoves, CustomFields, Identity, OobIpFamily, Options, Outcome, RegisterError,
    Registration,
};
