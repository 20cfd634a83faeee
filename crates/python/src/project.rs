//! `Project` (one skewless project: definitions, registry, online store) and `TrainingSet`
//! (a built training set, held in Rust until Python takes its Arrow arrays).

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::record_batch::{RecordBatchIterator, RecordBatchReader};
use arrow_pyarrow::{IntoPyArrow, PyArrowType};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use skewless::Project;
use skewless::manifest::{Inputs, manifest_path, write_manifest};
use skewless::offline::training_set::inferred_time_column;
use skewless::online::MaterializeOptions;
use skewless::training::{FeatureSelection, Spine, TrainingSetOptions, TrainingSetOutput};

use crate::errors::to_py;
use crate::work;

/// What a Python caller's training set is named by in errors when it is not a file.
const ROWS_LABEL: &str = "entity_df";

#[pyclass(name = "Project", module = "skewless._skewless", frozen)]
pub(crate) struct PyProject {
    project: Project,
    /// The online store URL (`None`: the embedded store in the repository).
    online: Option<String>,
}

#[pyclass(name = "TrainingSet", module = "skewless._skewless", frozen)]
pub(crate) struct PyTrainingSet {
    built: TrainingSetOutput,
    inputs: Inputs,
}

fn selection(features: Option<Vec<String>>, service: Option<String>) -> PyResult<FeatureSelection> {
    match (features, service) {
        (Some(features), None) => Ok(FeatureSelection::Features(features)),
        (None, Some(service)) => Ok(FeatureSelection::Service(service)),
        (Some(_), Some(_)) => Err(PyValueError::new_err("give `features` or `service`, not both")),
        (None, None) => Err(PyValueError::new_err(
            "give `features` (a list of `view:feature`) or `service`",
        )),
    }
}

/// A spine: a path, or anything with `__arrow_c_stream__` (read whole, without a copy of
/// its buffers).
fn spine(value: &Bound<'_, PyAny>) -> PyResult<Spine> {
    if let Ok(path) = value.extract::<PathBuf>() {
        return Ok(Spine::File(path));
    }
    let reader = PyArrowType::<arrow::ffi_stream::ArrowArrayStreamReader>::extract(value.as_borrowed())
        .map_err(|e| {
            PyTypeError::new_err(format!(
                "entity_df: expected a path or Arrow data (`__arrow_c_stream__`), got {}: {e}",
                value.get_type().name().map(|n| n.to_string()).unwrap_or_default()
            ))
        })?
        .0;
    let schema = reader.schema();
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PyValueError::new_err(format!("entity_df: reading its Arrow stream: {e}")))?;
    let batch = arrow::compute::concat_batches(&schema, &batches)
        .map_err(|e| PyValueError::new_err(format!("entity_df: {e}")))?;
    Ok(Spine::Rows {
        label: ROWS_LABEL.into(),
        batch,
    })
}

/// The spine's time column: the one named; `event_timestamp` for a file; Feast's rule for rows.
fn time_column(py: Python<'_>, named: Option<String>, spine: &Spine) -> PyResult<String> {
    match (named, spine) {
        (Some(column), _) => Ok(column),
        (None, Spine::File(_)) => Ok("event_timestamp".into()),
        (None, Spine::Rows { batch, .. }) => inferred_time_column(&batch.schema()).map_err(|times| {
            crate::errors::spine_error(
                py,
                &format!(
                    "entity_df needs a column `event_timestamp`, or exactly one timestamp column (or name it \
                     with timestamp_column=); it has {}",
                    if times.is_empty() {
                        "none".to_string()
                    } else {
                        times.join(", ")
                    }
                ),
            )
        }),
    }
}

/// JSON text of a report, for the Python side to load.
fn json<T: serde::Serialize>(value: &T) -> PyResult<String> {
    serde_json::to_string(value).map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))
}

#[pymethods]
impl PyProject {
    #[new]
    #[pyo3(signature = (defs, repo, online=None))]
    fn new(defs: PathBuf, repo: PathBuf, online: Option<String>) -> Self {
        PyProject {
            project: Project::new(defs, repo),
            online,
        }
    }

