//! Aggregated views offline: windowed aggregates as of each spine row, and the events that
//! materialization folds into tiles online.
//!
//! ```text
//! spine [__row, __k.., __t] ──hash(__k*)──┐
//!                                         ├─ AsOfJoinExec with a [`Kernel`] ─▶ [__row, aggregate..]
//! events [__k.., __ts, __created?, inputs..] ─hash(__k*)──┘
//! ```
//!
//! Training sets run aggregations in the as-of operator ([`crate::as_of_exec`]): the same
//! hash partitioning over all cores, the same memory reservations in the session's pool, and
//! the same spilling by key when a partition does not fit. Only the per-partition kernel
//! differs: instead of picking a winner, [`Kernel::sweep`] walks each key's events in time
//! order beside its spine rows. An event joins its tile (DESIGN.md rule 6) once its effective
//! time is reached (`ts`, or `max(ts, created)` with `as_of: available`, a null `created`
//! counting as `ts`, as in the as-of join); a feature at `t` merges the tiles from
//! [`first_tile`] to the tile holding `t`, and tiles that fall out of every window are
//! dropped. Lifetime features keep one running state. Nothing ever pairs a spine row with
//! each event: the work is a sort plus, per spine row, one merge per tile in its windows. The
//! merges are exact and commutative ([`skewless_aggregates`]), so the online store,
//! which merges the same tiles in another order, gets the same bits.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow::buffer::NullBuffer;
use arrow::compute::concat_batches;
use arrow::datatypes::{Field, FieldRef};
use datafusion::prelude::SessionContext;
use skewless_aggregates::{Column, State, Value, first_tile, tile_of, to_array};
use skewless_defs::{AggFunction, Definitions, FeatureType, FeatureView};

use crate::training_set::{FeatureFrame, TimeBounds, feature_frame};
use crate::{Error, Result};

/// What one aggregated feature needs during a sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Spec {
    function: AggFunction,
    /// `None`: lifetime.
    window_micros: Option<i64>,
    ty: FeatureType,
}

/// Features that fold the same input into the same kind of state and differ only in their
/// window or finish (`sum` and `mean` of one expression; one aggregate over several windows).
/// They share one state per tile: an event is added once, and a query merges the tiles once,
/// newest first, reading each member's value as the merge passes its window's first tile.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    /// Makes the shared state (`State::empty`).
    function: AggFunction,
    /// The input column (the first member's).
    input: usize,
    /// Features with a finite window, shortest first: (feature index, window).
    windowed: Vec<(usize, i64)>,
    /// Lifetime features.
    lifetime: Vec<usize>,
}

/// The as-of operator's kernel for an aggregated view: the features asked for (in the view's
/// declared order, as its select list gives their inputs), its tile and its `as_of`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    specs: Vec<Spec>,
    groups: Vec<Group>,
    tile: i64,
    names: Vec<String>,
}

