//! Training sets: a spine in, one row per spine row out, with point-in-time-correct features.
//!
//! ```text
//! spine file ─read─▶ spine batch ─[__row, keys, t]─┐
//! per feature view:                                 ├─ AsOfJoinExec ─▶ [__row, features] ─take by __row─▶ columns
//!   source files ─scan, prune by time─▶ engine-compiled features ─┘
//! then on-demand features, evaluated on the joined columns with the engine's expressions.
//! ```
//!
//! Spine rows are never dropped, duplicated or reordered: each view's join yields exactly one
//! row per spine row, and columns are put back in spine order by `__row`.

use crate::as_of_exec::JoinMode;
use crate::columns;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, UInt64Array};
use arrow::compute::{CastOptions, cast, cast_with_options, concat_batches, sort_to_indices, take};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::ScalarValue;
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::prelude::{CsvReadOptions, DataFrame, ParquetReadOptions, SessionContext, col, lit};
use skewless_defs::{AsOf, Definitions, FeatureView, KeyType, ResolvedFeature, SourceFormat};
use skewless_engine::{
    EvalError, OnDemandInput, OnDemandProgram, arrow_type, instant_column, key_fits, on_demand_input_schema,
};

use crate::as_of::Mode;
use crate::as_of_exec::AsOfLayout;
use crate::as_of_node::{AsOfJoinNode, with_as_of_planner};
use crate::check::attributed;
use crate::source;
use crate::{Error, Kind, Result, SpineProblem};

/// Where a training set's spine comes from.
#[derive(Debug, Clone)]
pub enum Spine {
    /// A Parquet or CSV file (by extension).
    File(PathBuf),
    /// Rows already in memory (a client's upload, e.g. Feast's entity DataFrame over Arrow
    /// Flight); `label` names them in errors where a file would name its path.
    Rows { label: PathBuf, batch: RecordBatch },
}

impl From<PathBuf> for Spine {
    fn from(path: PathBuf) -> Self {
        Spine::File(path)
    }
}

impl Spine {
    /// The file, or the label of rows given in memory: what errors name.
    pub fn path(&self) -> &Path {
        match self {
            Spine::File(path) | Spine::Rows { label: path, .. } => path,
        }
    }

    /// The rows: the file read (its CSV columns typed by `typed`), or the rows given.
    pub fn read(&self, timestamp_column: &str, typed: &[(String, DataType)]) -> Result<RecordBatch> {
        match self {
            Spine::File(path) => read_spine(path, timestamp_column, typed),
            Spine::Rows { batch, .. } if batch.num_rows() == 0 => Err(Error::Spine {
                path: self.path().to_path_buf(),
                problem: SpineProblem::NoRows,
            }),
            Spine::Rows { batch, .. } => Ok(batch.clone()),
        }
    }
}

