//! Parity suites: the offline path (training sets) and the online path (materialization,
//! stores, the serving core) give the same value for the same key and instant.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod agg_cases;
mod agg_property;
mod contracts;
mod late;
mod online;
mod property;
mod push;
mod push_faults;

pub use skewless_testkit::copy_demo_defs;
