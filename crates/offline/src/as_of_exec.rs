//! [`AsOfJoinExec`]: the as-of rule as a DataFusion physical operator.
//!
//! ```text
//!   spine plan [__row, __k0.., __t] ──hash(__k*)──┐
//!                                                 ├─ AsOfJoinExec ─▶ [__row, feature...]
//!   feature plan [__k0.., __ts, __created?, f...] ─hash(__k*)──┘        (one row per spine row)
//! ```
//!
//! Both children are hash-partitioned on the join keys with DataFusion's fixed-seed
//! repartitioning, so one key's rows meet in one partition and partitions run on all cores.
//! Each partition gathers its two inputs, reserving their memory from the session's memory
//! pool, and runs [`as_of::winners`]. When the pool cannot hold a partition's feature rows,
//! the partition spills them to [`SPILL_PARTS`] files by a second hash of the key and joins
//! each file with its share of the spine, one at a time (a grace hash join). A pool too small
//! even for the spine, or for one file, fails with DataFusion's "resources exhausted" error
//! rather than the process running out of memory.
//! Output rows carry the spine's `__row` so the caller can restore spine order.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::AsArray;
use arrow::array::{Array, ArrayRef, RecordBatch, TimestampMicrosecondArray, UInt32Array, make_comparator};
use arrow::compute::{SortOptions, concat_batches, take};
use arrow::datatypes::{Int64Type, SchemaRef};
use arrow::row::{RowConverter, SortField};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result, internal_err};
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{Distribution, EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::expressions::Column as PhysicalColumn;
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, common};
use futures::{StreamExt, TryStreamExt, stream};

use crate::as_of::{self, FeatureSide, Mode, SpineSide};

/// Column layout both children must follow (see the module docs).
#[derive(Debug, Clone)]
pub struct AsOfLayout {
    /// Number of key columns (`__k0..`) after `__row` on the spine and first on the features.
    pub keys: usize,
    /// Whether the feature side has a `__created` column after `__ts`.
    pub created: bool,
    pub mode: Mode,
    pub ttl_micros: Option<i64>,
    /// What the join answers.
    pub join: JoinMode,
}

/// What an as-of join answers: one of three jobs.
#[derive(Debug, Clone)]
pub enum JoinMode {
    /// Training sets of row views: each spine row's winner, and its values.
    Winners,
    /// Training sets of aggregated views: each partition runs this kernel over its rows
    /// instead of picking winners, and the output holds its aggregates ([`crate::aggregate`]).
    Aggregate(Arc<crate::aggregate::Kernel>),
    /// Materialization's join ([`crate::latest`]): the spine input is ignored (give an empty
    /// one), and each partition answers instead for every valid key among its feature rows
    /// that has an event time, each at this instant ([`as_of::latest`]). Keys without a
    /// winner get no output row. The source is read once, with no group-by for the keys.
    Latest { at: i64 },
}

impl JoinMode {
    /// The instant of a [`JoinMode::Latest`] join.
    pub fn latest_at(&self) -> Option<i64> {
        match self {
            JoinMode::Latest { at } => Some(*at),
            _ => None,
        }
    }

    /// The kernel of a [`JoinMode::Aggregate`] join.
    pub fn kernel(&self) -> Option<&Arc<crate::aggregate::Kernel>> {
        match self {
            JoinMode::Aggregate(kernel) => Some(kernel),
            _ => None,
        }
    }
}

impl AsOfLayout {
    /// Index of the first feature value column on the feature side.
    pub(crate) fn first_value(&self) -> usize {
        self.keys + 1 + usize::from(self.created)
    }

    /// The output fields after `__row`, given the feature side's fields: the winners' values
    /// (nullable: a spine row may have no winner), or the kernel's aggregates.
    pub(crate) fn output_fields(&self, features: &arrow::datatypes::Fields) -> Vec<arrow::datatypes::FieldRef> {
        match self.join.kernel() {
            Some(kernel) => kernel.fields(),
            None => features
                .iter()
                .skip(self.first_value())
                .map(|f| Arc::new(f.as_ref().clone().with_nullable(true)))
                .collect(),
        }
    }
}

#[derive(Debug)]
pub struct AsOfJoinExec {
    spine: Arc<dyn ExecutionPlan>,
    features: Arc<dyn ExecutionPlan>,
    layout: AsOfLayout,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    /// `spill_count`: partitions that spilled their feature rows to disk.
    metrics: ExecutionPlanMetricsSet,
}

