//! Integration tests of the facade: validation against real source files, the registry,
//! and the demo data generator.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod demo_data;
mod fuzz;
mod golden;
mod registry;
mod training_set;

pub use skewless_testkit::copy_demo_defs;
