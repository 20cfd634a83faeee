//! `skewless-aggregates`: windowed aggregation state, the partial aggregates both paths
//! build, merge and finish.
//!
//! A view's events are folded into *tiles* (DESIGN.md rule 6): per entity key and tile, one
//! [`State`] per aggregated feature. The training set merges the tiles inside each spine
//! row's window; the online store keeps the same states per tile (encoded by [`encode`])
//! and a lookup merges the tiles inside the window at its clock. Parity then needs one thing:
//! **every merge is exact and commutative**, so the result cannot depend on the order events
//! arrived in, how they were grouped into pushes, or how tiles were merged:
//!
//! - counts are integers;
//! - sums are exact ([`ExactSum`]: the float expansion of Shewchuk's algorithm, as in Python's
//!   `math.fsum`) and rounded once, correctly, when finished; mean divides that rounded sum;
//! - `var_pop` is `Σ(x − m)² / n` with `m` the finished mean, the numerator computed exactly
//!   from the exact sums `Σx` and `Σx²` (each square split exactly by a fused multiply-add)
//!   and rounded once;
//! - min and max use a total order (floats by `f64::total_cmp` with NaN canonical, so NaN is
//!   greater than every number and −0 < +0); first and last order rows by
//!   `(event_timestamp, created, value)` with a null `created` lowest, the value breaking exact
//!   ties the way the as-of join does;
//! - count_distinct keeps the set of distinct values (exact; memory grows with the number of
//!   distinct values per tile and entity).
//!
//! Every function skips null inputs. Non-finite inputs: a NaN makes sum, mean, var and stddev
//! NaN; +inf and −inf make them ±inf (or NaN together); var and stddev are NaN when any input
//! is infinite or its square overflows.

//!
//! It lives in its own crate, below both paths and free of DataFusion, because the online
//! store needs the same states, the same byte codec and the same tile clock as training sets
//! without linking the batch engine: [`value`] (inputs and results, Arrow columns),
//! [`exact_sum`], [`state`] (add, merge, finish), [`codec`] (the bytes of a tile in the online
//! store) and [`tile`] (which tiles a window covers).

pub mod codec;
pub mod exact_sum;
pub mod state;
pub mod tile;
pub mod value;

pub use codec::{DecodeError, Decoder, encode};
pub use exact_sum::ExactSum;
pub use state::{Stamped, State};
pub use tile::{first_tile, tile_of};
pub use value::{Column, Value, to_array};

#[cfg(test)]
mod tests;