impl AsOfJoinExec {
    /// `spine` and `features` must be co-partitioned on their key columns.
    pub fn try_new(
        spine: Arc<dyn ExecutionPlan>,
        features: Arc<dyn ExecutionPlan>,
        layout: AsOfLayout,
    ) -> Result<Self> {
        // Equal partition counts are checked at execution: optimizer rules rebuild the
        // children one side at a time.
        let partitions = spine.properties().partitioning.partition_count();
        let spine_schema = spine.schema();
        let feature_schema = features.schema();
        let mut fields = vec![Arc::clone(&spine_schema.fields()[0])];
        fields.extend(layout.output_fields(feature_schema.fields()));
        let schema: SchemaRef = Arc::new(arrow::datatypes::Schema::new(fields));
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Ok(AsOfJoinExec {
            spine,
            features,
            layout,
            schema,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }
}

impl DisplayAs for AsOfJoinExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let ttl = self
            .layout
            .ttl_micros
            .map_or_else(|| "none".to_string(), |t| format!("{t}us"));
        write!(
            f,
            "AsOfJoinExec: keys={}, mode={:?}, ttl={ttl}",
            self.layout.keys, self.layout.mode
        )
    }
}

impl ExecutionPlan for AsOfJoinExec {
    fn name(&self) -> &str {
        "AsOfJoinExec"
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.spine, &self.features]
    }

    /// One key's rows must meet in one partition: both inputs hash-partitioned on the keys.
    /// Declaring it lets DataFusion's distribution rules keep (or add) the repartitioning.
    fn required_input_distribution(&self) -> Vec<Distribution> {
        let keys = |plan: &Arc<dyn ExecutionPlan>, first: usize| {
            let schema = plan.schema();
            (first..first + self.layout.keys)
                .map(|i| Arc::new(PhysicalColumn::new(schema.field(i).name(), i)) as Arc<dyn PhysicalExpr>)
                .collect()
        };
        vec![
            Distribution::KeyPartitioned(keys(&self.spine, 1)),
            Distribution::KeyPartitioned(keys(&self.features, 0)),
        ]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        let [spine, features]: [Arc<dyn ExecutionPlan>; 2] = children
            .try_into()
            .map_err(|_| DataFusionError::Internal("as-of join has two children".into()))?;
        Ok(Arc::new(AsOfJoinExec::try_new(spine, features, self.layout.clone())?))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let (left, right) = (
            self.spine.properties().partitioning.partition_count(),
            self.features.properties().partitioning.partition_count(),
        );
        if left != right {
            return internal_err!("as-of join inputs have {left} and {right} partitions; they must be co-partitioned");
        }
        let spine = self.spine.execute(partition, Arc::clone(&context))?;
        let features = self.features.execute(partition, Arc::clone(&context))?;
        let (layout, schema) = (self.layout.clone(), Arc::clone(&self.schema));
        let out_schema = Arc::clone(&schema);
        let spine_schema = self.spine.schema();
        let spills = MetricBuilder::new(&self.metrics).spill_count(partition);
        let resplits = MetricBuilder::new(&self.metrics).counter("resplit_count", partition);
        let latest = self.layout.join.latest_at().map(|_| LatestCounts {
            keys: MetricBuilder::new(&self.metrics).counter(LATEST_KEYS, partition),
            unservable: MetricBuilder::new(&self.metrics).counter(UNSERVABLE_ROWS, partition),
        });
        let work = async move {
            let pool = Arc::clone(context.memory_pool());
            let budget = Budget {
                reservation: MemoryConsumer::new(format!("AsOfJoinExec[{partition}]")).register(&pool),
                pool,
                partition,
                resplits,
            };
            let reservation = &budget.reservation;
            let spine_batches = common::collect(spine).await?;
            let spine_bytes: usize = spine_batches.iter().map(RecordBatch::get_array_memory_size).sum();
            budget.reserve(spine_bytes, "its spine rows")?;
            let mut features = features;
            let mut held: Vec<RecordBatch> = Vec::new();
            let mut spill: Option<Spill> = None;
            while let Some(batch) = features.next().await {
                let batch = batch?;
                if let Some(latest) = &latest {
                    latest.count_unservable(&batch, layout.keys);
                }
                if let Some(spill) = spill.as_mut() {
                    spill.write(&batch, layout.keys)?;
                    continue;
                }
                if reservation.try_grow(batch.get_array_memory_size()).is_ok() {
                    held.push(batch);
                    continue;
                }
                // The pool cannot hold this partition's feature rows: spread them over
                // sub-partition files by a second hash of the key, and join those one at a time.
                let mut new_spill = Spill::new(batch.schema(), 0)?;
                for b in held.drain(..) {
                    new_spill.write(&b, layout.keys)?;
                }
                reservation.resize(spine_bytes);
                new_spill.write(&batch, layout.keys)?;
                spill = Some(new_spill);
                spills.add(1);
            }
            // The sweep's own memory (copies, key ids, sort tuples, output) is reserved too,
            // so the limit bounds the whole join, not only its inputs. If it does not fit with
            // every feature row in memory, the rows go to disk after all and join by parts.
            if spill.is_none() {
                let held_bytes = held.iter().map(RecordBatch::get_array_memory_size).sum();
                let held_rows = held.iter().map(RecordBatch::num_rows).sum();
                let spine_rows = spine_batches.iter().map(RecordBatch::num_rows).sum();
                // The held rows are reserved already; the feature copy and the rest are not.
                let working = working_bytes(&layout, (spine_rows, spine_bytes), (held_rows, held_bytes));
                if reservation.try_grow(working).is_ok() {
                    let joined = join_partition(&spine_batches, &held, &layout, &out_schema, latest.as_ref())?;
                    return Ok(vec![joined]);
                }
                if let Some(schema) = held.first().map(RecordBatch::schema) {
                    let mut new_spill = Spill::new(schema, 0)?;
                    for b in held.drain(..) {
                        new_spill.write(&b, layout.keys)?;
                    }
                    reservation.resize(spine_bytes);
                    spill = Some(new_spill);
                    spills.add(1);
                }
            }
            match spill {
                None => Ok(vec![join_partition(
                    &spine_batches,
                    &held,
                    &layout,
                    &out_schema,
                    latest.as_ref(),
                )?]),
                Some(spill) => {
                    // One copy of the spine: the one reserved. (Materialization's is empty.)
                    let spine = concat_batches(&spine_schema, &spine_batches)?;
                    drop(spine_batches);
                    spill.join(&spine, &layout, &out_schema, &budget, latest.as_ref())
                }
            }
        };
        // A batch per joined part: no final concatenation doubling the partition's output.
        let batches = stream::once(work)
            .map_ok(|batches| stream::iter(batches.into_iter().map(Ok)))
            .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }
}

