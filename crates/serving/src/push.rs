//! Push: new source rows reach the offline log first, durably, then the online store.
//!
//! ```text
//! rows ─ push_rows (typed as the source, checked, `created` = ingestion instant where absent)
//!      ─ offline log: one record in the source's journal, fdatasynced (skewless_push_log) ── acknowledged from here on
//!      ─ per online view reading the source: the view's select list (skewless_engine::view_select),
//!        compiled once, evaluated on the batch ─ encoded by the view's layout ─ written newer-wins
//! ```
//!
//! The features of a pushed row are computed by the same expressions a training set runs on
//! the log later, so serving and training see one value. The order is the guarantee: once a
//! push is acknowledged its rows are in the log, and a replayed `id` appends nothing. If the
//! online write fails after the append, the push fails with `ONLINE_WRITE_FAILED`, saying the
//! rows are logged; the next `materialize-incremental` writes them (the source's `created`
//! marks them new, and newer-wins keeps anything newer).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::{Field, Schema};
use datafusion::common::DFSchema;
use datafusion::physical_expr::PhysicalExpr;
use skewless_defs::{Definitions, Source};
use skewless_online::{OnlineStore, ViewLayout};
use skewless_push_log::{Appended, PushLog, TAG_SEPARATOR};
use skewless_sources::files as source;

use crate::core::{Cause, Pushed, RequestError, RowProblem};
use crate::push_rows::PushSchema;

/// Keys live this much longer than their view's ttl, counted from the write (pushes and
/// materializations alike).
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(3600);

/// Where a push goes. Feast's `to`; skewless always logs what it serves (see [`PushTo::parse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PushTo {
    /// The offline log, then the online store (Feast's `online` and `online_and_offline`).
    #[default]
    OnlineAndOffline,
    /// The offline log only (Feast's `offline`).
    Offline,
}

impl PushTo {
    /// Feast's names. `online` also logs offline: a value served and never logged would be
    /// missing from the training sets that follow, which is skew.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "online" | "online_and_offline" => Some(PushTo::OnlineAndOffline),
            "offline" => Some(PushTo::Offline),
            _ => None,
        }
    }
}

/// Pushed rows, in any of the forms they arrive in.
#[derive(Debug, Clone)]
pub enum PushInput {
    /// JSON objects, one per row (`/v1/push`, JSON lines), gathered by column as read.
    Rows(crate::push_rows::RowColumns),
    /// Column-major JSON: Feast's `df`.
    Columns(serde_json::Map<String, serde_json::Value>),
    /// Arrow batches (Arrow IPC, Parquet, CSV).
    Batches(Vec<RecordBatch>),
}

impl PushInput {
    /// The rows as one batch in the source's schema, as given: missing availability times
    /// are still null ([`PushSchema::fill_created`] fills them). `now` is the ingestion
    /// clock the times given are checked against.
    pub fn typed(&self, schema: &PushSchema, now: i64) -> Result<RecordBatch, RequestError> {
        match self {
            PushInput::Rows(rows) => schema.from_rows(rows, now),
            PushInput::Columns(df) => schema.from_columns(df, now),
            PushInput::Batches(batches) => schema.from_batches(batches, now),
        }
        .map_err(|e| bad_row(schema, e))
    }
}

fn bad_row(schema: &PushSchema, e: crate::push_rows::InputError) -> RequestError {
    RequestError::BadRow {
        file: None,
        push_source: schema.source.clone(),
        problem: RowProblem::Input(Box::new(e)),
    }
}

/// A digest of a push's rows as given (before the ingestion instant fills in missing
/// availability times, so a retry of the same rows has the same digest): SHA-256 over the
/// rows in Arrow's row format, which encodes values alone (not what a null slot holds),
/// 16 hex digits.
fn rows_digest(batch: &RecordBatch) -> Result<String, RequestError> {
    use sha2::Digest;
    let fields = batch
        .schema()
        .fields()
        .iter()
        .map(|f| arrow::row::SortField::new(f.data_type().clone()))
        .collect();
    let converter = arrow::row::RowConverter::new(fields).map_err(internal)?;
    let rows = converter.convert_columns(batch.columns()).map_err(internal)?;
    let mut hasher = sha2::Sha256::new();
    for row in rows.iter() {
        let bytes = row.as_ref();
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    }
    Ok(hex::encode(&hasher.finalize()[..8]))
}

