//! The workspace's cross-crate suites (they live here, not beside a crate: ARCHITECTURE.md).
//!
//! - `parity/`: what materialization and pushes serve at `T`, looked up through the serving
//!   core, equals the training set at `T`, for every key of every online view, on the
//!   embedded store, a real Redis server and a three-master Redis Cluster; incremental runs
//!   equal one full run; watermarks belong to one store instance; aggregated views agree with
//!   the public cases and random definitions.
//! - `planted/`: faults planted on purpose (`defs::planted`) are caught, with their cause.
//!
//! This library is empty: the suites are its integration tests (`cargo test -p skewless-tests`).