/// How many files a spilling partition spreads its feature rows over.
const SPILL_PARTS: usize = 16;

/// Feature rows of one partition on disk, in [`SPILL_PARTS`] Arrow IPC files chosen by a hash
/// of the key that is independent of the repartitioning hash. One key's rows share a file, so
/// each file joins with its share of the spine alone, one file in memory at a time.
struct Spill {
    /// Anonymous temporary files (deleted when closed), one per part.
    writers: Vec<arrow::ipc::writer::FileWriter<std::fs::File>>,
    /// In-memory size of each part's rows as written: what reading it back costs. (Batches
    /// read from IPC share one buffer per message, which `get_array_memory_size` over-counts.)
    sizes: Vec<usize>,
    /// Rows in each part.
    rows: Vec<usize>,
    /// Which hash splits keys: 0 for the first spill, one more per re-split of a part.
    level: u64,
}

/// Levels of splitting: a part too big for the pool is split again, up to 16^3 parts in all.
const MAX_SPILL_LEVEL: u64 = 3;

impl Spill {
    fn new(schema: SchemaRef, level: u64) -> Result<Self> {
        let writers = (0..SPILL_PARTS)
            .map(|_| Ok(arrow::ipc::writer::FileWriter::try_new(tempfile::tempfile()?, &schema)?))
            .collect::<Result<_>>()?;
        Ok(Spill {
            writers,
            sizes: vec![0; SPILL_PARTS],
            rows: vec![0; SPILL_PARTS],
            level,
        })
    }

    fn write(&mut self, batch: &RecordBatch, keys: usize) -> Result<()> {
        for (part, rows) in split_by_key(&batch.columns()[..keys], self.level)?
            .into_iter()
            .enumerate()
        {
            if !rows.is_empty() {
                let taken = arrow::compute::take_record_batch(batch, &UInt32Array::from(rows))?;
                self.sizes[part] += taken.get_array_memory_size();
                self.rows[part] += taken.num_rows();
                self.writers[part].write(&taken)?;
            }
        }
        Ok(())
    }

    /// Joins each file with the spine rows of its keys; a batch per part. Each file's rows
    /// and the sweep's working memory are reserved while it is joined; a part that does not
    /// fit is split again by another hash, up to [`MAX_SPILL_LEVEL`] times.
    fn join(
        self,
        spine: &RecordBatch,
        layout: &AsOfLayout,
        out: &SchemaRef,
        budget: &Budget,
        latest: Option<&LatestCounts>,
    ) -> Result<Vec<RecordBatch>> {
        let spine_parts = split_by_key(&spine.columns()[1..=layout.keys], self.level)?;
        let mut outputs = Vec::with_capacity(SPILL_PARTS);
        let parts = self
            .writers
            .into_iter()
            .zip(spine_parts)
            .zip(self.sizes.into_iter().zip(self.rows));
        for ((mut writer, spine_rows), (size, rows)) in parts {
            writer.finish()?;
            let mut file = writer.into_inner()?;
            std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(0))?;
            let part_spine = arrow::compute::take_record_batch(spine, &UInt32Array::from(spine_rows))?;
            let mut reader = arrow::ipc::reader::FileReader::try_new(file, None)?;
            if rows == 0 {
                outputs.push(empty_or_nulls(&[part_spine], layout, out)?);
                continue;
            }
            // The part's rows and the sweep's working memory, reserved together.
            let need = size
                + working_bytes(
                    layout,
                    (part_spine.num_rows(), part_spine.get_array_memory_size()),
                    (rows, size),
                );
            if budget.reservation.try_grow(need).is_err() {
                if self.level + 1 < MAX_SPILL_LEVEL && rows > 1 {
                    // Too big for the pool: stream it into a finer split and join that.
                    budget.resplits.add(1);
                    let mut finer = Spill::new(reader.schema(), self.level + 1)?;
                    for batch in &mut reader {
                        finer.write(&batch?, layout.keys)?;
                    }
                    outputs.extend(finer.join(&part_spine, layout, out, budget, latest)?);
                    continue;
                }
                budget.reserve(need, "joining one key group of its spilled feature rows")?;
            }
            let features = reader.collect::<std::result::Result<Vec<_>, _>>()?;
            let joined = join_partition(&[part_spine], &features, layout, out, latest)?;
            budget.reservation.shrink(need);
            // The part's output stays until the partition's is returned: counted, not refused
            // (it is a share of the working memory just granted).
            budget.reservation.grow(joined.get_array_memory_size());
            outputs.push(joined);
        }
        Ok(outputs)
    }
}

