//! `skewless-online`: the online path.
//!
//! It will own the `OnlineStore` trait and its two implementations (Redis, and an embedded
//! store for zero-setup use) that pass one conformance suite; the single module that knows
//! the key/value layout; newer-wins writes by `(event_timestamp, created)`; push ingestion
//! through the `engine` crate's compiled expressions; and lookups with per-value status.
//! It never depends on the offline crate. Empty until the online issue lands.
