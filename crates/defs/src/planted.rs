//! Faults planted on purpose, so that tests can show the parity harness catches them.
//!
//! A harness that never fails proves nothing. `skewless parity` has a hidden option to plant
//! one of these in the online half of its run; a test then asserts that the harness reports
//! the fault with the right cause. The switch is process-wide (as failpoints are: the code
//! that consults it runs on DataFusion's and tokio's worker threads), costs one relaxed load
//! where it is consulted, and is off unless a test turns it on. Nothing else sets it.

use std::sync::atomic::{AtomicU8, Ordering};

/// One planted fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    /// The as-of join breaks exact `(event_timestamp, created)` ties the other way.
    ReversedTieBreak = 1,
    /// Feature contracts are not enforced: no row is excluded or nulled.
    ContractsIgnored = 2,
    /// Aggregated float sums over tiles are added naively in tile order instead of exactly.
    NaiveFloatSums = 3,
}

static PLANTED: AtomicU8 = AtomicU8::new(0);

/// Whether `fault` is planted now.
pub fn active(fault: Fault) -> bool {
    PLANTED.load(Ordering::Relaxed) == fault as u8
}

/// Plants `fault` until the guard is dropped.
#[must_use = "the fault is removed when the guard is dropped"]
pub fn plant(fault: Fault) -> Planted {
    PLANTED.store(fault as u8, Ordering::SeqCst);
    Planted
}

/// Removes the planted fault when dropped.
#[derive(Debug)]
pub struct Planted;

impl Drop for Planted {
    fn drop(&mut self) {
        PLANTED.store(0, Ordering::SeqCst);
    }
}