/// Metrics of [`JoinMode::Latest`] runs: the keys answered for, and the feature rows
/// that can never be served (a null join key or a null event time).
pub(crate) const LATEST_KEYS: &str = "latest_keys";
pub(crate) const UNSERVABLE_ROWS: &str = "unservable_rows";

/// One partition's [`LATEST_KEYS`] and [`UNSERVABLE_ROWS`].
struct LatestCounts {
    keys: datafusion::physical_plan::metrics::Count,
    unservable: datafusion::physical_plan::metrics::Count,
}

impl LatestCounts {
    fn count_unservable(&self, batch: &RecordBatch, keys: usize) {
        let servable = valid_mask(&batch.columns()[..=keys]);
        self.unservable.add(servable.iter().filter(|v| !**v).count());
    }
}

/// One partition's share of the session's memory pool.
struct Budget {
    reservation: datafusion::execution::memory_pool::MemoryReservation,
    pool: Arc<dyn datafusion::execution::memory_pool::MemoryPool>,
    partition: usize,
    /// `resplit_count`: spilled parts split again because they did not fit.
    resplits: datafusion::physical_plan::metrics::Count,
}

impl Budget {
    /// Reserves `bytes` for `what`, or fails saying how much the join needed and how much
    /// the pool had: a limit too small for the join ends in this error, never in a hang.
    fn reserve(&self, bytes: usize, what: &str) -> Result<()> {
        self.reservation.try_grow(bytes).map_err(|_| {
            let used = self.pool.reserved();
            let limit = match self.pool.memory_limit() {
                datafusion::execution::memory_pool::MemoryLimit::Finite(l) => format!(" of {}", human(l)),
                _ => String::new(),
            };
            DataFusionError::ResourcesExhausted(format!(
                "the memory limit is too small: partition {} of the as-of join needs {} more for {what}, with {}{limit} in use; the limit must be at least {} (other partitions need their share too)",
                self.partition,
                human(bytes),
                human(used),
                human(used.saturating_add(bytes))
            ))
        })
    }
}