    /// Builds a point-in-time-correct training set (the CLI's `training-set`).
    /// `timestamp_column`: `None` is `event_timestamp` for a file, Feast's rule for rows.
    /// `progress`: called with each progress line (else they go to logging).
    #[pyo3(signature = (spine, features=None, service=None, full_names=false, timestamp_column=None, memory_limit=None, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn training_set(
        &self,
        py: Python<'_>,
        spine: &Bound<'_, PyAny>,
        features: Option<Vec<String>>,
        service: Option<String>,
        full_names: bool,
        timestamp_column: Option<String>,
        memory_limit: Option<usize>,
        progress: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyTrainingSet> {
        let spine = self::spine(spine)?;
        let timestamp_column = time_column(py, timestamp_column, &spine)?;
        let options = TrainingSetOptions {
            spine,
            selection: selection(features, service)?,
            timestamp_column,
            full_names,
        };
        let project = self.project.clone();
        let built = work::run_reporting(py, progress, move |progress| async move {
            let ctx = match memory_limit {
                Some(bytes) => skewless::engine_session_with_memory_limit(bytes)
                    .map_err(|e| skewless::Error::Internal(format!("a session limited to {bytes} bytes: {e}")))?,
                None => skewless::engine_session(),
            };
            let say = |p: skewless::training::Progress| progress.say(p.to_string());
            project.training_set_captured(&ctx, &options, &say).await
        })?;
        let (built, inputs) = built.map_err(|e| to_py(py, &e))?;
        Ok(PyTrainingSet { built, inputs })
    }

