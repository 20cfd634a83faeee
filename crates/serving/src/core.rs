//! The serving core: everything a lookup needs, compiled once per applied version.
//!
//! [`Serving`] reads the registry once and prepares each online view's layout, each on-demand
//! view's [`OnDemandProgram`] (planned by DataFusion once), the services' resolved features
//! and the key and request-field types. A request then does only: find its selection's
//! [`Plan`] (made once per selection) → type the entities into the plan's slots as they are
//! read ([`crate::entities`]) → one store round trip → decode with statuses → evaluate
//! on-demand programs → answer. The feature server, `skewless get` and the parity harness
//! all go through it.
//!
//! ```text
//! Serving::new(dirs, store) ── registry (once) ──▶ layouts, programs, services
//! Serving::plan(selection) ─▶ Plan (cached) ─▶ Entities (typed as read)
//! Serving::get_entities(plan, entities, at) ─▶ online::lookup (one read) ─▶ on-demand ─▶ GetOutput
//! ```
//!
//! Request errors are one enum, [`RequestError`], by kind: the caller's mistakes, a store
//! that fails, a bug. The server gives each its HTTP status and stable code
//! (`skewless_server`'s `failure::answer`, the one table).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::ArrayRef;
use skewless_defs::{Definitions, FeatureSelection, KeyType, ResolvedFeature, needed_views, resolve_selection};
use skewless_engine::{EvalError, OnDemandInput, OnDemandProgram};
use skewless_online::values::{scalar_at, to_array};
use skewless_online::{FeatureValue, Given, LookupStats, OnlineStore, Scalar, Selection, Status, ViewLayout, lookup};

use crate::entities::{Entities, Field, FieldTable};
use crate::{Error, ProjectDirs};