/// The newest event or availability time among `batch`'s rows (µs), `i64::MAX` when one
/// cannot be read (then nothing counts as covering them).
fn newest_instant(batch: &RecordBatch, schema: &PushSchema) -> i64 {
    let newest_of = |name: &str| -> Option<i64> {
        let column = batch.column_by_name(name)?;
        let micros = arrow::compute::cast(
            column,
            &arrow::datatypes::DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
        )
        .ok()?;
        let micros = arrow::compute::cast(&micros, &arrow::datatypes::DataType::Int64).ok()?;
        let micros = micros.as_any().downcast_ref::<arrow::array::Int64Array>()?;
        Some(arrow::compute::max(micros).unwrap_or(i64::MIN))
    };
    let event = newest_of(&schema.timestamp);
    let created = schema.created.as_deref().map(newest_of).unwrap_or(Some(i64::MIN));
    match (event, created) {
        (Some(event), Some(created)) => event.max(created),
        _ => i64::MAX,
    }
}

/// The tile tag of a push with an id: the first 8 bytes of SHA-256 of `<id>␟<rows digest>`,
/// the same for every retry of the same rows.
fn tile_tag(id_and_digest: &str) -> [u8; 8] {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(id_and_digest.as_bytes());
    let mut tag = [0u8; 8];
    tag.copy_from_slice(&hash[..8]);
    tag
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PushReport {
    pub source: String,
    pub rows: usize,
    /// `false` when the push's id was seen before: nothing was written, anywhere.
    pub appended: bool,
    /// Where the rows are in the offline log: `<journal file>@<byte offset>` (training sets
    /// read them after folding the journal into a segment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logged: Option<String>,
    /// Per online view: keys written, and writes skipped because the store held a newer value.
    pub views: BTreeMap<String, ViewWrites>,
    /// Rows that broke a view's contracts: excluded from that view (or its breaking features
    /// nulled, with `on_violation: null`), and written to the quarantine.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub broke_contracts: Vec<BrokenRow>,
}

/// A pushed row that broke a contract of a view.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BrokenRow {
    /// The row's index in the push.
    pub row: usize,
    pub view: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct ViewWrites {
    pub written: u64,
    pub skipped_not_newer: u64,
}

/// What a push writes for one view: row values (newer wins), or tile records to append.
enum ViewEntries {
    Rows(Vec<(Vec<u8>, Vec<u8>)>),
    Tiles(Vec<skewless_online::tiles::TileWrite>),
}

/// A view's entries for one push, and the newest event time among them.
type ViewWrite<'a> = (&'a ViewPush, ViewEntries, Option<i64>);
/// A view's rows that break its contracts: where they are in the push and why, and
/// `[keys.., ts, created?, reason]` for the quarantine.
type ViewBroken<'a> = (&'a ViewPush, (Vec<BrokenRow>, RecordBatch));

/// One push source, compiled from one applied version: its schema, its log and, per online
/// view reading it, the physical select list and the layout.
#[derive(Debug)]
pub struct PushTarget {
    pub input: PushSchema,
    log: Arc<PushLog>,
    views: Vec<ViewPush>,
    defs: Definitions,
    root: std::path::PathBuf,
    /// Where materializations record how far they reached, when pushes go to a store they
    /// materialize (not the parity harness's throwaway one).
    registry: Option<skewless_registry::Registry>,
}

#[derive(Debug)]
struct ViewPush {
    view: skewless_defs::FeatureView,
    layout: ViewLayout,
    select: Vec<Arc<dyn PhysicalExpr>>,
    /// The contract verdict (NULL: kept), when the view's features have contracts.
    violation: Option<Arc<dyn PhysicalExpr>>,
    expire_after: Option<Duration>,
}

impl PushTarget {
    /// Compiles `source_name` of `defs` (the applied definitions) under project `root`.
    pub fn compile(root: &Path, defs: &Definitions, source_name: &str) -> Result<Self, RequestError> {
        Self::compile_views(root, defs, source_name, &|_| true)
    }