/// The time column of spine rows given without one named, by Feast's rule
/// (`infer_event_timestamp_from_entity_df`): `event_timestamp` when present, else the one
/// timestamp column. Otherwise the timestamp columns there are (none, or several).
pub fn inferred_time_column(schema: &Schema) -> std::result::Result<String, Vec<String>> {
    if schema.field_with_name("event_timestamp").is_ok() {
        return Ok("event_timestamp".into());
    }
    let mut times: Vec<String> = schema
        .fields()
        .iter()
        .filter(|f| matches!(f.data_type(), DataType::Timestamp(..)))
        .map(|f| f.name().clone())
        .collect();
    match times.len() {
        1 => Ok(times.remove(0)),
        _ => Err(times),
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct TrainingSetRequest {
    pub spine: Spine,
    /// The spine's as-of column (default `event_timestamp`).
    pub timestamp_column: String,
    /// Requested features, in output order.
    pub features: Vec<ResolvedFeature>,
    /// Name output columns `view__feature` instead of `feature`.
    pub full_names: bool,
}

/// The result: spine columns then feature columns, in spine order.
#[derive(Debug, Clone)]
pub struct TrainingSet {
    pub batch: RecordBatch,
    /// Feature rows each view read after time-range pruning, by view.
    pub rows_read: BTreeMap<String, usize>,
    /// Rows that broke a view's contracts (excluded or nulled, as the view says), by view;
    /// only views with contracts appear, and each such row is in a quarantine file.
    pub quarantined: BTreeMap<String, crate::quarantine::Quarantined>,
}

/// What a long training-set build reports as it goes; the caller decides how to show it.
#[derive(Debug, Clone)]
pub enum Progress {
    SpineRead {
        rows: usize,
    },
    JoiningView {
        view: String,
        index: usize,
        views: usize,
    },
    JoinedView {
        view: String,
        index: usize,
        views: usize,
        rows_read: usize,
        seconds: f64,
    },
    OnDemand {
        view: String,
    },
}

/// One line per step, as the CLI prints it and Python logs it.
impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Progress::SpineRead { rows } => write!(f, "spine: {rows} rows"),
            Progress::JoiningView { view, index, views } => write!(f, "[{}/{views}] joining {view} …", index + 1),
            Progress::JoinedView {
                view,
                index,
                views,
                rows_read,
                seconds,
            } => write!(
                f,
                "[{}/{views}] joined {view}: {rows_read} feature rows in {seconds:.2}s",
                index + 1
            ),
            Progress::OnDemand { view } => write!(f, "on-demand view {view}"),
        }
    }
}

/// The UTC, microsecond instant type every as-of time is compared in.
pub use skewless_engine::instant_type;

