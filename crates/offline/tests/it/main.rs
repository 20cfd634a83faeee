//! Integration tests of the offline path: the shared point-in-time cases.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod edge_cases;
mod memory_limits;
mod pit_cases;