    /// [`PushTarget::compile`] for only the online views `wanted` accepts.
    pub fn compile_views(
        root: &Path,
        defs: &Definitions,
        source_name: &str,
        wanted: &dyn Fn(&skewless_defs::FeatureView) -> bool,
    ) -> Result<Self, RequestError> {
        let source = find_source(defs, source_name)?;
        let schema = push_schema(root, defs, source)?;
        let keys: Vec<String> = source::key_columns(defs, source).into_iter().map(|(n, _)| n).collect();
        let df_schema = DFSchema::try_from(schema.as_ref().clone()).map_err(internal)?;
        let ctx = skewless_engine::session();
        let mut views = Vec::new();
        for view in defs
            .feature_views
            .values()
            .filter(|v| v.online && v.source == source.name && wanted(v))
        {
            let layout = ViewLayout::new(defs, view).map_err(RequestError::from)?;
            let select = skewless_engine::view_select(defs, view, source, &schema, None)
                .map_err(|e| RequestError::Internal(format!("view `{}`: {e}", view.name)))?;
            let physical = |e| skewless_engine::physical_expr(&ctx, e, &df_schema).map_err(internal);
            views.push(ViewPush {
                view: view.clone(),
                layout,
                select: select.columns.into_iter().map(physical).collect::<Result<_, _>>()?,
                violation: select.violation.map(physical).transpose()?,
                expire_after: view.ttl.map(|ttl| Duration::from_secs(ttl.seconds()) + EXPIRY_MARGIN),
            });
        }
        Ok(PushTarget {
            input: PushSchema::new(source, schema, &keys),
            log: PushLog::shared(root, &source.name),
            views,
            defs: defs.clone(),
            root: root.to_path_buf(),
            registry: None,
        })
    }

    /// This target's pushes go to a store that `registry` records materializations of.
    pub fn with_registry(self, registry: skewless_registry::Registry) -> Self {
        PushTarget {
            registry: Some(registry),
            ..self
        }
    }

    /// Pushes `typed` (in the source's schema, availability times as given: [`PushSchema`]),
    /// ingested at `now`: logs it, then writes the online views. `id` is the push's id, if
    /// any. See the module docs for the guarantee.
    async fn push(
        &self,
        store: &dyn OnlineStore,
        typed: RecordBatch,
        now: i64,
        id: Option<String>,
        to: PushTo,
    ) -> Result<PushReport, RequestError> {
        // The log keeps an id as `<id>␟<digest of the rows as given>␟<ingestion instant>`: a
        // retry of the same rows is known as one, and is filled in as the first push was.
        // Its tile records carry a tag derived from the id and rows, so a retry's records
        // count once ([`skewless_online::tiles`]); a push without an id cannot be retried and
        // gets a random tag.
        let (kept_id, tag) = match &id {
            Some(id) => {
                check_push_id(id)?;
                let digest = rows_digest(&typed)?;
                let tag = tile_tag(&format!("{id}{TAG_SEPARATOR}{digest}"));
                (Some(format!("{id}{TAG_SEPARATOR}{digest}{TAG_SEPARATOR}{now}")), tag)
            }
            None => (None, skewless_push_log::nonce().to_be_bytes()),
        };
        let batch = self
            .input
            .fill_created(typed.clone(), now)
            .map_err(|e| bad_row(&self.input, e))?;
        let rows = batch.num_rows();
        let mut report = PushReport {
            source: self.input.source.clone(),
            rows,
            appended: false,
            logged: None,
            views: BTreeMap::new(),
            broke_contracts: Vec::new(),
        };
        if rows == 0 {
            return Ok(report);
        }
        // Computed before anything is written: a row no view can encode, or one that breaks a
        // contract of an `on_violation: fail` view, fails the push whole.
        let (writes, broken) = match to {
            PushTo::OnlineAndOffline => self.compute(&batch, tag)?,
            PushTo::Offline => (Vec::new(), Vec::new()),
        };
        let appended = self
            .log
            .append(&batch, kept_id.as_deref())
            .await
            .map_err(|e| RequestError::LogUnavailable { cause: Cause::new(e) })?;
        let logged = match appended {
            // The same rows again: they are in the log, but the first push may have stopped
            // before its online write (a crash, a store error). They are written again,
            // filled in at the first push's ingestion instant, so exactly what the log holds:
            // newer-wins makes that a no-op for row values that landed, and the tag for tile
            // records that did.
            Appended::Replayed { first: Some(logged_id) } if to == PushTo::OnlineAndOffline => {
                let Some(first_now) = logged_id
                    .split(TAG_SEPARATOR)
                    .nth(1)
                    .and_then(|t| t.parse::<i64>().ok())
                else {
                    return Ok(report);
                };
                let first = self
                    .input
                    .fill_created(typed, first_now)
                    .map_err(|e| bad_row(&self.input, e))?;
                let newest = newest_instant(&first, &self.input);
                let (mut writes, _) = self.compute(&first, tag)?;
                let rebuilt = self.tiles_rebuilt_with(store, first_now, newest).await;
                writes.retain(|(view, entries, _)| {
                    !(matches!(entries, ViewEntries::Tiles(_)) && rebuilt.contains(&view.view.name))
                });
                report.views = self
                    .write(store, writes, &|view, e| RequestError::OnlineWriteFailed {
                        view: view.to_string(),
                        pushed: Pushed::Replayed { rows },
                        cause: Cause::new(e),
                    })
                    .await?;
                return Ok(report);
            }
            Appended::Replayed { .. } => return Ok(report),
            Appended::Conflict => {
                return Err(RequestError::PushIdConflict {
                    id: id.unwrap_or_default(),
                });
            }
            Appended::Logged { journal, offset } => format!("{journal}@{offset}"),
        };
        report.appended = true;
        report.logged = Some(logged);
        for (view, (rows_broken, breaking)) in broken {
            skewless_sources::quarantine::append_rows(&self.defs, &self.root, &view.view, &breaking, now)
                .map_err(|e| RequestError::Internal(e.to_string()))?;
            report.broke_contracts.extend(rows_broken);
        }
        let logged = report.logged.clone().unwrap_or_default();
        report.views = self
            .write(store, writes, &|view, e| RequestError::OnlineWriteFailed {
                view: view.to_string(),
                pushed: Pushed::Logged {
                    rows,
                    at: logged.clone(),
                },
                cause: Cause::new(e),
            })
            .await?;
        Ok(report)
    }