/// Why a request cannot be answered, by kind (the server maps each kind to a stable code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// A feature view that a selection reads is not in the definitions.
    #[error("unknown feature view `{name}`")]
    UnknownView { name: String },
    /// A selection that does not resolve: a malformed reference or none at all (the caller's
    /// shape), or names that do not exist.
    #[error(transparent)]
    Selection(skewless_defs::SelectionError),
    /// Asks for a view that is not served online.
    #[error("feature view `{0}` is not online (`online: false`): nothing is materialized for it")]
    ViewNotOnline(String),
    /// An entity that lacks a key, has an unknown field, or a value of the wrong type
    /// (entities count from 1).
    #[error("entity {entity}: {problem}")]
    BadEntity { entity: usize, problem: EntityProblem },
    /// An on-demand view's request field is missing from an entity.
    #[error("entity {entity}: on-demand view `{view}` needs request field `{field}` (pass {field}=VALUE)")]
    MissingRequestField { entity: usize, view: String, field: String },
    /// Nothing is applied: there is nothing to serve.
    #[error("nothing is applied yet: run `skewless apply` first")]
    NothingApplied,
    /// The online store failed or is unreachable.
    #[error("{cause}")]
    StoreUnavailable { cause: Cause },
    /// A push source's batch files, which give pushed rows their schema, cannot be read on the
    /// server (a deployment problem, not the caller's): nothing was pushed.
    #[error("push source `{push_source}`: its batch files cannot be read: {detail}")]
    SourceUnreadable { push_source: String, detail: String },
    /// A write to a feature view (Feast's `write_to_online_store`) that cannot be taken as a
    /// push to its source ([`crate::view_write`]).
    #[error("feature view `{view}` cannot be written: {reason}")]
    ViewNotWritable {
        view: String,
        reason: crate::view_write::WriteRefusal,
    },
    /// A push names a source that does not exist (with the nearest name when one is close).
    #[error("unknown source `{name}`{}", near.as_ref().map(|n| format!(" (did you mean `{n}`?)")).unwrap_or_default())]
    UnknownSource { name: String, near: Option<String> },
    /// A push to a source that does not take pushes: not declared `push: true`, or without
    /// the batch files that give pushed rows their schema (`has_path: false`).
    #[error("{}", if *has_path {
        format!("source `{name}` does not take pushes: declare `push: true` on it and apply")
    } else {
        format!("source `{name}` has no `path`: skewless takes the schema of pushed rows from the source's batch files, so a push source needs at least one file (it may hold no rows)")
    })]
    NotPushSource { name: String, has_path: bool },
    /// A pushed row that does not fit its source, naming the row and field; nothing was written.
    #[error("{}source `{push_source}`: {problem}; nothing was pushed", file.as_ref().map(|f| format!("{}: ", f.display())).unwrap_or_default())]
    BadRow {
        /// The file the rows came from (`skewless push --file`), when they came from one.
        file: Option<std::path::PathBuf>,
        push_source: String,
        problem: RowProblem,
    },
    /// A push id that is empty, too long or holds control characters; nothing was pushed.
    #[error("the push id {problem}: give 1 to {max} bytes of text, or no id; nothing was pushed", max = crate::push::MAX_PUSH_ID_BYTES)]
    BadPushId { problem: String },
    /// A push id used before for other rows; nothing was pushed.
    #[error("push id `{id}` was used before for other rows; nothing was pushed (give these rows another id)")]
    PushIdConflict { id: String },
    /// The offline log could not be appended to: nothing was pushed.
    #[error("nothing was pushed: {cause}")]
    LogUnavailable { cause: Cause },
    /// The rows are in the offline log but the online store did not take view `view`'s
    /// values; `pushed` says which rows and what repairs them.
    #[error("{}", match pushed {
        Pushed::Logged { rows, at } => format!("the {rows} rows are in the offline log ({at}), but writing feature view `{view}` online failed: {cause}; the next `skewless materialize-incremental` writes them"),
        Pushed::Replayed { rows } => format!("the {rows} rows of this replayed push are in the offline log, but writing feature view `{view}` online failed: {cause}; a retry writes them again"),
        Pushed::FromLog => format!("replaying pushes into feature view `{view}` failed: {cause}"),
    })]
    OnlineWriteFailed { view: String, pushed: Pushed, cause: Cause },
    /// A bug in skewless.
    #[error("internal error (a bug, please report it): {0}")]
    Internal(String),
}

/// Which pushed rows an online write that failed was for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// A push's `rows`, appended to the offline log at `at` (`journal@offset`).
    Logged { rows: usize, at: String },
    /// A push's `rows` sent again with an id already logged.
    Replayed { rows: usize },
    /// Rows of the offline log written online again (a materialization's replay).
    FromLog,
}

/// Another library's error (the store's client, the disk) as a request error carries it:
/// shared, so [`RequestError`] stays cheap to clone; equal when they say the same.
#[derive(Debug, Clone)]
pub struct Cause(pub Arc<dyn std::error::Error + Send + Sync>);

impl Cause {
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Cause(Arc::new(e))
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl Eq for Cause {}

/// What is wrong with pushed rows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowProblem {
    /// A row or field that does not fit the source's schema (naming the row and field).
    #[error("{0}")]
    Input(Box<crate::push_rows::InputError>),
    /// A feature view's expressions fail on the rows (a cast or a division that fails).
    #[error("feature view `{view}`: the pushed rows cannot be computed: {detail}")]
    Uncomputable { view: String, detail: String },
    /// A row breaks a contract of a view with `on_violation: fail`.
    #[error("row {row}: view `{view}` (on_violation: fail): {reason}")]
    Contract { row: usize, view: String, reason: String },
}