fn human(bytes: usize) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if bytes as f64 >= MIB {
        format!("{:.1} MiB", bytes as f64 / MIB)
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

/// What [`join_partition`] allocates beyond its inputs, for `(rows, bytes)` of spine and
/// feature rows: concatenated copies, key ids, validity masks and sort tuples per row, the
/// winners, and output values (the feature rows' average width per spine row). Feature
/// bytes of batches read back from a spill file must come from [`Spill::sizes`]: they share
/// one buffer per message, which `get_array_memory_size` over-counts. Materialization's
/// spine is empty, and its output has at most a row per feature row: it counts as such.
fn working_bytes(layout: &AsOfLayout, (n, spine_bytes): (usize, usize), (m, feature_bytes): (usize, usize)) -> usize {
    let (n, spine_bytes) = match layout.join.latest_at() {
        Some(_) => (m, feature_bytes),
        None => (n, spine_bytes),
    };
    let per_row = (8 + 1 + std::mem::size_of::<(u64, i64, u32)>()) * (n + m) + 12 * n;
    let output = feature_bytes / m.max(1) * n;
    spine_bytes + feature_bytes + per_row + output
}

/// Row indices per spill file, by a hash of the key columns (SplitMix64 of int64 keys, of
/// the row encoding otherwise), seeded by the spill `level` so that a re-split spreads the
/// keys of one part. Null keys go anywhere: they never match.
fn split_by_key(keys: &[ArrayRef], level: u64) -> Result<Vec<Vec<u32>>> {
    let mut parts = vec![Vec::new(); SPILL_PARTS];
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    if let [k] = keys
        && let Some(ints) = k.as_primitive_opt::<Int64Type>()
    {
        for (i, v) in ints.values().iter().enumerate() {
            parts[(mix(*v as u64 ^ level.wrapping_mul(0xA076_1D64_78BD_642F)) % SPILL_PARTS as u64) as usize]
                .push(i as u32);
        }
        return Ok(parts);
    }
    let converter = RowConverter::new(keys.iter().map(|c| SortField::new(c.data_type().clone())).collect())?;
    let rows = converter.convert_columns(keys)?;
    for i in 0..rows.num_rows() {
        let h = rows.row(i).data().iter().fold(level, |h, b| mix(h ^ u64::from(*b)));
        parts[(h % SPILL_PARTS as u64) as usize].push(i as u32);
    }
    Ok(parts)
}

/// Hash-partitions `plan` on its `keys` columns starting at `first`, with DataFusion's
/// fixed-seed hashing: equal keys on both inputs land in the same partition.
pub(crate) fn hash_partition(
    plan: Arc<dyn ExecutionPlan>,
    keys: usize,
    first: usize,
    partitions: usize,
) -> Result<Arc<dyn ExecutionPlan>> {
    let schema = plan.schema();
    let exprs: Vec<Arc<dyn PhysicalExpr>> = (first..first + keys)
        .map(|i| Arc::new(PhysicalColumn::new(schema.field(i).name(), i)) as Arc<dyn PhysicalExpr>)
        .collect();
    Ok(Arc::new(RepartitionExec::try_new(
        plan,
        Partitioning::Hash(exprs, partitions),
    )?))
}

fn valid_mask(columns: &[ArrayRef]) -> Vec<bool> {
    let len = columns.first().map_or(0, |c| c.len());
    let nulls = columns.iter().fold(None, |acc, c| {
        arrow::buffer::NullBuffer::union(acc.as_ref(), c.logical_nulls().as_ref())
    });
    match nulls {
        Some(n) => n.iter().collect(),
        None => vec![true; len],
    }
}

/// Join keys as ids that are equal exactly when the keys are. A single int64 key is its own
/// id; other keys (strings, composites) are numbered through a hash map of their row
/// encoding, built on the feature side; spine keys without feature rows get `u64::MAX`,
/// which no feature row has. Null slots get arbitrary ids; validity masks exclude them.
fn key_ids(spine: &[ArrayRef], features: &[ArrayRef]) -> Result<(Vec<u64>, Vec<u64>)> {
    if let ([s], [f]) = (spine, features)
        && let (Some(s), Some(f)) = (s.as_primitive_opt::<Int64Type>(), f.as_primitive_opt::<Int64Type>())
    {
        let ids = |a: &arrow::array::Int64Array| a.values().iter().map(|&k| k as u64).collect();
        return Ok((ids(s), ids(f)));
    }
    let converter = RowConverter::new(spine.iter().map(|c| SortField::new(c.data_type().clone())).collect())?;
    let feature_rows = converter.convert_columns(features)?;
    let spine_rows = converter.convert_columns(spine)?;
    let (ids, feature_ids) = number_rows(&feature_rows);
    let spine_ids = (0..spine_rows.num_rows())
        .map(|i| ids.get(spine_rows.row(i).data()).copied().unwrap_or(u64::MAX))
        .collect();
    Ok((spine_ids, feature_ids))
}

/// [`key_ids`] of one side alone: ids equal exactly when the keys are.
fn own_key_ids(keys: &[ArrayRef]) -> Result<Vec<u64>> {
    if let [k] = keys
        && let Some(ints) = k.as_primitive_opt::<Int64Type>()
    {
        return Ok(ints.values().iter().map(|&k| k as u64).collect());
    }
    let converter = RowConverter::new(keys.iter().map(|c| SortField::new(c.data_type().clone())).collect())?;
    Ok(number_rows(&converter.convert_columns(keys)?).1)
}

/// Numbers the distinct rows of `rows` in order of first appearance: the map, and each
/// row's number.
fn number_rows(rows: &arrow::row::Rows) -> (HashMap<&[u8], u64>, Vec<u64>) {
    let mut ids: HashMap<&[u8], u64> = HashMap::with_capacity(rows.num_rows() / 4);
    let numbers = (0..rows.num_rows())
        .map(|i| {
            let next = ids.len() as u64;
            *ids.entry(rows.row(i).data()).or_insert(next)
        })
        .collect();
    (ids, numbers)
}

fn timestamps(column: &ArrayRef) -> Result<&TimestampMicrosecondArray> {
    column
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .ok_or_else(|| {
            DataFusionError::Internal(format!(
                "as-of time column is {}, not µs timestamps",
                column.data_type()
            ))
        })
}

/// One partition's join: per spine row, the winner's values or the aggregates; with
/// [`JoinMode::Latest`], per key of `features` that has a winner, the winner's values
/// (`spine` is ignored, and the keys answered for are counted in `latest`).
fn join_partition(
    spine: &[RecordBatch],
    features: &[RecordBatch],
    layout: &AsOfLayout,
    out: &SchemaRef,
    latest: Option<&LatestCounts>,
) -> Result<RecordBatch> {
    if let Some(at) = layout.join.latest_at() {
        return join_latest(features, layout, at, out, latest);
    }
    let (Some(first_spine), Some(first_feature)) = (spine.first(), features.first()) else {
        return empty_or_nulls(spine, layout, out);
    };
    let spine = concat_batches(&first_spine.schema(), spine)?;
    let features = concat_batches(&first_feature.schema(), features)?;
    let k = layout.keys;

    let spine_keys: Vec<ArrayRef> = spine.columns()[1..=k].to_vec();
    let feature_keys: Vec<ArrayRef> = features.columns()[..k].to_vec();
    let (spine_ids, feature_ids) = key_ids(&spine_keys, &feature_keys)?;
    let values: Vec<ArrayRef> = features.columns()[layout.first_value()..].to_vec();
    let spine_valid = valid_mask(&spine_keys);
    let feature_valid = valid_mask(&feature_keys);
    let t = timestamps(spine.column(k + 1))?;
    let (ts, created) = feature_times(&features, layout)?;
    if let Some(kernel) = layout.join.kernel() {
        let spine_side = crate::aggregate::SweepSpine {
            keys: &spine_ids,
            key_valid: &spine_valid,
            t,
        };
        let events = crate::aggregate::SweepEvents {
            keys: &feature_ids,
            key_valid: &feature_valid,
            ts,
            created,
            inputs: &values,
        };
        let mut columns = vec![Arc::clone(spine.column(0))];
        columns.extend(kernel.sweep(&spine_side, &events, layout.mode == Mode::Available));
        return Ok(RecordBatch::try_new(Arc::clone(out), columns)?);
    }
    let spine_side = SpineSide {
        keys: &spine_ids,
        key_valid: &spine_valid,
        t,
    };
    let winners = with_feature_side(&values, &feature_ids, &feature_valid, (ts, created), |side| {
        as_of::winners(&spine_side, side, layout.mode, layout.ttl_micros)
    })?;
    let winners = UInt32Array::from(winners);
    let mut columns = vec![Arc::clone(spine.column(0))];
    for value in &values {
        columns.push(take(value.as_ref(), &winners, None)?);
    }
    Ok(RecordBatch::try_new(Arc::clone(out), columns)?)
}

/// [`join_partition`] with [`JoinMode::Latest`]: `[__row, values..]`, a row per key
/// that has a winner at `at` (`__row` numbers them).
fn join_latest(
    features: &[RecordBatch],
    layout: &AsOfLayout,
    at: i64,
    out: &SchemaRef,
    latest: Option<&LatestCounts>,
) -> Result<RecordBatch> {
    let Some(first) = features.first() else {
        return Ok(RecordBatch::new_empty(Arc::clone(out)));
    };
    let features = concat_batches(&first.schema(), features)?;
    let keys = &features.columns()[..layout.keys];
    let (ids, valid) = (own_key_ids(keys)?, valid_mask(keys));
    let values: Vec<ArrayRef> = features.columns()[layout.first_value()..].to_vec();
    let (winners, answered) = with_feature_side(&values, &ids, &valid, feature_times(&features, layout)?, |side| {
        as_of::latest(side, layout.mode, layout.ttl_micros, at)
    })?;
    if let Some(latest) = latest {
        latest.keys.add(answered);
    }
    let winners = UInt32Array::from(winners);
    let mut columns: Vec<ArrayRef> = vec![Arc::new(arrow::array::UInt64Array::from_iter_values(
        0..winners.len() as u64,
    ))];
    for value in &values {
        columns.push(take(value.as_ref(), &winners, None)?);
    }
    Ok(RecordBatch::try_new(Arc::clone(out), columns)?)
}

/// The feature rows' event times and, when the layout has them, availability times.
fn feature_times<'a>(
    features: &'a RecordBatch,
    layout: &AsOfLayout,
) -> Result<(&'a TimestampMicrosecondArray, Option<&'a TimestampMicrosecondArray>)> {
    let ts = timestamps(features.column(layout.keys))?;
    let created = match layout.created {
        true => Some(timestamps(features.column(layout.keys + 1))?),
        false => None,
    };
    Ok((ts, created))
}

