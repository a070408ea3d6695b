//! NetBox registration. So far: the REST client (`client`); the upserts of
//! sites, racks, device types, devices, interfaces, MAC and IP addresses
//! follow (issue 5).

pub mod client;

pub use client::{NetBox, NetBoxError};