impl Kernel {
    /// The kernel for `features` of `view`.
    pub fn new(view: &FeatureView, features: &BTreeSet<String>) -> Result<Self> {
        let tile = view
            .tile
            .ok_or_else(|| Error::Internal(format!("view `{}` has no tile", view.name)))?
            .micros();
        let mut specs = Vec::new();
        let mut names = Vec::new();
        let mut groups: Vec<Group> = Vec::new();
        // Same kind of state (what `State::empty` makes), expression, `where` and, for the
        // functions that keep their input's type, type: the same input column and state.
        type GroupKey<'a> = (
            std::mem::Discriminant<State>,
            Option<&'a str>,
            Option<&'a str>,
            Option<FeatureType>,
        );
        let mut keys: Vec<GroupKey<'_>> = Vec::new();
        for f in view.features.iter().filter(|f| features.contains(&f.name)) {
            let agg = f
                .aggregation
                .as_ref()
                .ok_or_else(|| Error::Internal(format!("`{}.{}` is not an aggregation", view.name, f.name)))?;
            let index = specs.len();
            specs.push(Spec {
                function: agg.function,
                window_micros: agg.window.micros(),
                ty: f.ty,
            });
            names.push(f.name.clone());
            let kind = std::mem::discriminant(&State::empty(agg.function));
            let keeps_type = agg.function.fixed_type().is_none().then_some(f.ty);
            let key = (kind, agg.expr.as_deref(), agg.filter.as_deref(), keeps_type);
            let g = match keys.iter().position(|k| *k == key) {
                Some(g) => g,
                None => {
                    keys.push(key);
                    groups.push(Group {
                        function: agg.function,
                        input: index,
                        windowed: Vec::new(),
                        lifetime: Vec::new(),
                    });
                    groups.len() - 1
                }
            };
            match agg.window.micros() {
                Some(w) => groups[g].windowed.push((index, w)),
                None => groups[g].lifetime.push(index),
            }
        }
        for group in &mut groups {
            group.windowed.sort_by_key(|&(_, w)| w);
        }
        Ok(Kernel {
            specs,
            groups,
            tile,
            names,
        })
    }

    /// The output columns after `__row`: one per feature, nullable.
    pub(crate) fn fields(&self) -> Vec<FieldRef> {
        self.names
            .iter()
            .zip(&self.specs)
            .map(|(name, spec)| Arc::new(Field::new(name, skewless_engine::arrow_type(spec.ty), true)))
            .collect()
    }

    /// Only events inside some spine row's longest window can count: the earliest event
    /// time that can, for spine rows from `min_t` (`None` with a lifetime feature).
    fn min_ts(&self, min_t: i64) -> Option<i64> {
        let longest = self
            .specs
            .iter()
            .map(|s| s.window_micros)
            .try_fold(0i64, |acc, w| w.map(|w| acc.max(w)))?;
        Some(first_tile(min_t, self.tile, longest).saturating_mul(self.tile))
    }

    /// Every feature's empty-window value for `n` spine rows.
    pub(crate) fn empty(&self, n: usize) -> Vec<ArrayRef> {
        self.specs.iter().map(|s| Results::new(s, n).into_array(s.ty)).collect()
    }

    /// One partition's aggregates, one column per feature in spine-row order. With
    /// `available` (`as_of: available`) an event counts from `max(ts, created)`.
    pub(crate) fn sweep(&self, spine: &SweepSpine<'_>, events: &SweepEvents<'_>, available: bool) -> Vec<ArrayRef> {
        let effective: Vec<i64> = (0..events.ts.len())
            .map(|i| {
                let ts = events.ts.value(i);
                match events.created {
                    Some(c) if available && c.is_valid(i) => c.value(i).max(ts),
                    _ => ts,
                }
            })
            .collect();
        let mut order: Vec<u32> = (0..events.ts.len() as u32)
            .filter(|&i| events.key_valid[i as usize] && events.ts.is_valid(i as usize))
            .collect();
        order.sort_unstable_by_key(|&i| (events.keys[i as usize], effective[i as usize]));
        let n = spine.keys.len();
        let mut queries: Vec<u32> = (0..n as u32)
            .filter(|&i| spine.key_valid[i as usize] && spine.t.is_valid(i as usize))
            .collect();
        queries.sort_unstable_by_key(|&i| (spine.keys[i as usize], spine.t.value(i as usize)));

        let mut results: Vec<Results> = self.specs.iter().map(|s| Results::new(s, n)).collect();
        let inputs: Vec<Column<'_>> = self
            .groups
            .iter()
            .map(|g| Column::new(events.inputs[g.input].as_ref()))
            .collect();
        let (mut e, mut q) = (0, 0);
        while q < queries.len() {
            let key = spine.keys[queries[q] as usize];
            while e < order.len() && events.keys[order[e] as usize] < key {
                e += 1;
            }
            let mut sweep = Sweep::new(self);
            while q < queries.len() && spine.keys[queries[q] as usize] == key {
                let row = queries[q] as usize;
                let at = spine.t.value(row);
                while e < order.len() && events.keys[order[e] as usize] == key && effective[order[e] as usize] <= at {
                    sweep.add(events, &inputs, order[e] as usize);
                    e += 1;
                }
                sweep.query(at, row, &mut results);
                q += 1;
            }
        }
        self.specs
            .iter()
            .zip(results)
            .map(|(s, values)| values.into_array(s.ty))
            .collect()
    }
}