    /// Looks features up through the serving core, as `skewless get` and the server do.
    /// `entities`: one dict per entity (join keys and request fields). Returns JSON text.
    #[pyo3(signature = (entities, features=None, service=None, at=None))]
    fn online_features(
        &self,
        py: Python<'_>,
        entities: Vec<Vec<(String, Bound<'_, PyAny>)>>,
        features: Option<Vec<String>>,
        service: Option<String>,
        at: Option<String>,
    ) -> PyResult<String> {
        let selection = selection(features, service)?;
        let entities = given(&entities)?;
        let at = skewless::online::parse_instant(at.as_deref().unwrap_or("now"))
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let project = self.project.clone();
        let online = self.online.clone();
        let found = work::run(py, move |_| async move {
            let store = open_store(&project, online.as_deref()).await?;
            let serving = skewless::serving::Serving::new(&project.dirs(), store).map_err(skewless::Error::from)?;
            let plan = serving.plan(&selection).map_err(skewless::Error::from)?;
            let mut typed = skewless::serving_entities::Entities::new(plan.fields(), entities.len());
            for pairs in &entities {
                let i = typed.add();
                for (name, value) in pairs {
                    typed.set(i, name, value.as_given()).map_err(skewless::Error::from)?;
                }
            }
            let found = serving
                .get_entities(&plan, &typed, at)
                .await
                .map_err(skewless::Error::from)?;
            Ok::<_, skewless::Error>(skewless::online::lookup_json(&found))
        })?
        .map_err(|e| to_py(py, &e))?;
        json(&found)
    }

    /// Pushes Arrow rows to a push source (the CLI's `push`, the server's `POST /v1/push`).
    #[pyo3(signature = (source, rows, to="online_and_offline"))]
    fn push(&self, py: Python<'_>, source: String, rows: &Bound<'_, PyAny>, to: &str) -> PyResult<String> {
        let to = match to {
            // Online is always logged offline too: a value only online would be skew.
            "online_and_offline" | "online" => skewless::push::PushTo::OnlineAndOffline,
            "offline" => skewless::push::PushTo::Offline,
            other => {
                return Err(PyValueError::new_err(format!(
                    "to: expected \"online_and_offline\", \"online\" or \"offline\", found {other:?}"
                )));
            }
        };
        let batches = match spine(rows)? {
            Spine::Rows { batch, .. } => vec![batch],
            Spine::File(path) => {
                return Err(PyTypeError::new_err(format!(
                    "push takes rows (a DataFrame or Arrow data), not a path ({}): read it first",
                    path.display()
                )));
            }
        };
        let project = self.project.clone();
        let online = self.online.clone();
        let report = work::run(py, move |_| async move {
            let store = open_store(&project, online.as_deref()).await?;
            let now = skewless::online::parse_instant("now").map_err(|e| skewless::Error::Internal(e.to_string()))?;
            let input = skewless::push::PushInput::Batches(batches);
            project.push(&*store, &source, &input, None, to, now).await
        })?
        .map_err(|e| to_py(py, &e))?;
        json(&report)
    }

    /// Materializes views into the online store (`materialize` / `materialize-incremental`).
    #[pyo3(signature = (end, start=None, views=None, incremental=false, progress=None))]
    fn materialize(
        &self,
        py: Python<'_>,
        end: String,
        start: Option<String>,
        views: Option<Vec<String>>,
        incremental: bool,
        progress: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let instant = |t: &str| skewless::online::parse_instant(t).map_err(|e| PyValueError::new_err(e.to_string()));
        let options = MaterializeOptions {
            start: start.as_deref().map(instant).transpose()?,
            end: instant(&end)?,
            incremental,
            views: views.unwrap_or_default(),
        };
        let project = self.project.clone();
        let online = self.online.clone();
        let reports = work::run_reporting(py, progress, move |progress| async move {
            let store = open_store(&project, online.as_deref()).await?;
            let say = |event: skewless::online::MaterializeProgress| {
                if let skewless::online::MaterializeProgress::Done(r) = &event {
                    progress.say(format!("materialized `{}`: {} keys written", r.view, r.keys_written));
                }
            };
            project.materialize(&*store, &options, &say).await
        })?
        .map_err(|e| to_py(py, &e))?;
        json(&reports)
    }

    /// The parity harness (`skewless parity`): the training-set path against the serving
    /// path for the spine's entities at each instant. Returns the report as JSON text.
    /// `spine`: a path or Arrow rows, as for `training_set`.
    #[pyo3(signature = (spine, features=None, service=None, at=None, sample=None, seed=0, timestamp_column=None, against_store=false))]
    #[allow(clippy::too_many_arguments)]
    fn parity(
        &self,
        py: Python<'_>,
        spine: &Bound<'_, PyAny>,
        features: Option<Vec<String>>,
        service: Option<String>,
        at: Option<Vec<String>>,
        sample: Option<usize>,
        seed: u64,
        timestamp_column: Option<String>,
        against_store: bool,
    ) -> PyResult<String> {
        let spine = self::spine(spine)?;
        let timestamp_column = time_column(py, timestamp_column, &spine)?;
        let selection = selection(features, service)?;
        let at = at
            .unwrap_or_default()
            .iter()
            .map(|t| skewless::online::parse_instant(t).map_err(|e| PyValueError::new_err(e.to_string())))
            .collect::<PyResult<Vec<_>>>()?;
        let project = self.project.clone();
        let online = self.online.clone();
        let report = work::run(py, move |_| async move {
            let store = match against_store {
                true => Some(open_store(&project, online.as_deref()).await?),
                false => None,
            };
            let options = skewless::parity::ParityOptions {
                spine,
                selection,
                timestamp_column,
                at,
                sample,
                seed,
                store,
                planted: None,
            };
            project.parity(&skewless::engine_session(), &options).await
        })?
        .map_err(|e| to_py(py, &e))?;
        json(&report)
    }

    /// `apply`: records the definitions as the applied version. Returns JSON text.
    #[pyo3(signature = (allow_breaking=false))]
    fn apply(&self, py: Python<'_>, allow_breaking: bool) -> PyResult<String> {
        let outcome = self.project.apply(allow_breaking, None).map_err(|e| to_py(py, &e))?;
        json(&outcome.to_json())
    }

    /// `plan`: what `apply` would change. Returns JSON text.
    fn plan(&self, py: Python<'_>) -> PyResult<String> {
        let report = self.project.plan().map_err(|e| to_py(py, &e))?;
        json(&report.to_json())
    }

    /// `list KIND` over the definitions on disk. Returns JSON text.
    fn list(&self, py: Python<'_>, kind: &str) -> PyResult<String> {
        let defs = self.project.load().map_err(|e| to_py(py, &e))?;
        match kind {
            "entities" => json(&skewless::listing::entities(&defs)),
            "sources" => json(&skewless::listing::sources(&defs)),
            "views" => json(&skewless::listing::views(&defs)),
            "features" => json(&skewless::listing::features(&defs)),
            "services" => json(&skewless::listing::services(&defs)),
            other => Err(PyValueError::new_err(format!(
                "expected entities, sources, views, features or services, found {other:?}"
            ))),
        }
    }

    /// `check --manifest`: a training manifest against what is served now. Returns JSON text.
    fn check_manifest(&self, py: Python<'_>, path: PathBuf) -> PyResult<String> {
        let manifest = skewless::manifest::read_manifest(&path).map_err(|e| to_py(py, &e))?;
        let check = self.project.check_manifest(&manifest).map_err(|e| to_py(py, &e))?;
        json(&check)
    }
}

async fn open_store(
    project: &Project,
    url: Option<&str>,
) -> Result<Arc<dyn skewless::online_store::OnlineStore>, skewless::Error> {
    let config = match url {
        Some(url) => skewless::online_store::StoreConfig::parse(url)?,
        None => skewless::online_store::StoreConfig::default_for(&project.repo_dir),
    };
    Ok(skewless::online_store::open(&config).await?)
}

/// An entity field's value, as Python gave it.
enum GivenValue {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    Null,
    Other,
}

impl GivenValue {
    fn as_given(&self) -> skewless::online_store::input::Given<'_> {
        use skewless::online_store::input::{Given, GivenKind};
        match self {
            GivenValue::Int(i) => Given::Int(*i),
            GivenValue::Float(f) => Given::Float(*f),
            GivenValue::Str(s) => Given::Str(s),
            GivenValue::Bool(b) => Given::Bool(*b),
            GivenValue::Null => Given::Null,
            GivenValue::Other => Given::Nested(GivenKind::Object),
        }
    }
}

