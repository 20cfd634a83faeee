//! Materialization's offline half: per entity key, the row a training set would pick at `end`.
//!
//! It *is* a training set: the spine is every distinct key of the view's source in the
//! window, each at `t = end`, joined by the same [`AsOfJoinExec`](crate::as_of_exec) with
//! the same engine-compiled features, ttl and `as_of` rule. So for every key, what
//! materialization writes online is exactly the training set's value at `end`; parity holds
//! by construction, not by a second implementation. The winner's `event_timestamp` and
//! `created` ride along as extra value columns (after the features, so they never change
//! the tie-break) because the online store needs them to decide newer-wins.
//!
//! `start` narrows the rows to those that are new since it (event time or, when the source
//! has one, `created` at or after it): what an incremental run has not seen yet, late rows
//! included. A key whose newest row is older than `start` is not written again; the store
//! keeps what an earlier run wrote.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, UInt64Array};
use arrow::compute::{concat_batches, filter, filter_record_batch, take};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::Expr;
use datafusion::prelude::{SessionContext, col, lit};
use skewless_defs::{Definitions, FeatureView};

use crate::training_set::{FeatureFrame, TimeBounds, as_of_join, feature_frame, instant_type};
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

/// The latest row per key.
#[derive(Debug)]
pub struct Latest {
    /// `[keys.., event_timestamp, created?, features..]`, keys named as the entities name them.
    pub batches: Vec<RecordBatch>,
    /// Source rows in the window.
    pub rows_read: usize,
    /// Rows in the window that can never be served: a null join key or a null event time.
    pub quarantined: usize,
    /// Rows in the window that broke the view's contracts (excluded or nulled, as the view says).
    pub broke_contracts: crate::quarantine::Quarantined,
    /// Distinct keys with a row in the window.
    pub keys: usize,
    /// Keys with a winner at `end` (the rows of `batches`).
    pub winners: usize,
}

/// The latest row per key at `window.end`; a failure on the data names view, feature, file
/// and row ([`crate::check::attributed`]).
pub async fn latest(
    ctx: &SessionContext,
    defs: &Definitions,
    root: &Path,
    view: &FeatureView,
    window: Window,
) -> Result<Latest> {
    crate::check::attributed(ctx, defs, root, view, None, latest_rows(ctx, defs, root, view, window)).await
}