/// Builds a training set. `root` resolves source paths.
pub async fn build(
    ctx: &SessionContext,
    defs: &Definitions,
    root: &Path,
    request: &TrainingSetRequest,
    progress: &dyn Fn(Progress),
) -> Result<TrainingSet> {
    let (needed, on_demand) = skewless_defs::needed_views(defs, &request.features);
    // Names first: a clash is reported before any work is done.
    let names = output_names(request)?;

    // Spine columns whose type the definitions decide: join keys and request fields.
    let mut typed: Vec<(String, DataType)> = Vec::new();
    for view in needed.iter().filter_map(|n| defs.feature_views.get(n)) {
        for key in defs.view_keys(view) {
            typed.push((key.name.clone(), source::key_arrow_type(key.ty)));
        }
    }
    for view in on_demand.iter().filter_map(|n| defs.on_demand_views.get(n)) {
        for field in &view.request {
            typed.push((field.name.clone(), arrow_type(field.ty)));
        }
    }
    let spine = request.spine.read(&request.timestamp_column, &typed)?;
    for name in names.iter() {
        if spine.schema().field_with_name(name).is_ok() {
            return Err(Error::RepeatsSpineColumn { column: name.clone() });
        }
    }
    let t = spine_instants(&spine, request.spine.path(), &request.timestamp_column)?;
    let (min_t, max_t) = time_range(&t);
    progress(Progress::SpineRead { rows: spine.num_rows() });

    let wanted = wanted_features(defs, &request.features, &on_demand);
    let mut computed: BTreeMap<(String, String), ArrayRef> = BTreeMap::new();
    let mut rows_read = BTreeMap::new();
    let mut quarantined = BTreeMap::new();
    let views = needed.len();
    for (index, name) in needed.iter().enumerate() {
        let started = std::time::Instant::now();
        progress(Progress::JoiningView {
            view: name.clone(),
            index,
            views,
        });
        let view = defs
            .feature_views
            .get(name)
            .ok_or_else(|| Error::unknown(Kind::FeatureView, name))?;
        let wanted = wanted.get(name).cloned().unwrap_or_default();
        let (columns, read, broke) = join_view(
            ctx,
            defs,
            root,
            view,
            &wanted,
            &spine,
            request.spine.path(),
            &t,
            (min_t, max_t),
        )
        .await?;
        rows_read.insert(name.clone(), read);
        if let Some(broke) = broke {
            quarantined.insert(name.clone(), broke);
        }
        progress(Progress::JoinedView {
            view: name.clone(),
            index,
            views,
            rows_read: read,
            seconds: started.elapsed().as_secs_f64(),
        });
        let selected = view.features.iter().filter(|f| wanted.contains(&f.name));
        for (feature, column) in selected.zip(columns) {
            computed.insert((name.clone(), feature.name.clone()), column);
        }
    }
    for name in &on_demand {
        progress(Progress::OnDemand { view: name.clone() });
        compute_on_demand(defs, name, &spine, request.spine.path(), &mut computed)?;
    }

    // Spine columns are nullable in the output whatever the spine declared: the output's
    // schema, so its bytes, do not depend on the container the spine came in (a Parquet file
    // may declare a column required; a DataFrame cannot).
    let mut fields: Vec<Field> = spine
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    let mut columns: Vec<ArrayRef> = spine.columns().to_vec();
    for (f, name) in request.features.iter().zip(names) {
        let column = computed
            .get(&(f.view.clone(), f.feature.clone()))
            .ok_or_else(|| Error::Internal(format!("feature `{}:{}` was not computed", f.view, f.feature)))?;
        fields.push(Field::new(name, column.data_type().clone(), true));
        columns.push(Arc::clone(column));
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    Ok(TrainingSet {
        batch,
        rows_read,
        quarantined,
    })
}

/// Per feature view, the features a request needs: those asked for, and those the requested
/// on-demand views read.
fn wanted_features(
    defs: &Definitions,
    features: &[ResolvedFeature],
    on_demand: &[String],
) -> BTreeMap<String, BTreeSet<String>> {
    let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in features.iter().filter(|f| !f.on_demand) {
        wanted.entry(f.view.clone()).or_default().insert(f.feature.clone());
    }
    for view in on_demand.iter().filter_map(|n| defs.on_demand_views.get(n)) {
        if let Ok(input) = on_demand_input_schema(defs, view) {
            for (qualifier, field) in input.iter() {
                if let Some(source_view) = qualifier.filter(|q| defs.feature_views.contains_key(q.table())) {
                    wanted
                        .entry(source_view.table().to_string())
                        .or_default()
                        .insert(field.name().clone());
                }
            }
        }
    }
    wanted
}

/// Output column names, in request order; a clash names both views
/// ([`skewless_defs::output_name_clash`], the rule every path shares).
fn output_names(request: &TrainingSetRequest) -> Result<Vec<String>> {
    if let Some(clash) = skewless_defs::output_name_clash(&request.features, request.full_names) {
        return Err(Error::NameClash(clash));
    }
    Ok(request
        .features
        .iter()
        .map(|f| {
            if request.full_names {
                format!("{}__{}", f.view, f.feature)
            } else {
                f.feature.clone()
            }
        })
        .collect())
}

/// Reads the whole spine (Parquet or CSV by extension). In a CSV spine the time column is
/// read as UTC instants and `typed` columns (join keys, request fields) as the definitions
/// declare them, never as whatever the first rows happen to look like (`007` stays a string).
pub fn read_spine(path: &Path, timestamp_column: &str, typed: &[(String, DataType)]) -> Result<RecordBatch> {
    let err = |problem: SpineProblem| Error::Spine {
        path: path.to_path_buf(),
        problem,
    };
    let unreadable = |e: &dyn std::fmt::Display| err(SpineProblem::Unreadable(e.to_string()));
    let format =
        SourceFormat::from_extension(&path.to_string_lossy()).ok_or_else(|| err(SpineProblem::UnknownFormat))?;
    let file = std::fs::File::open(path).map_err(|e| unreadable(&e))?;
    // A decoder that panics on a damaged spine is this file's error, not an abort.
    let decode = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        read_spine_batches(path, file, format, timestamp_column, typed)
    }));
    let batches = decode
        .unwrap_or_else(|p| Err(format!("the reader panicked: {}", crate::check::panic_message(&*p))))
        .map_err(|e| unreadable(&e))?;
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => return Err(err(SpineProblem::NoRows)),
    };
    concat_batches(&schema, &batches).map_err(|e| unreadable(&e))
}

