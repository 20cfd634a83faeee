//! The workspace's cross-crate suites (DEVELOPERS.md: they live here, not beside a crate).
//!
//! - `parity/`: what materialization serves at `T`, looked up through the serving core,
//!   equals the training set at `T`, for every key of every online view, on the embedded
//!   store, a real Redis server and a three-master Redis Cluster; incremental runs equal one
//!   full run; watermarks belong to one store instance.
//!
//! This library is empty: the suites are its integration tests (`cargo test -p skewless-tests`).
