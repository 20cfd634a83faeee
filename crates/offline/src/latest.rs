//! Materialization's offline half: per entity key, the row a training set would pick at `end`.
//!
//! It *is* a training set: the spine is every distinct key of the view's source in the
//! window, each at `t = end`, joined by the same [`AsOfJoinExec`](crate::as_of_exec) with
//! the same engine-compiled features, ttl and `as_of` rule. So for every key, what
//! materialization writes online is exactly the training set's value at `end`; parity holds
//! by construction, not by a second implementation.
//!
//! The operator answers for that spine itself, from the rows it gathers
//! (`JoinMode::Latest`), so the source is read once (no group-by for the keys first),
//! and the rows go out batch by batch as the join's partitions finish: a writer stores the
//! first keys while the others are still being joined. The winner's `event_timestamp` and
//! `created` ride along as extra value columns (after the features, so they never change
//! the tie-break) because the online store needs them to decide newer-wins.
//!
//! `start` narrows the rows to those that are new since it (event time or, when the source
//! has one, `created` at or after it): what an incremental run has not seen yet, late rows
//! included. A key whose newest row is older than `start` is not written again; the store
//! keeps what an earlier run wrote.

use crate::as_of_exec::JoinMode;
use crate::columns;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::execute_stream;
use datafusion::prelude::{SessionContext, col};
use futures::channel::mpsc::Sender;
use futures::{SinkExt, StreamExt};
use skewless_defs::{Definitions, FeatureView};

use crate::training_set::{FeatureFrame, JoinCounts, TimeBounds, as_of_plan, feature_frame, instant_type};
use crate::{Error, Result, source};

/// Which rows to consider: candidates at `end` that are new since `start`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: Option<i64>,
    pub end: i64,
    /// Write rows that break contracts to the quarantine (a throwaway run, such as the parity
    /// harness's, only counts them).
    pub record_quarantine: bool,
}

/// What [`latest`] counted.
#[derive(Debug)]
pub struct Latest {
    /// Source rows in the window.
    pub rows_read: usize,
    /// Rows in the window that can never be served: a null join key or a null event time.
    pub quarantined: usize,
    /// Rows in the window that broke the view's contracts (excluded or nulled, as the view says).
    pub broke_contracts: crate::quarantine::Quarantined,
    /// Distinct keys with a row in the window.
    pub keys: usize,
    /// Keys with a winner at `end` (the rows sent).
    pub winners: usize,
}

/// The latest row per key at `window.end`, sent to `out` as batches of `[keys..,
/// event_timestamp, created?, features..]` (keys named as the entities name them) while the
/// join runs. Returns what it counted once all are sent. A failure on the data names view,
/// feature, file and row ([`crate::check::attributed`]); a closed `out` stops the join.
pub async fn latest(
    ctx: &SessionContext,
    defs: &Definitions,
    root: &Path,
    view: &FeatureView,
    window: Window,
    out: Sender<RecordBatch>,
) -> Result<Latest> {
    let job = latest_rows(ctx, defs, root, view, window, out);
    crate::check::attributed(ctx, defs, root, view, None, job).await
}

async fn latest_rows(
    ctx: &SessionContext,
    defs: &Definitions,
    root: &Path,
    view: &FeatureView,
    window: Window,
    mut out: Sender<RecordBatch>,
) -> Result<Latest> {
    let keys = defs.view_keys(view);
    let k = keys.len();
    let source = defs.sources.get(&view.source).ok_or_else(|| Error::Unknown {
        kind: crate::Kind::Source,
        name: view.source.clone(),
    })?;
    let bounds = TimeBounds {
        max_ts: Some(window.end),
        min_ts: view.ttl.map(|ttl| window.end.saturating_sub(ttl.micros())),
        min_effective: window.start,
        keep_null_times: true,
    };
    let FeatureFrame { frame, violations } = feature_frame(ctx, defs, root, view, None, &bounds).await?;
    let broke_contracts = match violations {
        Some(v) => crate::quarantine::record(defs, root, view, v, "materialize", window.record_quarantine).await?,
        None => crate::quarantine::Quarantined::default(),
    };

    // The join answers for every key with a timed row, at `end`, itself (`JoinMode::Latest`): the
    // spine input is empty, and only its schema is read.
    let mut fields = vec![Field::new(columns::ROW, DataType::UInt64, false)];
    for i in 0..k {
        let name = columns::key(i);
        let ty = frame.schema().field_with_unqualified_name(&name)?.data_type().clone();
        fields.push(Field::new(name, ty, true));
    }
    fields.push(Field::new(columns::TIME, instant_type(), true));
    let spine = RecordBatch::new_empty(Arc::new(Schema::new(fields)));
    let spine_plan = ctx.read_batch(spine)?.into_unoptimized_plan();

    // Feature side, plus the winner's times and keys as trailing values (after the
    // features, so they never change the tie-break).
    let has_created = source.created.is_some();
    let mut select: Vec<Expr> = frame.schema().columns().into_iter().map(Expr::Column).collect();
    select.push(col(columns::EVENT_TIME).alias("__win_ts"));
    if has_created {
        select.push(col(columns::CREATED).alias("__win_created"));
    }
    select.extend((0..k).map(|i| col(columns::key(i)).alias(format!("__win_k{i}"))));
    let feature_plan = frame.select(select)?.into_unoptimized_plan();
    let (join, task) = as_of_plan(ctx, view, JoinMode::Latest { at: window.end }, spine_plan, feature_plan).await?;
    let mut joined = execute_stream(Arc::clone(&join), task)?;

    // [__row, features.., __win_ts, __win_created?, __win_k..] → [keys.., event_timestamp, created?, features..]
    let mut out_fields: Vec<Field> = keys
        .iter()
        .map(|key| Field::new(&key.name, source::key_arrow_type(key.ty), false))
        .collect();
    out_fields.push(Field::new("event_timestamp", instant_type(), false));
    if has_created {
        out_fields.push(Field::new("created", instant_type(), true));
    }
    let features = view.features.len();
    let win_ts = 1 + features;
    let win_keys = win_ts + 1 + usize::from(has_created);
    let mut winners = 0;
    while let Some(batch) = joined.next().await {
        // Only keys with a winner come out of the join.
        let batch = batch?;
        if batch.num_rows() == 0 {
            continue;
        }
        winners += batch.num_rows();
        let mut columns: Vec<ArrayRef> = (0..k)
            .map(|i| arrow::compute::cast(batch.column(win_keys + i), out_fields[i].data_type()))
            .collect::<std::result::Result<_, _>>()?;
        columns.extend(batch.columns()[win_ts..win_keys].iter().cloned());
        columns.extend(batch.columns()[1..=features].iter().cloned());
        let mut fields = out_fields.clone();
        for (f, c) in view.features.iter().zip(&columns[columns.len() - features..]) {
            fields.push(Field::new(&f.name, c.data_type().clone(), true));
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
        if out.send(batch).await.is_err() {
            return Err(Error::Internal(
                "the rows' receiver stopped before the join ended".into(),
            ));
        }
    }
    let counts = JoinCounts::of(&join);
    Ok(Latest {
        // With `on_violation: null` the breaking rows stayed in the frame and are counted there.
        rows_read: counts.rows_read
            + if view.on_violation == skewless_defs::OnViolation::Null {
                0
            } else {
                broke_contracts.rows
            },
        quarantined: counts.unservable_rows,
        broke_contracts,
        keys: counts.latest_keys,
        winners,
    })
}