fn read_spine_batches(
    path: &Path,
    file: std::fs::File,
    format: SourceFormat,
    timestamp_column: &str,
    typed: &[(String, DataType)],
) -> std::result::Result<Vec<RecordBatch>, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    Ok(match format {
        SourceFormat::Parquet => parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.build())
            .map_err(|e| err(&e))?
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| err(&e))?,
        SourceFormat::Csv => {
            let mut types: Vec<(&str, DataType)> = typed.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
            types.push((timestamp_column, instant_type()));
            let schema = source::csv_schema_with_types(path, &types)?;
            arrow::csv::ReaderBuilder::new(schema)
                .with_header(true)
                .build(file)
                .map_err(|e| err(&e))?
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| err(&e))?
        }
    })
}

/// `spine` with its time column as instants (µs, UTC), whatever timestamp or date type it
/// came as (pandas writes nanoseconds): for callers that read the times themselves.
pub fn with_instant_times(spine: &RecordBatch, path: &Path, column: &str) -> Result<RecordBatch> {
    let times = spine_instants(spine, path, column)?;
    let schema = spine.schema();
    let index = schema.index_of(column).map_err(|e| Error::Internal(e.to_string()))?;
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields[index] = Field::new(column, instant_type(), fields[index].is_nullable());
    let mut columns = spine.columns().to_vec();
    columns[index] = times;
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| Error::Internal(e.to_string()))
}

fn spine_instants(spine: &RecordBatch, path: &Path, column: &str) -> Result<ArrayRef> {
    let schema = spine.schema();
    let index = schema.index_of(column).map_err(|_| Error::Spine {
        path: path.to_path_buf(),
        problem: SpineProblem::NoTimestamp {
            column: column.to_string(),
            columns: schema.fields().iter().map(|f| f.name().clone()).collect(),
        },
    })?;
    let column_ref = spine.column(index);
    if !matches!(
        column_ref.data_type(),
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64
    ) {
        return Err(Error::Spine {
            path: path.to_path_buf(),
            problem: SpineProblem::TimestampType {
                column: column.to_string(),
                found: column_ref.data_type().clone(),
            },
        });
    }
    Ok(cast(column_ref, &instant_type())?)
}

fn time_range(t: &ArrayRef) -> (Option<i64>, Option<i64>) {
    let t = t.as_any().downcast_ref::<arrow::array::TimestampMicrosecondArray>();
    let Some(t) = t else { return (None, None) };
    (arrow::compute::min(t), arrow::compute::max(t))
}

/// Casting that fails on a value it cannot convert, instead of turning it into null.
fn strict() -> CastOptions<'static> {
    CastOptions {
        safe: false,
        ..Default::default()
    }
}

fn spine_key(spine: &RecordBatch, path: &Path, view: &str, name: &str, ty: KeyType) -> Result<ArrayRef> {
    let err = |problem: SpineProblem| Error::Spine {
        path: path.to_path_buf(),
        problem,
    };
    let column = spine.column_by_name(name).ok_or_else(|| {
        err(SpineProblem::NoJoinKey {
            key: name.to_string(),
            view: view.to_string(),
        })
    })?;
    if !key_fits(column.data_type(), ty) {
        return Err(err(SpineProblem::KeyType {
            key: name.to_string(),
            found: column.data_type().clone(),
            ty,
        }));
    }
    cast_with_options(column, &source::key_arrow_type(ty), &strict()).map_err(|e| {
        err(SpineProblem::KeyCast {
            key: name.to_string(),
            found: column.data_type().clone(),
            ty,
            why: e.to_string(),
        })
    })
}

fn instant_literal(micros: i64) -> datafusion::logical_expr::Expr {
    lit(ScalarValue::TimestampMicrosecond(Some(micros), Some("UTC".into())))
}

/// The as-of operator in a physical plan (under any projection the planner put on top).
fn find_as_of_join(plan: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
    if plan.is::<crate::as_of_exec::AsOfJoinExec>() {
        return Some(Arc::clone(plan));
    }
    plan.children().into_iter().find_map(find_as_of_join)
}