    /// The aggregated views whose tiles a materialization rebuilt from the log after a push
    /// logged at `logged` with rows up to `newest` (event or availability time): they count
    /// its rows already, and its tile records, appended again, would count them twice (a
    /// rebuild keeps no push's tag). Such a run chose its `end` at or after `logged`, so it
    /// read the log after the push was in it, bar the milliseconds of the append itself; a
    /// run that ended before the rows (`materialize --end` in the past) dropped them, and the
    /// replay writes them back. Unknown (no registry, a store or file that cannot be read):
    /// none, so the replay writes.
    async fn tiles_rebuilt_with(&self, store: &dyn OnlineStore, logged: i64, newest: i64) -> Vec<String> {
        let Some(registry) = &self.registry else {
            return Vec::new();
        };
        if !self.views.iter().any(|v| v.layout.tiles.is_some()) {
            return Vec::new();
        }
        let Ok(instance) = store.instance_id().await else {
            return Vec::new();
        };
        let store_ref = skewless_registry::StoreRef {
            identity: store.identity(),
            instance,
        };
        let Ok(marks) = registry.watermarks(&store_ref) else {
            return Vec::new();
        };
        self.views
            .iter()
            .filter(|v| v.layout.tiles.is_some())
            .filter(|v| {
                marks
                    .get(&v.view.name)
                    .is_some_and(|w| w.version == v.layout.version && w.end >= logged && w.end >= newest)
            })
            .map(|v| v.view.name.clone())
            .collect()
    }