/// What is wrong with one entity of a lookup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntityProblem {
    /// A field's value does not fit its declared type.
    #[error("`{field}`: {error}")]
    Value {
        field: String,
        error: skewless_online::input::ValueError,
    },
    /// A field given twice: which value counts would be a guess.
    #[error("`{field}`: given twice")]
    Twice { field: String },
    /// A field that is neither a join key nor a request field of the requested features.
    #[error("`{field}` is neither a join key nor a request field of the requested features (known: {})", known.join(", "))]
    UnknownField { field: String, known: Vec<String> },
    /// A join key of a view read is missing.
    #[error("no value for `{key}`, a join key of view `{view}`")]
    MissingKey { key: String, view: String },
}

impl From<skewless_online::Error> for RequestError {
    fn from(e: skewless_online::Error) -> Self {
        match e {
            skewless_online::Error::MissingKey { entity, key, view } => RequestError::BadEntity {
                entity,
                problem: EntityProblem::MissingKey { key, view },
            },
            e @ (skewless_online::Error::Redis { .. } | skewless_online::Error::Embedded { .. }) => {
                RequestError::StoreUnavailable { cause: Cause::new(e) }
            }
            other => RequestError::Internal(other.to_string()),
        }
    }
}

/// What a lookup needs, prepared from one applied version; holds no store.
#[derive(Debug)]
struct Compiled {
    defs: Definitions,
    /// Online feature views by name.
    layouts: BTreeMap<String, Arc<ViewLayout>>,
    /// On-demand views by name.
    programs: BTreeMap<String, Arc<OnDemandProgram>>,
    /// Per on-demand feature (view, feature), the feature views it reads and the on-demand
    /// views to evaluate for it, dependencies first: found once here, so no request parses
    /// SQL, and a request reads only what its own features need.
    on_demand_needs: BTreeMap<(String, String), (BTreeSet<String>, Vec<String>)>,
    /// Plans of the selections asked so far (a service, or a feature list), so a request
    /// resolves nothing its predecessors resolved. Bounded: emptied when full.
    plans: std::sync::Mutex<HashMap<FeatureSelection, Arc<Plan>>>,
    /// Every view's and service's version in this applied version.
    versions: skewless_defs::version::Versions,
}

/// On-demand views to evaluate, dependencies first, each with the indices of the features to
/// evaluate (`None`: all).
type OnDemandSteps = Vec<(String, Option<Vec<usize>>)>;

/// Most distinct selections planned and kept at once.
const MAX_PLANS: usize = 1024;

/// What one selection needs, whatever the entities: the features in answer order, the views
/// to read, the on-demand views to evaluate (dependencies first), the types of the join keys
/// and request fields an entity may carry, and where each value sits in a row: worked out
/// once per selection, so a request builds no map.
///
/// A row of a request starts as the lookup wrote it (every feature of every view read, in
/// `selections` order); each on-demand step appends its features to it; the answer then takes
/// `answer` positions from it.
#[derive(Debug)]
pub struct Plan {
    features: Arc<Vec<ResolvedFeature>>,
    selections: Vec<Selection>,
    on_demand: Vec<OnDemandStep>,
    /// Per requested feature, its position in a row.
    answer: Vec<usize>,
    /// Per row position, how many requested features read it (one: moved into the answer).
    uses: Vec<usize>,
    /// The join keys and request fields an entity may carry, and their slots.
    fields: FieldTable,
    key_names: Arc<BTreeSet<String>>,
    served: Arc<ServedVersions>,
}

impl Plan {
    /// The fields an entity of this plan may carry: type entities with
    /// [`Entities::new`]`(plan.fields(), n)`.
    pub fn fields(&self) -> &FieldTable {
        &self.fields
    }
}

/// One on-demand view to evaluate for a selection.
#[derive(Debug)]
struct OnDemandStep {
    program: Arc<OnDemandProgram>,
    /// The features to evaluate (indices in the program's order), appended to each row in
    /// this order.
    wanted: Vec<usize>,
    /// Where the features it reads sit in a row, by (view, feature).
    reads: Vec<(String, String, usize)>,
}

/// The versions an answer was served from: of each view it read or evaluated (feature views
/// and on-demand views), and of the service asked, if one was. A client can check them
/// against a model's training manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ServedVersions {
    pub views: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