/// Joins one feature view; returns `features` (in the view's declared order) in spine order,
/// and the rows read.
#[allow(clippy::too_many_arguments)]
async fn join_view(
    ctx: &SessionContext,
    defs: &Definitions,
    root: &Path,
    view: &FeatureView,
    features: &BTreeSet<String>,
    spine: &RecordBatch,
    spine_path: &Path,
    t: &ArrayRef,
    (min_t, max_t): (Option<i64>, Option<i64>),
) -> Result<(Vec<ArrayRef>, usize, Option<crate::quarantine::Quarantined>)> {
    let keys = defs.view_keys(view);
    let n = spine.num_rows();

    // Spine side: [__row, __k.., __t].
    let mut spine_fields = vec![Field::new(columns::ROW, DataType::UInt64, false)];
    let mut spine_columns: Vec<ArrayRef> = vec![Arc::new(UInt64Array::from_iter_values(0..n as u64))];
    for (i, key) in keys.iter().enumerate() {
        spine_fields.push(Field::new(columns::key(i), source::key_arrow_type(key.ty), true));
        spine_columns.push(spine_key(spine, spine_path, &view.name, &key.name, key.ty)?);
    }
    spine_fields.push(Field::new(columns::TIME, instant_type(), true));
    spine_columns.push(Arc::clone(t));
    let spine_batch = RecordBatch::try_new(Arc::new(Schema::new(spine_fields)), spine_columns)?;
    let spine_plan = ctx.read_batch(spine_batch)?.into_unoptimized_plan();

    // Feature side: [__k.., __ts, __created?, features..], pruned to the spine's time range
    // (for an aggregated view, its inputs, back to the longest window's first tile).
    let kernel = match view.is_aggregated() {
        true => Some(Arc::new(crate::aggregate::Kernel::new(view, features)?)),
        false => None,
    };
    let bounds = match &kernel {
        Some(kernel) => crate::aggregate::bounds(kernel, (min_t, max_t)),
        None => TimeBounds {
            max_ts: max_t,
            min_ts: match (min_t, view.ttl) {
                (Some(min), Some(ttl)) => Some(min.saturating_sub(ttl.micros())),
                _ => None,
            },
            ..TimeBounds::default()
        },
    };
    let job = async {
        let FeatureFrame { frame, violations } = feature_frame(ctx, defs, root, view, Some(features), &bounds).await?;
        let broke = match violations {
            Some(v) => Some(crate::quarantine::record(defs, root, view, v, "training-set", true).await?),
            None => None,
        };
        let joined = as_of_join(ctx, view, kernel, spine_plan, frame.into_unoptimized_plan()).await?;
        Ok((joined.batches, joined.schema, joined.rows_read, broke))
    };
    let (out, schema, rows_read, broke) = attributed(ctx, defs, root, view, Some(features), job).await?;
    let out = concat_batches(&schema, &out)?;
    if out.num_rows() != n {
        return Err(Error::Internal(format!(
            "as-of join of `{}` returned {} rows for {n} spine rows",
            view.name,
            out.num_rows()
        )));
    }
    let order = sort_to_indices(out.column(0), None, None)?;
    let columns = out.columns()[1..]
        .iter()
        .map(|c| take(c.as_ref(), &order, None))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((columns, rows_read, broke))
}

/// Which source rows a scan keeps, by event time (µs, inclusive bounds).
#[derive(Debug, Clone, Default)]
pub(crate) struct TimeBounds {
    pub max_ts: Option<i64>,
    pub min_ts: Option<i64>,
    /// Keep only rows that are new since this instant: event time or, when the source has
    /// one, landing time (`created`) at or after it. So a late row (an old event time that
    /// landed since, such as a push whose online write failed) is written by the next
    /// incremental run, whatever the view's `as_of`; newer-wins keeps anything newer.
    pub min_effective: Option<i64>,
    /// Keep rows with a null event time (they never join; materialization counts them).
    pub keep_null_times: bool,
}