    /// The online half of a push alone: `batch` computed, judged by the contracts and written
    /// to `store`, with no log append and no quarantine file. The parity harness replays a
    /// push source's rows through it into a throwaway store.
    pub async fn replay_online(&self, store: &dyn OnlineStore, batch: &RecordBatch) -> Result<(), RequestError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let (writes, _) = self.compute(batch, skewless_push_log::nonce().to_be_bytes())?;
        self.write(store, writes, &|view, e| RequestError::OnlineWriteFailed {
            view: view.to_string(),
            pushed: Pushed::FromLog,
            cause: Cause::new(e),
        })
        .await?;
        Ok(())
    }

    /// Each view's entries for `batch` (row values, or tile records tagged `tag`) with its
    /// newest event time, and the rows that break contracts per view.
    fn compute(
        &self,
        batch: &RecordBatch,
        tag: [u8; 8],
    ) -> Result<(Vec<ViewWrite<'_>>, Vec<ViewBroken<'_>>), RequestError> {
        let rows = batch.num_rows();
        let mut writes = Vec::new();
        let mut broken = Vec::new();
        for view in &self.views {
            let cannot = |e: datafusion::error::DataFusionError| RequestError::BadRow {
                file: None,
                push_source: self.input.source.clone(),
                problem: RowProblem::Uncomputable {
                    view: view.layout.view.clone(),
                    detail: e.strip_backtrace(),
                },
            };
            let evaluate = |e: &Arc<dyn PhysicalExpr>| e.evaluate(batch).and_then(|v| v.into_array(rows));
            let columns = view
                .select
                .iter()
                .map(evaluate)
                .collect::<datafusion::error::Result<Vec<ArrayRef>>>();
            let columns = columns.map_err(cannot)?;
            let mut computed = unnamed_batch(columns)?;
            if let Some(violation) = &view.violation {
                let verdict = evaluate(violation).map_err(cannot)?;
                let (kept, breaking) = self.split(view, &computed, &verdict)?;
                if view.view.on_violation != skewless_defs::OnViolation::Null {
                    computed = kept;
                }
                broken.push((view, breaking));
            }
            let entries = if view.layout.tiles.is_some() {
                use skewless_online::tiles::Records;
                let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
                let writes =
                    skewless_online::tiles::writes(&view.layout, &computed, None, Records::Append(tag), now_ms)
                        .map_err(RequestError::from)?;
                ViewEntries::Tiles(writes)
            } else {
                ViewEntries::Rows(view.layout.encode_batch(&computed).map_err(RequestError::from)?)
            };
            let newest = newest_event_time(&computed, view.layout.keys.len());
            writes.push((view, entries, newest));
        }
        Ok((writes, broken))
    }

    /// Writes every view's values and freshness record at once: one round trip's wait, not
    /// two per view. `failed` words a store error for the view it hit.
    async fn write(
        &self,
        store: &dyn OnlineStore,
        writes: Vec<ViewWrite<'_>>,
        failed: &(dyn Fn(&str, skewless_online::Error) -> RequestError + Sync),
    ) -> Result<BTreeMap<String, ViewWrites>, RequestError> {
        let view_writes = writes.into_iter().map(|(view, entries, newest)| async move {
            let failed = |e: skewless_online::Error| failed(&view.layout.view, e);
            let freshness = async {
                match newest {
                    Some(newest) => {
                        let record = vec![(view.layout.freshness_key(), view.layout.freshness_value(newest))];
                        store.write(record, None).await.map(|_| ())
                    }
                    None => Ok(()),
                }
            };
            let values = async {
                match entries {
                    ViewEntries::Rows(entries) => store.write(entries, view.expire_after).await,
                    ViewEntries::Tiles(writes) => {
                        let entities = writes.len() as u64;
                        store.write_tiles(writes).await?;
                        Ok(skewless_online::WriteSummary {
                            written: entities,
                            skipped: 0,
                        })
                    }
                }
            };
            let (summary, ()) = futures::future::try_join(values, freshness).await.map_err(failed)?;
            let writes = ViewWrites {
                written: summary.written,
                skipped_not_newer: summary.skipped,
            };
            Ok::<_, RequestError>((view.layout.view.clone(), writes))
        });
        Ok(futures::future::try_join_all(view_writes).await?.into_iter().collect())
    }

    /// Splits a view's computed rows by their contract verdict: the rows that keep the
    /// contracts, and those that break them (their rows in the push and reasons, and
    /// `[keys.., ts, created?, reason]` for the quarantine). With `fail`, any is an error.
    #[allow(clippy::type_complexity)]
    fn split(
        &self,
        view: &ViewPush,
        computed: &RecordBatch,
        verdict: &ArrayRef,
    ) -> Result<(RecordBatch, (Vec<BrokenRow>, RecordBatch)), RequestError> {
        let reasons = verdict
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .ok_or_else(|| internal(format!("a contract verdict of type {}", verdict.data_type())))?;
        let breaks: Vec<BrokenRow> = (0..reasons.len())
            .filter(|&r| reasons.is_valid(r))
            .map(|r| BrokenRow {
                row: r,
                view: view.layout.view.clone(),
                reason: reasons.value(r).to_string(),
            })
            .collect();
        if let Some(first) = breaks.first()
            && view.view.on_violation == skewless_defs::OnViolation::Fail
        {
            return Err(RequestError::BadRow {
                file: None,
                push_source: self.input.source.clone(),
                problem: RowProblem::Contract {
                    row: first.row,
                    view: first.view.clone(),
                    reason: first.reason.clone(),
                },
            });
        }
        let keep = arrow::compute::is_null(verdict).map_err(internal)?;
        let kept = arrow::compute::filter_record_batch(computed, &keep).map_err(internal)?;
        let times = view.layout.keys.len() + 1 + usize::from(view.layout.created);
        let mut columns: Vec<ArrayRef> = computed.columns()[..times].to_vec();
        columns.push(Arc::clone(verdict));
        let all = unnamed_batch(columns)?;
        let breaking_mask = arrow::compute::is_not_null(verdict).map_err(internal)?;
        let breaking = arrow::compute::filter_record_batch(&all, &breaking_mask).map_err(internal)?;
        Ok((kept, (breaks, breaking)))
    }

    /// [`PushTarget::push`] of rows in any form, typed as the source first.
    pub async fn push_input(
        &self,
        store: &dyn OnlineStore,
        input: &PushInput,
        id: Option<String>,
        to: PushTo,
        now: i64,
    ) -> Result<PushReport, RequestError> {
        let typed = input.typed(&self.input, now)?;
        self.push(store, typed, now, id, to).await
    }

    /// [`Self::push_input`] that drops the rows as given once they are typed.
    pub async fn push_owned(
        &self,
        store: &dyn OnlineStore,
        input: PushInput,
        id: Option<String>,
        to: PushTo,
        now: i64,
    ) -> Result<PushReport, RequestError> {
        let typed = input.typed(&self.input, now)?;
        drop(input);
        self.push(store, typed, now, id, to).await
    }
}

