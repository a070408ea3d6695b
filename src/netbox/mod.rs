//! NetBox registration: the REST client (`client`) and the idempotent,
//! race-safe upserts of one server (`register`).

pub mod client;
pub mod items;
pub mod register;
mod shared;

pub use client::{NetBox, NetBoxError, ObjectId};
pub use register::cables::Unmatched;
pub use register::{
    register, AddressMoves, CustomFields, Identity, Options, Outcome, RegisterError, Registration,
};
