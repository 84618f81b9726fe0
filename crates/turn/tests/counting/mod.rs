//! The counting allocator from `switchyard_netio::counting` (where the `unsafe` it needs
//! lives), installed for this test binary.

#![allow(dead_code, unreachable_pub, unused_imports)]

pub use switchyard_netio::counting::{Counts, peek, start, stop};

#[global_allocator]
static GLOBAL: switchyard_netio::counting::Counting = switchyard_netio::counting::Counting;