/// Every row of `source` (its files and its push log) in the source's schema, unfiltered.
async fn source_frame(
    ctx: &SessionContext,
    defs: &Definitions,
    root: &Path,
    source: &skewless_defs::Source,
) -> Result<(DataFrame, arrow::datatypes::SchemaRef)> {
    let files = source::resolve(root, source)?;
    let schema = source::read_schema(source, &files, &source::key_columns(defs, source))?;
    let paths: Vec<String> = files.files.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    // The files are already chosen (`source::resolve`): no second filter by extension.
    let mut frame: DataFrame = match files.format {
        SourceFormat::Parquet => {
            ctx.read_parquet(paths, ParquetReadOptions::default().schema(&schema).file_extension(""))
                .await?
        }
        SourceFormat::Csv => {
            ctx.read_csv(
                paths,
                CsvReadOptions::new()
                    .schema(&schema)
                    .has_header(true)
                    .file_extension(""),
            )
            .await?
        }
    };
    // Pushed rows: the source's offline log, in the same schema (skewless_push_log).
    let log = skewless_push_log::segments(root, &source.name)?;
    if !log.is_empty() {
        let log: Vec<String> = log.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        let pushed = ctx
            .read_parquet(log, ParquetReadOptions::default().schema(&schema).file_extension(""))
            .await?;
        frame = frame.union(pushed)?;
    }
    Ok((frame, schema))
}

/// The rows of `source` (files and push log), in the source's schema, with event times up to
/// `max_ts` and, when given, availability times up to `max_created`, in availability order
/// (`created`, then event time): what a push client would have sent by then, in its order.
/// The parity harness replays them through the push path.
pub async fn source_rows(
    ctx: &SessionContext,
    defs: &Definitions,
    root: &Path,
    source_name: &str,
    max_ts: i64,
    max_created: Option<i64>,
) -> Result<Vec<RecordBatch>> {
    let source = defs
        .sources
        .get(source_name)
        .ok_or_else(|| Error::unknown(Kind::Source, source_name))?;
    let (frame, _) = source_frame(ctx, defs, root, source).await?;
    let ts = instant_column(&source.timestamp);
    let mut keep = ts.clone().lt_eq(instant_literal(max_ts));
    let mut order = vec![ts.sort(true, true)];
    if let Some(c) = &source.created {
        let created = instant_column(c);
        if let Some(max) = max_created {
            keep = keep.and(
                created
                    .clone()
                    .is_null()
                    .or(created.clone().lt_eq(instant_literal(max))),
            );
        }
        order.insert(0, created.sort(true, true));
    }
    Ok(frame.filter(keep)?.sort(order)?.collect().await?)
}

