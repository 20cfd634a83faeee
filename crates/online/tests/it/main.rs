//! The online stores against real components: one conformance suite run on the embedded
//! store and on a real `redis-server` started on a free port (plain and TLS), plus
//! Redis-only checks (AUTH and db URLs, TLS verification, a server stopped mid-run,
//! cluster hash slots).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance;
mod damaged;
mod fuzz;
mod redis_only;
