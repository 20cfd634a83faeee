//! The internal columns the as-of join's inputs and outputs carry, by name.
//!
//! Spine side: `[ROW, key(0).., TIME]`; feature side: `[key(0).., EVENT_TIME, CREATED?,
//! values..]`; output: `[ROW, values..]` (materialization adds `win_*` copies of the winner's
//! time and keys). The operator reads them by position (`AsOfLayout`), so every plan that
//! feeds it builds them with these names, in this order.

/// The spine row a joined row answers (its index in the spine).
pub const ROW: &str = "__row";
/// The spine row's instant: the as-of clock.
pub const TIME: &str = "__t";
/// A feature row's event time.
pub const EVENT_TIME: &str = "__ts";
/// A feature row's created (availability) time, when its source has one.
pub const CREATED: &str = "__created";

/// The `i`-th join key, on both sides.
pub fn key(i: usize) -> String {
    format!("__k{i}")
}

/// How many join keys a plan's schema carries: the `key(i)` columns from 0 up.
pub fn key_count(schema: &datafusion::common::DFSchema) -> usize {
    (0..)
        .take_while(|&i| schema.has_column_with_unqualified_name(&key(i)))
        .count()
}