/// Runs `f` over the feature side of the point-in-time rule. Values are compared only on
/// exact `(ts, created)` ties, so they are not encoded up front: comparators read them.
fn with_feature_side<R>(
    values: &[ArrayRef],
    keys: &[u64],
    key_valid: &[bool],
    (ts, created): (&TimestampMicrosecondArray, Option<&TimestampMicrosecondArray>),
    f: impl FnOnce(&FeatureSide<'_>) -> R,
) -> Result<R> {
    let comparators = values
        .iter()
        .map(|v| make_comparator(v.as_ref(), v.as_ref(), SortOptions::default()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let by_values = |a: usize, b: usize| {
        comparators
            .iter()
            .map(|c| c(a, b))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    };
    let reversed = |a: usize, b: usize| by_values(a, b).reverse();
    Ok(f(&FeatureSide {
        keys,
        key_valid,
        ts,
        created,
        tie_break: if skewless_defs::planted::active(skewless_defs::planted::Fault::ReversedTieBreak) {
            &reversed
        } else {
            &by_values
        },
    }))
}

/// No feature rows in this partition: every spine row gets nulls, or an aggregated view's
/// empty-window values (and no spine: no rows).
fn empty_or_nulls(spine: &[RecordBatch], layout: &AsOfLayout, out: &SchemaRef) -> Result<RecordBatch> {
    let rows: Vec<ArrayRef> = spine.iter().map(|b| Arc::clone(b.column(0))).collect();
    let row_refs: Vec<&dyn Array> = rows.iter().map(|a| a.as_ref()).collect();
    let row_ids = if row_refs.is_empty() {
        arrow::array::new_empty_array(out.field(0).data_type())
    } else {
        arrow::compute::concat(&row_refs)?
    };
    let n = row_ids.len();
    let mut columns = vec![row_ids];
    match layout.join.kernel() {
        // Empty windows: count 0, the other aggregates null.
        Some(kernel) => columns.extend(kernel.empty(n)),
        None => {
            for field in out.fields().iter().skip(1) {
                columns.push(arrow::array::new_null_array(field.data_type(), n));
            }
        }
    }
    Ok(RecordBatch::try_new(Arc::clone(out), columns)?)
}

#[cfg(test)]
mod tests {
    use crate::columns;
    use arrow::array::{Float64Array, Int64Array, UInt64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryPool};
    use datafusion::physical_plan::metrics::Count;

    use super::*;

    fn instants(values: impl Iterator<Item = i64>) -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from_iter_values(values).with_timezone("UTC"))
    }

    /// A budget with room for a third of `need`: a part that needs it must be split again.
    fn a_third_of(need: usize) -> Budget {
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(need / 3));
        Budget {
            reservation: MemoryConsumer::new("test").register(&pool),
            pool,
            partition: 0,
            resplits: Count::new(),
        }
    }

    /// A spilled part that does not fit with the sweep's working memory is split again by
    /// another hash, and the joined rows are exactly those of the join in memory.
    #[test]
    fn parts_too_big_for_the_pool_are_split_again_with_the_same_rows() {
        let (keys, n, spine_rows) = (400i64, 40_000i64, 2_000i64);
        let spine = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new(columns::ROW, DataType::UInt64, false),
                Field::new("__k0", DataType::Int64, true),
                Field::new(columns::TIME, instants(0..0).data_type().clone(), true),
            ])),
            vec![
                Arc::new(UInt64Array::from_iter_values(0..spine_rows as u64)),
                Arc::new(Int64Array::from_iter_values((0..spine_rows).map(|i| i * 7 % keys))),
                instants((0..spine_rows).map(|i| i * 13 % 1000)),
            ],
        )
        .unwrap();
        let features = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("__k0", DataType::Int64, true),
                Field::new(columns::EVENT_TIME, instants(0..0).data_type().clone(), true),
                Field::new("x", DataType::Float64, true),
            ])),
            vec![
                Arc::new(Int64Array::from_iter_values((0..n).map(|i| i % keys))),
                instants((0..n).map(|i| i / keys * 10)),
                Arc::new(Float64Array::from_iter_values((0..n).map(|i| i as f64))),
            ],
        )
        .unwrap();
        let layout = AsOfLayout {
            keys: 1,
            created: false,
            mode: Mode::Event,
            ttl_micros: Some(300),
            join: JoinMode::Winners,
        };
        let out: SchemaRef = Arc::new(Schema::new(vec![
            Field::new(columns::ROW, DataType::UInt64, false),
            Field::new("x", DataType::Float64, true),
        ]));
        let in_memory = join_partition(
            std::slice::from_ref(&spine),
            std::slice::from_ref(&features),
            &layout,
            &out,
            None,
        )
        .unwrap();

        let mut spill = Spill::new(features.schema(), 0).unwrap();
        spill.write(&features, 1).unwrap();
        // Room for a third of the biggest part's needs: it must be split again.
        let spine_parts = split_by_key(&spine.columns()[1..=1], 0).unwrap();
        let biggest = spill
            .sizes
            .iter()
            .zip(&spill.rows)
            .zip(&spine_parts)
            .map(|((size, rows), s)| size + working_bytes(&layout, (s.len(), s.len() * 24), (*rows, *size)))
            .max()
            .unwrap();
        let budget = a_third_of(biggest);
        let parts = spill.join(&spine, &layout, &out, &budget, None).unwrap();
        assert!(budget.resplits.value() > 0, "no part was split again");
        let joined = concat_batches(&out, &parts).unwrap();
        let order = arrow::compute::sort_to_indices(joined.column(0), None, None).unwrap();
        let joined = arrow::compute::take_record_batch(&joined, &order).unwrap();
        let order = arrow::compute::sort_to_indices(in_memory.column(0), None, None).unwrap();
        assert_eq!(joined, arrow::compute::take_record_batch(&in_memory, &order).unwrap());
        assert!(joined.column(1).null_count() < joined.num_rows(), "nothing joined");
    }

    /// Materialization's join: per key with a timed row, the newest row within the ttl, the
    /// same in memory and when spilled parts are split again, and equal to a reference that
    /// reads the rule literally. Rows with a null key or a null time are counted as
    /// unservable and never win; keys are counted once, over the parts.
    #[test]
    fn latest_picks_each_keys_newest_row_in_memory_and_spilled() {
        let (keys, n, at, ttl) = (300i64, 30_000i64, 900i64, 8i64);
        let key = |i: i64| (i % 97 != 0).then_some(i * 31 % keys);
        let ts = |i: i64| (i % 89 != 0).then_some(i * 7919 % 1201 / 8 * 8);
        let features = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("__k0", DataType::Int64, true),
                Field::new(columns::EVENT_TIME, instants(0..0).data_type().clone(), true),
                Field::new("x", DataType::Float64, true),
                Field::new("__win_k0", DataType::Int64, true),
            ])),
            vec![
                Arc::new(Int64Array::from_iter((0..n).map(key))),
                Arc::new(TimestampMicrosecondArray::from_iter((0..n).map(ts)).with_timezone("UTC")),
                Arc::new(Float64Array::from_iter_values((0..n).map(|i| (i % 5) as f64))),
                Arc::new(Int64Array::from_iter((0..n).map(key))),
            ],
        )
        .unwrap();
        // The reference: per key, the greatest (ts, x) with at - ttl <= ts <= at.
        let mut reference = std::collections::BTreeMap::<i64, (i64, f64)>::new();
        let mut unservable = 0;
        let mut timed_keys = std::collections::BTreeSet::new();
        for i in 0..n {
            let (Some(k), Some(t)) = (key(i), ts(i)) else {
                unservable += 1;
                continue;
            };
            timed_keys.insert(k);
            let x = (i % 5) as f64;
            if t <= at && t >= at - ttl && reference.get(&k).is_none_or(|&(bt, bx)| (t, x) > (bt, bx)) {
                reference.insert(k, (t, x));
            }
        }
        let expected: Vec<(i64, f64)> = reference.into_iter().map(|(k, (_, x))| (k, x)).collect();
        assert!(
            expected.len() > 100 && expected.len() < timed_keys.len(),
            "the ttl must drop some keys"
        );

        let layout = AsOfLayout {
            keys: 1,
            created: false,
            mode: Mode::Event,
            ttl_micros: Some(ttl),
            join: JoinMode::Latest { at },
        };
        let out: SchemaRef = Arc::new(Schema::new(vec![
            Field::new(columns::ROW, DataType::UInt64, false),
            Field::new("x", DataType::Float64, true),
            Field::new("__win_k0", DataType::Int64, true),
        ]));
        let counts = || LatestCounts {
            keys: Count::new(),
            unservable: Count::new(),
        };
        let winners = |parts: &[RecordBatch]| -> Vec<(i64, f64)> {
            let mut rows: Vec<(i64, f64)> = parts
                .iter()
                .flat_map(|b| {
                    let x = b.column(1).as_primitive::<arrow::datatypes::Float64Type>().clone();
                    let k = b.column(2).as_primitive::<Int64Type>().clone();
                    (0..b.num_rows()).map(move |r| (k.value(r), x.value(r)))
                })
                .collect();
            rows.sort_by(|a, b| a.partial_cmp(b).unwrap());
            rows
        };

        let in_memory = counts();
        in_memory.count_unservable(&features, 1);
        assert_eq!(in_memory.unservable.value(), unservable);
        let joined = join_partition(&[], std::slice::from_ref(&features), &layout, &out, Some(&in_memory)).unwrap();
        assert_eq!(winners(&[joined]), expected);
        assert_eq!(in_memory.keys.value(), timed_keys.len());

        let mut spill = Spill::new(features.schema(), 0).unwrap();
        spill.write(&features, 1).unwrap();
        let biggest = spill
            .sizes
            .iter()
            .zip(&spill.rows)
            .map(|(size, rows)| size + working_bytes(&layout, (0, 0), (*rows, *size)))
            .max()
            .unwrap();
        let budget = a_third_of(biggest);
        let spilled = counts();
        // Materialization's spine input is empty: only its schema is there.
        let no_spine = RecordBatch::new_empty(Arc::new(Schema::new(vec![
            Field::new(columns::ROW, DataType::UInt64, false),
            Field::new("__k0", DataType::Int64, true),
            Field::new(columns::TIME, instants(0..0).data_type().clone(), true),
        ])));
        let parts = spill.join(&no_spine, &layout, &out, &budget, Some(&spilled)).unwrap();
        assert!(budget.resplits.value() > 0, "no part was split again");
        assert_eq!(winners(&parts), expected);
        assert_eq!(spilled.keys.value(), timed_keys.len());
    }
}