fn given(entities: &[Vec<(String, Bound<'_, PyAny>)>]) -> PyResult<Vec<Vec<(String, GivenValue)>>> {
    entities
        .iter()
        .map(|pairs| {
            pairs
                .iter()
                .map(|(name, value)| {
                    let v = if value.is_none() {
                        GivenValue::Null
                    } else if let Ok(b) = value.cast::<pyo3::types::PyBool>() {
                        GivenValue::Bool(b.is_true())
                    } else if let Ok(i) = value.extract::<i64>() {
                        GivenValue::Int(i)
                    } else if let Ok(f) = value.cast::<pyo3::types::PyFloat>() {
                        GivenValue::Float(f.value())
                    } else if let Ok(s) = value.extract::<String>() {
                        GivenValue::Str(s)
                    } else {
                        GivenValue::Other
                    };
                    Ok((name.clone(), v))
                })
                .collect()
        })
        .collect()
}

#[pymethods]
impl PyTrainingSet {
    /// The rows as a `pyarrow.RecordBatchReader` over the built arrays (no copy).
    fn reader<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let batch: RecordBatch = self.built.batch.clone();
        let schema = batch.schema();
        let reader: Box<dyn RecordBatchReader + Send> = Box::new(RecordBatchIterator::new([Ok(batch)], schema));
        reader.into_pyarrow(py)
    }

    /// What the build read and found: JSON text.
    fn info(&self) -> PyResult<String> {
        let b = &self.built;
        json(&serde_json::json!({
            "rows": b.batch.num_rows(),
            "features": b.features.iter().map(|f| format!("{}:{}", f.view, f.feature)).collect::<Vec<_>>(),
            "feature_rows_read": b.rows_read,
            "rows_breaking_contracts": b.broke_contracts.iter().map(|(v, q)| (v.clone(), q.rows)).collect::<std::collections::BTreeMap<_, _>>(),
            "seconds": b.seconds,
            "skew_warnings": b.skew_warnings,
            "applied_version": b.applied_version,
        }))
    }

    /// The manifest this training set will have once saved, `output` `null`: JSON text.
    fn unwritten_manifest(&self, py: Python<'_>) -> PyResult<String> {
        let manifest = skewless::manifest::unwritten(self.inputs.clone(), &self.built).map_err(|e| to_py(py, &e))?;
        json(&manifest)
    }

    /// Writes the rows (Parquet or CSV by extension) and `<path>.manifest.json`, exactly as
    /// `skewless training-set` does. Returns the manifest's JSON text.
    #[pyo3(signature = (path, manifest=true))]
    fn save(&self, py: Python<'_>, path: PathBuf, manifest: bool) -> PyResult<String> {
        let recorded =
            skewless::manifest::record(self.inputs.clone(), &self.built, &path, true).map_err(|e| to_py(py, &e))?;
        if manifest {
            write_manifest(&recorded, &manifest_path(&path)).map_err(|e| to_py(py, &e))?;
        }
        json(&recorded)
    }
}