impl Compiled {
    fn new(defs: Definitions) -> Result<Self, Error> {
        let mut layouts = BTreeMap::new();
        for view in defs.feature_views.values().filter(|v| v.online) {
            let layout = ViewLayout::new(&defs, view).map_err(Error::Online)?;
            layouts.insert(view.name.clone(), Arc::new(layout));
        }
        let mut programs = BTreeMap::new();
        let mut on_demand_needs = BTreeMap::new();
        for view in defs.on_demand_views.values() {
            let program = OnDemandProgram::compile(&defs, view).map_err(Error::Invalid)?;
            for (i, feature) in program.feature_names().enumerate() {
                let mut reads = BTreeSet::new();
                let mut order: Vec<String> = Vec::new();
                for input in program.inputs_of(&[i]) {
                    let OnDemandInput::Feature { view: read, .. } = input else {
                        continue;
                    };
                    match defs.on_demand_views.get(read) {
                        // An on-demand view read by this one is evaluated whole, with its needs.
                        Some(dependency) => {
                            let (dep_reads, dep_order) = needed_views(&defs, &all_features(dependency));
                            reads.extend(dep_reads);
                            for name in dep_order {
                                if !order.contains(&name) {
                                    order.push(name);
                                }
                            }
                        }
                        None => {
                            reads.insert(read.clone());
                        }
                    }
                }
                order.push(view.name.clone());
                on_demand_needs.insert((view.name.clone(), feature.to_string()), (reads, order));
            }
            programs.insert(view.name.clone(), Arc::new(program));
        }
        Ok(Compiled {
            layouts,
            programs,
            on_demand_needs,
            plans: std::sync::Mutex::new(HashMap::new()),
            versions: skewless_defs::version::versions(&defs),
            defs,
        })
    }

    /// The plan of `selection`, made once and then reused.
    fn plan(&self, selection: &FeatureSelection) -> Result<Arc<Plan>, RequestError> {
        let plans = || self.plans.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(plan) = plans().get(selection) {
            return Ok(Arc::clone(plan));
        }
        let plan = Arc::new(self.make_plan(selection)?);
        let mut plans = plans();
        if plans.len() >= MAX_PLANS {
            plans.clear();
        }
        plans.insert(selection.clone(), Arc::clone(&plan));
        Ok(plan)
    }