/// The longest push id taken, in bytes.
pub const MAX_PUSH_ID_BYTES: usize = 256;

/// A push id is 1 to [`MAX_PUSH_ID_BYTES`] bytes of text without control characters. An
/// empty id would make every later push without a real id a "replay", silently dropped.
pub fn check_push_id(id: &str) -> Result<(), RequestError> {
    let problem = if id.is_empty() {
        "is empty".to_string()
    } else if id.len() > MAX_PUSH_ID_BYTES {
        format!("is {} bytes; at most {MAX_PUSH_ID_BYTES} are taken", id.len())
    } else if id.chars().any(char::is_control) {
        "holds a control character".to_string()
    } else {
        return Ok(());
    };
    Err(RequestError::BadPushId { problem })
}

/// Columns as a batch, named by position (the layout reads them by position).
fn unnamed_batch(columns: Vec<ArrayRef>) -> Result<RecordBatch, RequestError> {
    let fields: Vec<Field> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| Field::new(format!("c{i}"), c.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(internal)
}

fn internal(e: impl std::fmt::Display) -> RequestError {
    RequestError::Internal(e.to_string())
}

fn newest_event_time(batch: &RecordBatch, at: usize) -> Option<i64> {
    batch
        .column(at)
        .as_any()
        .downcast_ref::<arrow::array::TimestampMicrosecondArray>()
        .and_then(arrow::compute::max)
}

fn find_source<'a>(defs: &'a Definitions, name: &str) -> Result<&'a Source, RequestError> {
    let Some(source) = defs.sources.get(name) else {
        return Err(RequestError::UnknownSource {
            name: name.to_string(),
            near: skewless_defs::did_you_mean(name, defs.sources.keys().map(String::as_str)),
        });
    };
    if !source.push {
        return Err(RequestError::NotPushSource {
            name: name.to_string(),
            has_path: true,
        });
    }
    Ok(source)
}

/// The schema pushes follow: the source's batch files' schema, the one the log must share
/// to be read beside them.
fn push_schema(root: &Path, defs: &Definitions, source: &Source) -> Result<arrow::datatypes::SchemaRef, RequestError> {
    if source.path.is_none() {
        return Err(RequestError::NotPushSource {
            name: source.name.clone(),
            has_path: false,
        });
    }
    let unreadable = |e: skewless_sources::Error| RequestError::SourceUnreadable {
        push_source: source.name.clone(),
        detail: e.to_string(),
    };
    let files = source::resolve(root, source).map_err(unreadable)?;
    source::read_schema(source, &files, &source::key_columns(defs, source)).map_err(unreadable)
}
