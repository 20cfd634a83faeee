//! The tile clock: which tile an instant falls in and which tiles a window covers.

/// The tile index of an instant: `floor(ts / tile)`.
pub fn tile_of(ts: i64, tile_micros: i64) -> i64 {
    ts.div_euclid(tile_micros)
}

/// The first tile inside a window of `window_micros` (a multiple of the tile) at `t`: the
/// window is the tile holding `t` and the `window / tile − 1` whole tiles before it.
pub fn first_tile(t: i64, tile_micros: i64, window_micros: i64) -> i64 {
    tile_of(t, tile_micros) - window_micros / tile_micros + 1
}