async fn latest_rows(
    ctx: &SessionContext,
    defs: &Definitions,
    root: &Path,
    view: &FeatureView,
    window: Window,
) -> Result<Latest> {
    let keys = defs.view_keys(view);
    let k = keys.len();
    let source = defs
        .sources
        .get(&view.source)
        .ok_or_else(|| Error::Request(format!("unknown source `{}`", view.source)))?;
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

    // The spine and the counts in one pass: rows per key, and how many have an event time.
    let key_columns: Vec<Expr> = (0..k).map(|i| col(format!("__k{i}"))).collect();
    let groups = frame
        .clone()
        .aggregate(
            key_columns,
            vec![count(lit(1)).alias("__n"), count(col("__ts")).alias("__n_ts")],
        )?
        .collect()
        .await?;
    let group_schema = match groups.first() {
        Some(b) => b.schema(),
        None => {
            return Ok(Latest {
                batches: Vec::new(),
                rows_read: broke_contracts.rows,
                quarantined: 0,
                broke_contracts,
                keys: 0,
                winners: 0,
            });
        }
    };
    let groups = concat_batches(&group_schema, &groups)?;
    let n = groups.column(k).as_primitive::<arrow::datatypes::Int64Type>();
    let n_ts = groups.column(k + 1).as_primitive::<arrow::datatypes::Int64Type>();
    let key_valid: Vec<bool> = (0..groups.num_rows())
        .map(|r| groups.columns()[..k].iter().all(|c| c.is_valid(r)))
        .collect();
    let mut rows_read = 0usize;
    let mut quarantined = 0usize;
    for (r, valid) in key_valid.iter().enumerate() {
        let (rows, timed) = (n.value(r) as usize, n_ts.value(r) as usize);
        rows_read += rows;
        quarantined += if *valid { rows - timed } else { rows };
    }
    let in_spine = BooleanArray::from(
        (0..groups.num_rows())
            .map(|r| key_valid[r] && n_ts.value(r) > 0)
            .collect::<Vec<_>>(),
    );
    let spine_keys: Vec<ArrayRef> = groups.columns()[..k]
        .iter()
        .map(|c| filter(c.as_ref(), &in_spine))
        .collect::<std::result::Result<_, _>>()?;
    let spine_rows = in_spine.true_count();

    // Spine: [__row, __k.., __t = end].
    let mut fields = vec![Field::new("__row", DataType::UInt64, false)];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(UInt64Array::from_iter_values(0..spine_rows as u64))];
    for (i, (key, column)) in keys.iter().zip(&spine_keys).enumerate() {
        fields.push(Field::new(format!("__k{i}"), source::key_arrow_type(key.ty), true));
        columns.push(Arc::clone(column));
    }
    fields.push(Field::new("__t", instant_type(), true));
    columns.push(arrow::compute::cast(
        &Int64Array::from(vec![window.end; spine_rows]),
        &instant_type(),
    )?);
    let spine = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    let spine_plan = ctx.read_batch(spine)?.into_unoptimized_plan();

    // Feature side, plus the winner's times as trailing values.
    let has_created = source.created.is_some();
    let mut select: Vec<Expr> = frame.schema().columns().into_iter().map(Expr::Column).collect();
    select.push(col("__ts").alias("__win_ts"));
    if has_created {
        select.push(col("__created").alias("__win_created"));
    }
    let feature_plan = frame.select(select)?.into_unoptimized_plan();
    let (joined, _, _) = as_of_join(ctx, view, None, spine_plan, feature_plan).await?;

    // [__row, features.., __win_ts, __win_created?] → [keys.., event_timestamp, created?, features..]
    let mut out_fields: Vec<Field> = keys
        .iter()
        .map(|key| Field::new(&key.name, source::key_arrow_type(key.ty), false))
        .collect();
    out_fields.push(Field::new("event_timestamp", instant_type(), false));
    if has_created {
        out_fields.push(Field::new("created", instant_type(), true));
    }
    let features = view.features.len();
    let mut batches = Vec::with_capacity(joined.len());
    let mut winners = 0;
    for batch in joined {
        let win_ts = batch.column(1 + features);
        let found = arrow::compute::is_not_null(win_ts.as_ref())?;
        let batch = filter_record_batch(&batch, &found)?;
        if batch.num_rows() == 0 {
            continue;
        }
        winners += batch.num_rows();
        let rows = batch.column(0).as_primitive::<arrow::datatypes::UInt64Type>();
        let mut columns: Vec<ArrayRef> = spine_keys
            .iter()
            .map(|c| take(c.as_ref(), rows, None))
            .collect::<std::result::Result<_, _>>()?;
        columns.push(Arc::clone(batch.column(1 + features)));
        if has_created {
            columns.push(Arc::clone(batch.column(2 + features)));
        }
        columns.extend(batch.columns()[1..=features].iter().cloned());
        let mut fields = out_fields.clone();
        for (f, c) in view.features.iter().zip(&columns[columns.len() - features..]) {
            fields.push(Field::new(&f.name, c.data_type().clone(), true));
        }
        batches.push(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?);
    }
    Ok(Latest {
        batches,
        // With `on_violation: null` the breaking rows stayed in the frame and are counted there.
        rows_read: rows_read
            + if view.on_violation == skewless_defs::OnViolation::Null {
                0
            } else {
                broke_contracts.rows
            },
        quarantined,
        broke_contracts,
        keys: spine_rows,
        winners,
    })
}