/// The feature side of a view's as-of join: `[__k.., __ts, __created?, features..]`, the
/// features computed by the engine's compiled expressions, rows kept by `bounds`. Only
/// `features` are computed (all of the view's, in declared order, when `None`): a feature
/// nobody asked for is never evaluated, so it cannot fail a job that does not need it.
pub(crate) async fn feature_frame(
    ctx: &SessionContext,
    defs: &Definitions,
    root: &Path,
    view: &FeatureView,
    features: Option<&BTreeSet<String>>,
    bounds: &TimeBounds,
) -> Result<FeatureFrame> {
    let source = defs
        .sources
        .get(&view.source)
        .ok_or_else(|| Error::unknown(Kind::Source, &view.source))?;
    let (mut frame, schema) = source_frame(ctx, defs, root, source).await?;
    let ts = instant_column(&source.timestamp);
    let created = source.created.as_ref().map(|c| instant_column(c));
    let mut keep: Vec<datafusion::logical_expr::Expr> = Vec::new();
    if let Some(max) = bounds.max_ts {
        keep.push(ts.clone().lt_eq(instant_literal(max)));
    }
    if let Some(min) = bounds.min_ts {
        keep.push(ts.clone().gt_eq(instant_literal(min)));
    }
    if let Some(start) = bounds.min_effective {
        let by_event = ts.clone().gt_eq(instant_literal(start));
        keep.push(match &created {
            Some(created) => by_event.or(created.clone().gt_eq(instant_literal(start))),
            None => by_event,
        });
    }
    if let Some(condition) = keep.into_iter().reduce(datafusion::logical_expr::Expr::and) {
        let condition = if bounds.keep_null_times {
            ts.clone().is_null().or(condition)
        } else {
            condition
        };
        frame = frame.filter(condition)?;
    }
    let select = skewless_engine::view_select(defs, view, source, &schema, features).map_err(Error::Invalid)?;
    let Some(violation) = select.violation else {
        return Ok(FeatureFrame {
            frame: frame.select(select.columns)?,
            violations: None,
        });
    };
    // The contract verdict rides along, then splits the rows: those that keep the contracts
    // (all of them with `on_violation: null`, whose features are nulled instead), and those
    // that break them, with their keys, times and reason.
    let names: Vec<datafusion::logical_expr::Expr> = select
        .columns
        .iter()
        .map(|e| col(format!("\"{}\"", e.schema_name())))
        .collect();
    let mut judged = select.columns;
    judged.push(violation.alias("__violation"));
    let judged = frame.select(judged)?;
    // `[__k.., __ts, __created?]` come first.
    let key_and_time = defs.view_keys(view).len() + 1 + usize::from(source.created.is_some());
    let violations = judged.clone().filter(col("__violation").is_not_null())?.select(
        names[..key_and_time]
            .iter()
            .cloned()
            .chain([col("__violation")])
            .collect::<Vec<_>>(),
    )?;
    let kept = match view.on_violation {
        skewless_defs::OnViolation::Null => judged,
        _ => judged.filter(col("__violation").is_null())?,
    };
    Ok(FeatureFrame {
        frame: kept.select(names)?,
        violations: Some(violations),
    })
}

/// A view's rows ready for the as-of join, and, when its features have contracts, the rows
/// that break them (`[__k.., __ts, __created?, __violation]`).
#[derive(Debug)]
pub struct FeatureFrame {
    pub frame: DataFrame,
    pub violations: Option<DataFrame>,
}

/// Runs one as-of join: the spine plan `[__row, __k.., __t]` against a feature plan from
/// [`feature_frame`] (plus any extra value columns). Returns the output batches
/// `[__row, values..]`, their schema and the feature rows the join read.
pub(crate) async fn as_of_join(
    ctx: &SessionContext,
    view: &FeatureView,
    aggregate: Option<Arc<crate::aggregate::Kernel>>,
    spine_plan: datafusion::logical_expr::LogicalPlan,
    feature_plan: datafusion::logical_expr::LogicalPlan,
) -> Result<Joined> {
    let mode = match aggregate {
        Some(kernel) => JoinMode::Aggregate(kernel),
        None => JoinMode::Winners,
    };
    let (join, task) = as_of_plan(ctx, view, mode, spine_plan, feature_plan).await?;
    let batches = collect(Arc::clone(&join), task).await?;
    let counts = JoinCounts::of(&join);
    Ok(Joined {
        batches,
        schema: join.schema(),
        rows_read: counts.rows_read,
    })
}

/// The physical plan of one as-of join (see [`as_of_join`] and [`JoinMode`]), and the task
/// context to run it in.
pub(crate) async fn as_of_plan(
    ctx: &SessionContext,
    view: &FeatureView,
    join: JoinMode,
    spine_plan: datafusion::logical_expr::LogicalPlan,
    feature_plan: datafusion::logical_expr::LogicalPlan,
) -> Result<(Arc<dyn ExecutionPlan>, Arc<datafusion::execution::TaskContext>)> {
    let created = feature_plan.schema().has_column_with_unqualified_name(columns::CREATED);
    let latest = matches!(join, JoinMode::Latest { .. });
    let keys = columns::key_count(spine_plan.schema());
    let layout = AsOfLayout {
        keys,
        created,
        mode: match view.as_of {
            AsOf::Event => Mode::Event,
            AsOf::Available => Mode::Available,
        },
        ttl_micros: view.ttl.map(|d| d.micros()),
        join,
    };
    // One logical plan: the optimizer sees both inputs and the join; the planner makes it an AsOfJoinExec.
    let plan = AsOfJoinNode::try_new(spine_plan, feature_plan, layout)?.into_plan();
    let mut state = with_as_of_planner(ctx.state());
    // Materialization hands each partition's rows to the writer as soon as they are joined:
    // more, smaller partitions let the first rows go out sooner.
    if latest {
        let options = state.config_mut().options_mut();
        options.execution.target_partitions *= LATEST_PARTITIONS_PER_TARGET;
    }
    let join = state.create_physical_plan(&plan).await?;
    Ok((join, state.task_ctx()))
}