/// One feature's values for a partition's spine rows, stored by type: a million int64 or
/// float64 results take 9 bytes each, not an enum's 32.
enum Results {
    Int(Vec<i64>, Vec<bool>),
    Float(Vec<f64>, Vec<bool>),
    Any(Vec<Option<Value>>),
}

impl Results {
    /// `n` rows of `spec`'s empty-window value.
    fn new(spec: &Spec, n: usize) -> Self {
        let empty = State::empty(spec.function).finish(spec.function);
        match (spec.ty, &empty) {
            (FeatureType::Int64, Some(Value::Int(i))) => Results::Int(vec![*i; n], vec![true; n]),
            (FeatureType::Int64, None) => Results::Int(vec![0; n], vec![false; n]),
            (FeatureType::Float64, Some(Value::Float(x))) => Results::Float(vec![*x; n], vec![true; n]),
            (FeatureType::Float64, None) => Results::Float(vec![0.0; n], vec![false; n]),
            _ => Results::Any(vec![empty; n]),
        }
    }

    fn set(&mut self, row: usize, value: Option<Value>) {
        match (self, value) {
            (Results::Int(values, valid), Some(Value::Int(i))) => (values[row], valid[row]) = (i, true),
            (Results::Float(values, valid), Some(Value::Float(x))) => (values[row], valid[row]) = (x, true),
            (Results::Int(_, valid) | Results::Float(_, valid), _) => valid[row] = false,
            (Results::Any(values), value) => values[row] = value,
        }
    }

    fn into_array(self, ty: FeatureType) -> ArrayRef {
        match self {
            Results::Int(values, valid) => Arc::new(Int64Array::new(values.into(), Some(NullBuffer::from(valid)))),
            Results::Float(values, valid) => Arc::new(Float64Array::new(values.into(), Some(NullBuffer::from(valid)))),
            Results::Any(values) => to_array(ty, &values),
        }
    }
}

/// A partition's spine rows as the kernel reads them.
pub(crate) struct SweepSpine<'a> {
    /// Key ids, equal exactly when the keys are (valid where `key_valid`).
    pub keys: &'a [u64],
    pub key_valid: &'a [bool],
    pub t: &'a TimestampMicrosecondArray,
}

/// A partition's events as the kernel reads them: key ids in the spine's id space, times and
/// one input column per feature.
pub(crate) struct SweepEvents<'a> {
    pub keys: &'a [u64],
    pub key_valid: &'a [bool],
    pub ts: &'a TimestampMicrosecondArray,
    pub created: Option<&'a TimestampMicrosecondArray>,
    pub inputs: &'a [ArrayRef],
}

/// The event bounds a training set reads for `kernel`, for spine rows in `[min_t, max_t]`.
pub(crate) fn bounds(kernel: &Kernel, (min_t, max_t): (Option<i64>, Option<i64>)) -> TimeBounds {
    TimeBounds {
        max_ts: max_t,
        min_ts: min_t.and_then(|min| kernel.min_ts(min)),
        ..TimeBounds::default()
    }
}

/// The view's select list over its rows in `bounds`, collected into one batch:
/// `[__k.., __ts, __created?, inputs..]`.
async fn collect_events(
    ctx: &SessionContext,
    defs: &Definitions,
    root: &Path,
    view: &FeatureView,
    features: &BTreeSet<String>,
    bounds: &TimeBounds,
) -> Result<RecordBatch> {
    let FeatureFrame { frame, .. } = feature_frame(ctx, defs, root, view, Some(features), bounds).await?;
    let schema = Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await?;
    Ok(concat_batches(&schema, &batches)?)
}