    fn make_plan(&self, selection: &FeatureSelection) -> Result<Plan, RequestError> {
        let defs = &self.defs;
        let features = resolve_selection(defs, selection).map_err(RequestError::Selection)?;
        let (views, on_demand) = self.needs(&features);
        // Every feature of every view read, directly or by an on-demand view.
        let selections = views
            .iter()
            .map(|name| match self.layouts.get(name) {
                Some(layout) => Ok(Selection {
                    layout: Arc::clone(layout),
                    features: (0..layout.features.len()).collect(),
                }),
                None if defs.feature_views.contains_key(name) => Err(RequestError::ViewNotOnline(name.clone())),
                None => Err(RequestError::UnknownView { name: name.clone() }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let key_types: BTreeMap<String, KeyType> =
            selections.iter().flat_map(|s| s.layout.keys.iter().cloned()).collect();
        let request_types: BTreeMap<&String, skewless_defs::FeatureType> = on_demand
            .iter()
            .filter_map(|(name, _)| defs.on_demand_views.get(name))
            .flat_map(|v| v.request.iter().map(|r| (&r.name, r.ty)))
            .collect();
        let fields = FieldTable::new(key_types.iter().map(|(n, t)| (n, *t)), request_types);
        let versions = &self.versions;
        let served = ServedVersions {
            views: views
                .iter()
                .filter_map(|v| versions.feature_views.get(v).map(|ver| (v.clone(), ver.clone())))
                .chain(
                    on_demand
                        .iter()
                        .filter_map(|(v, _)| versions.on_demand_views.get(v).map(|ver| (v.clone(), ver.clone()))),
                )
                .collect(),
            service: match selection {
                FeatureSelection::Service(name) => versions.feature_services.get(name).cloned(),
                FeatureSelection::Features(_) => None,
            },
        };
        let (on_demand, answer, uses) = self.positions(&selections, on_demand, &features)?;
        Ok(Plan {
            served: Arc::new(served),
            features: Arc::new(features),
            selections,
            on_demand,
            answer,
            uses,
            key_names: Arc::new(key_types.keys().cloned().collect()),
            fields,
        })
    }

    /// Where every value of a row sits: the looked-up features, then each on-demand step's
    /// features as it appends them; and per requested feature, its position.
    #[allow(clippy::type_complexity)]
    fn positions(
        &self,
        selections: &[Selection],
        steps: OnDemandSteps,
        features: &[ResolvedFeature],
    ) -> Result<(Vec<OnDemandStep>, Vec<usize>, Vec<usize>), RequestError> {
        let mut positions: HashMap<(&str, &str), usize> = HashMap::new();
        for s in selections {
            for (feature, _) in &s.layout.features {
                positions.insert((s.layout.view.as_str(), feature.as_str()), positions.len());
            }
        }
        let mut on_demand = Vec::with_capacity(steps.len());
        for (name, wanted) in steps {
            let program = self
                .programs
                .get(&name)
                .ok_or_else(|| RequestError::Internal(format!("on-demand view `{name}` is not compiled")))?;
            let wanted = wanted.unwrap_or_else(|| (0..program.feature_names().count()).collect());
            let reads = program
                .inputs_of(&wanted)
                .filter_map(|input| match input {
                    OnDemandInput::Feature { view, feature, .. } => Some((view, feature)),
                    OnDemandInput::Request { .. } => None,
                })
                .map(|(view, feature)| {
                    positions
                        .get(&(view.as_str(), feature.as_str()))
                        .map(|&p| (view.clone(), feature.clone(), p))
                        .ok_or_else(|| RequestError::Internal(format!("`{view}.{feature}` is not looked up")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            for &i in &wanted {
                let feature = program.feature_names().nth(i).ok_or_else(|| {
                    RequestError::Internal(format!("on-demand view `{}` has no feature {i}", program.view))
                })?;
                positions.insert((program.view.as_str(), feature), positions.len());
            }
            on_demand.push(OnDemandStep {
                program: Arc::clone(program),
                wanted,
                reads,
            });
        }
        let answer = features
            .iter()
            .map(|f| {
                positions
                    .get(&(f.view.as_str(), f.feature.as_str()))
                    .copied()
                    .ok_or_else(|| RequestError::Internal(format!("`{}:{}` is not looked up", f.view, f.feature)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut uses = vec![0usize; positions.len()];
        answer.iter().for_each(|&p| uses[p] += 1);
        Ok((on_demand, answer, uses))
    }

    /// The feature views a request reads, and the on-demand views to evaluate (dependencies
    /// first), each with the features to evaluate: only the requested ones of a view that no
    /// other requested view reads, all of one that another reads.
    fn needs(&self, features: &[ResolvedFeature]) -> (BTreeSet<String>, OnDemandSteps) {
        let mut views = BTreeSet::new();
        let mut order: Vec<String> = Vec::new();
        let mut wanted: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        let mut read_whole: BTreeSet<&str> = BTreeSet::new();
        for f in features {
            match self.on_demand_needs.get(&(f.view.clone(), f.feature.clone())) {
                Some((reads, needed)) if f.on_demand => {
                    views.extend(reads.iter().cloned());
                    // Each order lists dependencies first; appending the new names keeps that.
                    for name in needed {
                        if name != &f.view {
                            read_whole.insert(name);
                        }
                        if !order.contains(name) {
                            order.push(name.clone());
                        }
                    }
                    if let Some(i) = self
                        .programs
                        .get(&f.view)
                        .and_then(|p| p.feature_names().position(|n| n == f.feature))
                    {
                        let indices = wanted.entry(&f.view).or_default();
                        if !indices.contains(&i) {
                            indices.push(i);
                        }
                    }
                }
                _ => {
                    views.insert(f.view.clone());
                }
            }
        }
        let on_demand = order
            .into_iter()
            .map(|name| {
                let features = match wanted.get(name.as_str()) {
                    Some(indices) if !read_whole.contains(name.as_str()) => Some(indices.clone()),
                    _ => None,
                };
                (name, features)
            })
            .collect();
        (views, on_demand)
    }

    async fn get(
        &self,
        store: &dyn OnlineStore,
        plan: &Plan,
        entities: &Entities<'_>,
        at: i64,
    ) -> Result<GetOutput, RequestError> {
        let Plan {
            features,
            selections,
            on_demand,
            answer,
            uses,
            fields: _,
            key_names,
            served,
        } = plan;
        if !std::ptr::eq(entities.table(), &plan.fields) {
            return Err(RequestError::Internal("entities typed by another plan".into()));
        }
        let keys: Vec<_> = (0..entities.len()).map(|i| entities.keys_of(i)).collect();
        let started = std::time::Instant::now();
        let found = lookup(store, selections, &keys, at).await?;
        let store_seconds = started.elapsed().as_secs_f64();

        // Each row holds the looked-up values; on-demand steps append theirs.
        let mut rows = found.rows;
        for step in on_demand {
            evaluate_on_demand(step, entities, &mut rows)?;
        }
        // A value asked once is moved into the answer; only one asked twice is copied.
        let rows = rows
            .iter_mut()
            .map(|row| {
                answer
                    .iter()
                    .map(|&p| {
                        let value = row
                            .get_mut(p)
                            .ok_or_else(|| RequestError::Internal(format!("a row has no value {p}")))?;
                        Ok(if uses[p] == 1 {
                            std::mem::replace(value, FeatureValue::NOT_FOUND)
                        } else {
                            value.clone()
                        })
                    })
                    .collect()
            })
            .collect::<Result<_, RequestError>>()?;
        // Echoed typed, as parsed: the same JSON convention as the values.
        let entities = (0..entities.len()).map(|i| entities.echo(i)).collect();
        Ok(GetOutput {
            features: Arc::clone(features),
            key_names: Arc::clone(key_names),
            served: Arc::clone(served),
            entities,
            rows,
            stats: found.stats,
            at,
            store_seconds,
            reads_tiles: selections.iter().any(|s| s.layout.tiles.is_some()),
        })
    }
}

/// The serving core over one store: [`Compiled`] plus the store handle.
#[derive(Debug)]
pub struct Serving {
    compiled: Compiled,
    store: Arc<dyn OnlineStore>,
    /// The project root (for push sources' files and logs).
    root: std::path::PathBuf,
    /// Where materializations of the store are recorded (pushes consult it on a replay).
    registry: skewless_registry::Registry,
    /// Push sources compiled so far, by name.
    push_targets: std::sync::Mutex<HashMap<String, Arc<crate::push::PushTarget>>>,
    /// The applied version this serves.
    pub applied_seq: u64,
}

impl Serving {
    /// Compiles the applied definitions (the registry is read here, once).
    pub fn new(project: &ProjectDirs, store: Arc<dyn OnlineStore>) -> Result<Self, Error> {
        let record = project.registry().latest()?.ok_or(RequestError::NothingApplied)?;
        Ok(Serving {
            compiled: Compiled::new(record.definitions)?,
            store,
            root: project.root.clone(),
            registry: project.registry(),
            push_targets: std::sync::Mutex::new(HashMap::new()),
            applied_seq: record.seq,
        })
    }

    /// Pushes rows to `source` (see [`crate::push`]); the source is compiled on its first push.
    /// The rows as given are dropped once typed, so a large push does not hold them (and
    /// their batch) while it is logged and written online.
    pub async fn push(
        &self,
        source: &str,
        input: crate::push::PushInput,
        id: Option<String>,
        to: crate::push::PushTo,
        now: i64,
    ) -> Result<crate::push::PushReport, RequestError> {
        let target = self.push_target(source)?;
        target.push_owned(&*self.store, input, id, to, now).await
    }

    fn push_target(&self, source: &str) -> Result<Arc<crate::push::PushTarget>, RequestError> {
        let targets = || {
            self.push_targets
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some(target) = targets().get(source) {
            return Ok(Arc::clone(target));
        }
        let target = Arc::new(
            crate::push::PushTarget::compile(&self.root, &self.compiled.defs, source)?
                .with_registry(self.registry.clone()),
        );
        targets().insert(source.to_string(), Arc::clone(&target));
        Ok(target)
    }

    /// Feast's write of `df` to feature view `view`, taken as a push to the view's source
    /// ([`crate::view_write`]): logged, checked and written online like any push.
    pub async fn write_view(
        &self,
        view: &str,
        df: serde_json::Map<String, serde_json::Value>,
        now: i64,
    ) -> Result<crate::push::PushReport, RequestError> {
        let (source, columns) = crate::view_write::as_push(&self.compiled.defs, view, df)?;
        let id = crate::view_write::push_id(&source, &columns);
        self.push(
            &source,
            crate::push::PushInput::Columns(columns),
            Some(id),
            crate::push::PushTo::OnlineAndOffline,
            now,
        )
        .await
    }

    /// The store this core serves from.
    pub fn store(&self) -> Arc<dyn OnlineStore> {
        Arc::clone(&self.store)
    }

    /// Whether the store answers a read (for readiness checks).
    pub async fn check_store(&self) -> Result<(), RequestError> {
        self.store
            .read(&[skewless_online::layout::INSTANCE_KEY.to_vec()])
            .await
            .map(|_| ())
            .map_err(RequestError::from)
    }

    /// Per online view, the newest event time in the store (materialized or pushed) for the
    /// served version, or `None` when none was written yet: one store read.
    pub async fn freshness(&self) -> Result<Vec<(String, Option<i64>)>, RequestError> {
        let layouts: Vec<&Arc<ViewLayout>> = self.compiled.layouts.values().collect();
        let keys: Vec<Vec<u8>> = layouts.iter().map(|l| l.freshness_key()).collect();
        let values = self.store.read(&keys).await.map_err(RequestError::from)?;
        Ok(layouts
            .iter()
            .zip(values)
            .map(|(l, v)| (l.view.clone(), v.and_then(|v| l.decode_freshness(&v))))
            .collect())
    }

    /// The plan of `selection` (made once per selection, then reused): what its lookups read
    /// and the fields their entities carry.
    pub fn plan(&self, selection: &FeatureSelection) -> Result<Arc<Plan>, RequestError> {
        self.compiled.plan(selection)
    }

    /// Looks `plan`'s features up for `entities` (typed by `plan.fields()`), as of `at` (µs).
    pub async fn get_entities(&self, plan: &Plan, entities: &Entities<'_>, at: i64) -> Result<GetOutput, RequestError> {
        self.compiled.get(&*self.store, plan, entities, at).await
    }

    /// Looks features up for entities given as `name = value` text (a command line, a spine):
    /// join keys, and the request fields of requested on-demand views, as of `at` (µs), by
    /// the one input rule ([`skewless_online::input`]).
    pub async fn get(
        &self,
        selection: &FeatureSelection,
        entities: &[Vec<(String, String)>],
        at: i64,
    ) -> Result<GetOutput, RequestError> {
        let plan = self.plan(selection)?;
        let mut typed = Entities::new(plan.fields(), entities.len());
        for pairs in entities {
            let i = typed.add();
            for (name, value) in pairs {
                typed.set(i, name, Given::Text(value))?;
            }
        }
        self.get_entities(&plan, &typed, at).await
    }
}

/// Evaluates an on-demand step for every entity over the values of its row so far and the
/// entity's request fields, and appends its features to each row. Its values are PRESENT
/// (computed), without an event time; inputs that were not found enter as nulls, as in
/// training sets.
fn evaluate_on_demand(
    step: &OnDemandStep,
    entities: &Entities<'_>,
    rows: &mut [Vec<FeatureValue>],
) -> Result<(), RequestError> {
    let program = &step.program;
    let internal = |e: skewless_online::Error| RequestError::Internal(e.to_string());
    let values = program
        .evaluate_some(rows.len(), &step.wanted, |input| -> Result<ArrayRef, RequestError> {
            let values: Vec<Scalar> = match input {
                OnDemandInput::Request { name, .. } => {
                    let missing = |i: usize| RequestError::MissingRequestField {
                        entity: i + 1,
                        view: program.view.clone(),
                        field: name.clone(),
                    };
                    let slot = match entities.table().find(name) {
                        Some((_, Field::Request { slot, .. })) => Some(slot),
                        _ => None,
                    };
                    (0..entities.len())
                        .map(|i| {
                            slot.and_then(|slot| entities.request(i, slot))
                                .cloned()
                                .ok_or_else(|| missing(i))
                        })
                        .collect::<Result<_, _>>()?
                }
                OnDemandInput::Feature { view, feature, .. } => {
                    let p = step
                        .reads
                        .iter()
                        .find(|(v, f, _)| v == view && f == feature)
                        .map(|&(_, _, p)| p)
                        .ok_or_else(|| RequestError::Internal(format!("`{view}.{feature}` was not looked up")))?;
                    rows.iter()
                        .map(|row| row.get(p).map(|v| v.value.clone()))
                        .collect::<Option<_>>()
                        .ok_or_else(|| RequestError::Internal(format!("a row has no value {p}")))?
                }
            };
            to_array(input.ty(), &values).map_err(internal)
        })
        .map_err(|e| match e {
            EvalError::Input(e) => e,
            EvalError::Engine(e) => RequestError::Internal(format!("on-demand view `{}`: {e}", program.view)),
        })?;
    for (_, array) in values {
        for (i, row) in rows.iter_mut().enumerate() {
            row.push(FeatureValue {
                value: scalar_at(&array, i).map_err(internal)?,
                status: Status::Present,
                event_timestamp: None,
            });
        }
    }
    Ok(())
}

/// Every feature of an on-demand view, as a request for all of them.
fn all_features(view: &skewless_defs::OnDemandView) -> Vec<ResolvedFeature> {
    view.features
        .iter()
        .map(|f| ResolvedFeature {
            view: view.name.clone(),
            feature: f.name.clone(),
            ty: f.ty,
            on_demand: true,
        })
        .collect()
}

/// The answer to a lookup: per entity, one value per requested feature.
#[derive(Debug, Clone)]
pub struct GetOutput {
    pub features: Arc<Vec<ResolvedFeature>>,
    /// The view and service versions this answer was served from.
    pub served: Arc<ServedVersions>,
    /// The join keys of the views read (the other entity fields are request fields).
    pub key_names: Arc<BTreeSet<String>>,
    /// The entities as parsed (join keys and request fields, typed), sorted by name.
    pub entities: Vec<Vec<(String, Scalar)>>,
    pub rows: Vec<Vec<FeatureValue>>,
    pub stats: LookupStats,
    pub at: i64,
    /// How long the store round trip took.
    pub store_seconds: f64,
    /// Whether an aggregated view was read: its tiles hold what is known now, so its values
    /// are right only at a clock at or after every row they hold (see docs/server.md, `at`).
    pub reads_tiles: bool,
}