/// Partitions of a materialization's join per configured target partition.
const LATEST_PARTITIONS_PER_TARGET: usize = 4;

/// What an as-of join's plan counted, read from its metrics once it has run.
pub(crate) struct JoinCounts {
    /// Feature rows the join read.
    pub rows_read: usize,
    /// With [`JoinMode::Latest`]: the keys answered for, and the feature rows that can never be
    /// served (a null key or a null event time).
    pub latest_keys: usize,
    pub unservable_rows: usize,
}

impl JoinCounts {
    pub(crate) fn of(plan: &Arc<dyn ExecutionPlan>) -> Self {
        let exec = find_as_of_join(plan);
        let rows_read = exec
            .as_ref()
            .and_then(|j| j.children().get(1).and_then(|f| f.metrics()))
            .and_then(|m| m.output_rows())
            .unwrap_or(0);
        let metrics = exec.and_then(|j| j.metrics());
        let count = |name: &str| {
            metrics
                .as_ref()
                .and_then(|m| m.sum_by_name(name))
                .map_or(0, |v| v.as_usize())
        };
        JoinCounts {
            rows_read,
            latest_keys: count(crate::as_of_exec::LATEST_KEYS),
            unservable_rows: count(crate::as_of_exec::UNSERVABLE_ROWS),
        }
    }
}

/// What [`as_of_join`] returns: its output, and the feature rows it read.
pub(crate) struct Joined {
    pub batches: Vec<RecordBatch>,
    pub schema: arrow::datatypes::SchemaRef,
    pub rows_read: usize,
}

fn compute_on_demand(
    defs: &Definitions,
    name: &str,
    spine: &RecordBatch,
    spine_path: &Path,
    computed: &mut BTreeMap<(String, String), ArrayRef>,
) -> Result<()> {
    let view = defs
        .on_demand_views
        .get(name)
        .ok_or_else(|| Error::unknown(Kind::OnDemandView, name))?;
    let program = OnDemandProgram::compile(defs, view).map_err(Error::Invalid)?;
    // Request fields come from the spine, strictly cast; other views' features were computed.
    let values = program
        .evaluate(spine.num_rows(), |input| match input {
            OnDemandInput::Request { name: field, .. } => {
                let column = spine.column_by_name(field).ok_or_else(|| Error::Spine {
                    path: spine_path.to_path_buf(),
                    problem: SpineProblem::NoRequestField {
                        view: name.to_string(),
                        field: field.clone(),
                    },
                })?;
                cast_with_options(column, &input.data_type(), &strict()).map_err(|e| Error::Spine {
                    path: spine_path.to_path_buf(),
                    problem: SpineProblem::RequestFieldCast {
                        field: field.clone(),
                        ty: input.ty(),
                        why: e.to_string(),
                    },
                })
            }
            OnDemandInput::Feature { view, feature, .. } => computed
                .get(&(view.clone(), feature.clone()))
                .cloned()
                .ok_or_else(|| Error::Internal(format!("`{view}.{feature}` was not computed before `{name}`"))),
        })
        .map_err(|e| match e {
            EvalError::Input(e) => e,
            EvalError::Engine(skewless_engine::Error::DataFusion(e)) => Error::DataFusion(e),
        })?;
    for (feature, value) in values {
        computed.insert((name.to_string(), feature), value);
    }
    Ok(())
}