/// One key's sweep: its tiles in reach of some window (one state per group), and the
/// groups' lifetime states.
struct Sweep<'a> {
    kernel: &'a Kernel,
    tiles: BTreeMap<i64, Vec<State>>,
    lifetime: Vec<State>,
    /// Tiles below this are outside every finite window from now on.
    floor: i64,
}

impl<'a> Sweep<'a> {
    fn new(kernel: &'a Kernel) -> Self {
        Sweep {
            kernel,
            tiles: BTreeMap::new(),
            lifetime: kernel.groups.iter().map(|g| State::empty(g.function)).collect(),
            floor: i64::MIN,
        }
    }

    /// Folds event `i` into each group's lifetime state and, when some window can still
    /// reach it, into its tile. `inputs` are the groups' input columns.
    fn add(&mut self, events: &SweepEvents<'_>, inputs: &[Column<'_>], i: usize) {
        let ts = events.ts.value(i);
        let created = events.created.and_then(|c| c.is_valid(i).then(|| c.value(i)));
        let groups = &self.kernel.groups;
        let tile = tile_of(ts, self.kernel.tile);
        let mut tile = (tile >= self.floor && groups.iter().any(|g| !g.windowed.is_empty())).then(|| {
            self.tiles
                .entry(tile)
                .or_insert_with(|| groups.iter().map(|g| State::empty(g.function)).collect())
        });
        for (j, (group, input)) in groups.iter().zip(inputs).enumerate() {
            let value = input.value(i);
            if !group.lifetime.is_empty() {
                self.lifetime[j].add(value.as_ref(), ts, created);
            }
            if let Some(states) = tile.as_deref_mut()
                && !group.windowed.is_empty()
            {
                states[j].add(value.as_ref(), ts, created);
            }
        }
    }

    /// Writes every feature's value at `at` into `results[feature][row]`.
    fn query(&mut self, at: i64, row: usize, results: &mut [Results]) {
        let (tile, specs) = (self.kernel.tile, &self.kernel.specs);
        let last = tile_of(at, tile);
        let mut floor = i64::MAX;
        for (g, group) in self.kernel.groups.iter().enumerate() {
            for &f in &group.lifetime {
                results[f].set(row, self.lifetime[g].finish(specs[f].function));
            }
            let Some(&(_, longest)) = group.windowed.last() else {
                continue;
            };
            let oldest = first_tile(at, tile, longest);
            floor = floor.min(oldest);
            // Newest tile first; a member's value is read once the merge reaches its first tile.
            let mut members = group.windowed.iter().peekable();
            let mut merged = State::empty(group.function);
            for (&index, states) in self.tiles.range(oldest..=last).rev() {
                while let Some(&&(f, w)) = members.peek() {
                    if index >= first_tile(at, tile, w) {
                        break;
                    }
                    results[f].set(row, merged.finish(specs[f].function));
                    members.next();
                }
                merged.merge(&states[g]);
            }
            for &(f, _) in members {
                results[f].set(row, merged.finish(specs[f].function));
            }
        }
        if floor != i64::MAX && floor > self.floor {
            self.floor = floor;
            self.tiles = self.tiles.split_off(&floor);
        }
    }
}

/// Materialization's offline half for an aggregated view: its events `[keys.., ts, created?,
/// inputs..]` with event times up to `end` and, when every window is finite, no older than
/// the longest window's first tile at `end` (`skewless_online::tiles::writes` folds them).
/// The push log is read with the batch files, so the tiles hold every row.
pub async fn events_until(
    ctx: &SessionContext,
    defs: &Definitions,
    root: &Path,
    view: &FeatureView,
    end: i64,
) -> Result<RecordBatch> {
    let features: BTreeSet<String> = view.features.iter().map(|f| f.name.clone()).collect();
    let bounds = bounds(&Kernel::new(view, &features)?, (Some(end), Some(end)));
    collect_events(ctx, defs, root, view, &features, &bounds).await
}
