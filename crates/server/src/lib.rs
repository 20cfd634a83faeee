//! `skewless-server`: HTTP and Arrow Flight front ends over the `skewless` facade.
//!
//! It will own routes, request/response types, the one mapping from errors to HTTP status
//! and stable error codes, and `run(listener, shutdown)` so tests bind `127.0.0.1:0`. It
//! holds no feature logic: every lookup goes through the facade. Empty until the serving
//! issue lands; the crate exists so the dependency direction is fixed from the start.
