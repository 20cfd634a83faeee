//! Run manifests: everything needed to say whether a training set can be reproduced.
//!
//! A manifest is written beside each training set (`<out>.manifest.json`). It records the
//! request, the skewless version, the definitions' text hash and every used view's version,
//! a fingerprint (size, modification time, SHA-256) of each source file and of the spine,
//! the semantics options, row counts, the output's SHA-256 and the wall time.
//! [`Project::reproduce`] re-runs the request and, when the output differs, names the inputs
//! that changed: definitions, a source file, the spine.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use skewless_defs::version::versions;
use skewless_offline::source;
use skewless_profile::Profile;

use crate::training::{FeatureSelection, Spine, TrainingSetOptions, TrainingSetOutput};
use crate::{Error, Project, Result};

pub const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub path: PathBuf,
    pub bytes: u64,
    pub modified: Option<DateTime<Utc>>,
    pub sha256: String,
}

/// The request as given, with paths made absolute so `reproduce` works from anywhere.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub defs_dir: PathBuf,
    pub repo_dir: PathBuf,
    pub spine: PathBuf,
    pub features: Option<Vec<String>>,
    pub service: Option<String>,
    pub timestamp_column: String,
    pub full_names: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub manifest_version: u32,
    pub skewless_version: String,
    pub created_at: DateTime<Utc>,
    /// What the run read, fingerprinted before it read it.
    #[serde(flatten)]
    pub inputs: Inputs,
    /// The point-in-time rules this run applied (DESIGN.md), spelled out.
    pub semantics: BTreeMap<String, String>,
    pub rows: Rows,
    pub output: Fingerprint,
    pub wall_seconds: f64,
    /// Views whose definitions on disk differed from the applied ones when this was built.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skew_warnings: Vec<String>,
    /// The applied registry version this was built to match (every view it uses as applied
    /// then), or `"unapplied"`: built from definitions that were not what was served.
    #[serde(default, skip_serializing_if = "AppliedVersion::is_unrecorded")]
    pub applied_version: AppliedVersion,
    /// What each feature's values looked like in the output, by `view:feature`: the
    /// reference drift is measured against. Empty when not profiled (`--no-profile`, or a
    /// manifest written before profiles).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub profiles: BTreeMap<String, Profile>,
}

/// What a manifest says of the applied registry version it was built against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AppliedVersion {
    /// A manifest written before this was recorded.
    #[default]
    Unrecorded,
    /// Built from definitions that differed from the applied ones (or with nothing applied).
    Unapplied,
    /// Every view it uses was as in this applied version.
    Version(u64),
}

impl AppliedVersion {
    fn is_unrecorded(&self) -> bool {
        *self == AppliedVersion::Unrecorded
    }
}

impl Serialize for AppliedVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            AppliedVersion::Version(seq) => s.serialize_u64(*seq),
            AppliedVersion::Unapplied | AppliedVersion::Unrecorded => s.serialize_str("unapplied"),
        }
    }
}

impl<'de> Deserialize<'de> for AppliedVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Text {
            Seq(u64),
            Word(String),
        }
        match Text::deserialize(d)? {
            Text::Seq(seq) => Ok(AppliedVersion::Version(seq)),
            Text::Word(word) if word == "unapplied" => Ok(AppliedVersion::Unapplied),
            Text::Word(word) => Err(serde::de::Error::custom(format!(
                "applied_version: expected a version number or `unapplied`, found `{word}`"
            ))),
        }
    }
}

/// How a training manifest compares with what is served now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ManifestCheck {
    /// The applied version now (`None`: nothing applied).
    pub applied_now: Option<u64>,
    /// Each view, on-demand view or service whose served version differs from the manifest's,
    /// said plainly: any one means the model would be served other features than it learned.
    pub differences: Vec<String>,
    /// The registry moved on without changing anything this training set uses.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rows {
    pub spine: usize,
    pub output: usize,
    /// Feature rows each view read after pruning to the spine's time range.
    pub feature_rows_read: BTreeMap<String, usize>,
    /// Of those, the rows that broke the view's contracts (excluded, or nulled with
    /// `on_violation: null`), by view; only views with contracts appear.
    #[serde(default)]
    pub rows_breaking_contracts: BTreeMap<String, usize>,
}

/// Writes a built training set to `out` (Parquet or CSV by extension) and returns its
/// manifest: the inputs captured before the build, its rows, the output's fingerprint and,
/// when `profile`, each feature's profile (computed while the rows are written).
pub fn record(inputs: Inputs, built: &TrainingSetOutput, out: &Path, profile: bool) -> Result<Manifest> {
    let (written, profiles) = std::thread::scope(|scope| {
        let profiling = profile.then(|| scope.spawn(|| profiles(built)));
        let written = crate::training::write_output(&built.batch, out);
        (written, profiling.map(|p| p.join()))
    });
    written?;
    let profiles = match profiles {
        Some(Ok(profiles)) => profiles,
        Some(Err(_)) => return Err(Error::Internal("profiling the training set's features panicked".into())),
        None => BTreeMap::new(),
    };
    Ok(assemble(inputs, built, fingerprint(out)?, profiles))
}

/// Each feature's profile (by `view:feature`) over its column of the output.
pub fn profiles(built: &TrainingSetOutput) -> BTreeMap<String, Profile> {
    let schema = built.batch.schema();
    let columns: Vec<(String, arrow::array::ArrayRef)> = built
        .features
        .iter()
        .filter_map(|f| {
            // Full names or short ones: a name never repeats a spine column (that is an error).
            let index = schema
                .index_of(&format!("{}__{}", f.view, f.feature))
                .or_else(|_| schema.index_of(&f.feature))
                .ok()?;
            Some((format!("{}:{}", f.view, f.feature), built.batch.column(index).clone()))
        })
        .collect();
    skewless_profile::profile_columns(&columns)
}

/// The manifest of a training set built in memory and not written yet (Python's
/// `TrainingSet.manifest` before `save`): what [`record`] would write, with `output` `null`,
/// since only a written file has a fingerprint.
pub fn unwritten(inputs: Inputs, built: &TrainingSetOutput) -> Result<serde_json::Value> {
    let nothing_yet = Fingerprint {
        path: PathBuf::new(),
        bytes: 0,
        modified: None,
        sha256: String::new(),
    };
    let manifest = assemble(inputs, built, nothing_yet, profiles(built));
    let mut manifest = serde_json::to_value(manifest).map_err(|e| Error::Internal(e.to_string()))?;
    manifest["output"] = serde_json::Value::Null;
    Ok(manifest)
}

fn assemble(
    inputs: Inputs,
    built: &TrainingSetOutput,
    output: Fingerprint,
    profiles: BTreeMap<String, Profile>,
) -> Manifest {
    Manifest {
        manifest_version: MANIFEST_VERSION,
        skewless_version: crate::VERSION.to_string(),
        created_at: Utc::now(),
        inputs,
        semantics: semantics(),
        rows: Rows {
            spine: built.batch.num_rows(),
            output: built.batch.num_rows(),
            feature_rows_read: built.rows_read.clone(),
            rows_breaking_contracts: built.broke_contracts.iter().map(|(v, q)| (v.clone(), q.rows)).collect(),
        },
        output,
        wall_seconds: built.seconds,
        skew_warnings: built.skew_warnings.clone(),
        applied_version: built
            .applied_version
            .map_or(AppliedVersion::Unapplied, AppliedVersion::Version),
        profiles,
    }
}

/// Where a training set's manifest goes.
pub fn manifest_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".manifest.json");
    out.with_file_name(name)
}

/// Size, modification time and SHA-256 of a file.
pub fn fingerprint(path: &Path) -> Result<Fingerprint> {
    let err = |e: std::io::Error| Error::Manifest {
        path: path.to_path_buf(),
        problem: ManifestProblem::Fingerprint(e.to_string()),
    };
    let meta = std::fs::metadata(path).map_err(err)?;
    let mut file = std::fs::File::open(path).map_err(err)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).map_err(err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(Fingerprint {
        path: absolute(path),
        bytes: meta.len(),
        modified: meta.modified().ok().map(DateTime::<Utc>::from),
        sha256: hex::encode(hasher.finalize()),
    })
}

/// The spine's fingerprint: its file's, or for rows given in memory (a DataFrame) the
/// SHA-256 of their Arrow IPC stream, under their label, with no modification time.
fn spine_fingerprint(spine: &Spine) -> Result<Fingerprint> {
    let (label, batch) = match spine {
        Spine::File(path) => return fingerprint(path),
        Spine::Rows { label, batch } => (label, batch),
    };
    let err = |e: arrow::error::ArrowError| Error::Manifest {
        path: label.clone(),
        problem: ManifestProblem::Fingerprint(e.to_string()),
    };
    let mut bytes = Vec::new();
    let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut bytes, &batch.schema()).map_err(err)?;
    writer.write(batch).map_err(err)?;
    writer.finish().map_err(err)?;
    drop(writer);
    Ok(Fingerprint {
        path: label.clone(),
        bytes: bytes.len() as u64,
        modified: None,
        sha256: hex::encode(Sha256::digest(&bytes)),
    })
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn semantics() -> BTreeMap<String, String> {
    [
        ("candidates", "key matches, event_timestamp <= t, event_timestamp >= t - ttl (inclusive; no ttl: no lower bound)"),
        ("as_of_available", "candidates also need created <= t; rows without created never qualify"),
        ("winner", "greatest (event_timestamp, created); created null is oldest; exact ties: greatest feature values in Arrow row order"),
        ("time", "UTC instants, microseconds; naive timestamps are UTC"),
        ("no_candidate", "null features; spine rows are never dropped, duplicated or reordered"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The inputs of a run, fingerprinted *before* it reads them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Inputs {
    pub request: RecordedRequest,
    pub project: String,
    /// SHA-256 of the definition files' paths (relative to the definitions directory) and text.
    pub definitions_text_hash: String,
    /// Version hash of every view read (feature views and on-demand views, transitively).
    pub view_versions: BTreeMap<String, String>,
    pub service_version: Option<String>,
    /// Fingerprints of each source's files, by source name.
    pub sources: BTreeMap<String, Vec<Fingerprint>>,
    pub spine: Fingerprint,
}

impl Project {
    /// Fingerprints what a training-set request will read: definitions, the files of every
    /// source it joins, the spine.
    pub fn capture_inputs(&self, options: &TrainingSetOptions) -> Result<Inputs> {
        self.capture_inputs_from(&self.load()?, options)
    }

    /// [`Project::capture_inputs`] with definitions already loaded and validated.
    fn capture_inputs_from(&self, defs: &skewless_defs::Definitions, options: &TrainingSetOptions) -> Result<Inputs> {
        let features = crate::training::resolve_selection(defs, &options.selection)?;
        let (feature_views, on_demand) = skewless_defs::needed_views(defs, &features);
        let all = versions(defs);
        let mut view_versions = BTreeMap::new();
        let mut sources = BTreeMap::new();
        let mut remembered = crate::fingerprints::Remembered::open(&self.repo_dir);
        for name in &feature_views {
            let Some(view) = defs.feature_views.get(name) else {
                continue;
            };
            view_versions.insert(name.clone(), all.feature_views[name].clone());
            if let Some(s) = defs.sources.get(&view.source)
                && !sources.contains_key(&s.name)
            {
                let files = source::resolve(&self.root, s)?;
                let prints = files
                    .files
                    .iter()
                    .map(|f| remembered.fingerprint(f))
                    .collect::<Result<Vec<_>>>()?;
                sources.insert(s.name.clone(), prints);
            }
        }
        for name in &on_demand {
            if let Some(v) = all.on_demand_views.get(name) {
                view_versions.insert(name.clone(), v.clone());
            }
        }
        remembered.save();
        let (features, service) = match &options.selection {
            FeatureSelection::Features(list) => (Some(list.clone()), None),
            FeatureSelection::Service(name) => (None, Some(name.clone())),
        };
        Ok(Inputs {
            service_version: service.as_ref().and_then(|s| all.feature_services.get(s).cloned()),
            request: RecordedRequest {
                defs_dir: absolute(&self.defs_dir),
                repo_dir: absolute(&self.repo_dir),
                spine: match &options.spine {
                    Spine::File(path) => absolute(path),
                    Spine::Rows { label, .. } => label.clone(),
                },
                features,
                service,
                timestamp_column: options.timestamp_column.clone(),
                full_names: options.full_names,
            },
            project: defs.project.clone(),
            definitions_text_hash: defs.text_hash.clone(),
            view_versions,
            sources,
            spine: spine_fingerprint(&options.spine)?,
        })
    }

    /// Builds a training set, writes it to `out` and returns its manifest (inputs are
    /// fingerprinted before the build reads them; features profiled when `profile`).
    pub async fn training_set_recorded(
        &self,
        ctx: &datafusion::prelude::SessionContext,
        options: &TrainingSetOptions,
        out: &Path,
        profile: bool,
        progress: &dyn Fn(crate::training::Progress),
    ) -> Result<(TrainingSetOutput, Manifest)> {
        // One load serves both: the fingerprints and the build read the same definitions.
        let defs = self.load()?;
        crate::training::check_output(&defs, &self.root, &options.spine, out)?;
        let (built, inputs) = self.training_set_captured_from(ctx, &defs, options, progress).await?;
        let manifest = record(inputs, &built, out, profile)?;
        Ok((built, manifest))
    }

    /// Builds a training set and returns it with its inputs, fingerprinted before the build
    /// read them: what [`record`] turns into a manifest when the rows are written.
    pub async fn training_set_captured(
        &self,
        ctx: &datafusion::prelude::SessionContext,
        options: &TrainingSetOptions,
        progress: &dyn Fn(crate::training::Progress),
    ) -> Result<(TrainingSetOutput, Inputs)> {
        let defs = self.load()?;
        self.training_set_captured_from(ctx, &defs, options, progress).await
    }

    async fn training_set_captured_from(
        &self,
        ctx: &datafusion::prelude::SessionContext,
        defs: &skewless_defs::Definitions,
        options: &TrainingSetOptions,
        progress: &dyn Fn(crate::training::Progress),
    ) -> Result<(TrainingSetOutput, Inputs)> {
        let inputs = self.capture_inputs_from(defs, options)?;
        let built = self.training_set_from(ctx, defs, options, progress).await?;
        Ok((built, inputs))
    }

    /// Compares a training manifest with what is served now (the latest applied version): the
    /// version of every feature view and on-demand view it used, its service's, and the
    /// registry version. This is the gate between a model and the features it is served.
    pub fn check_manifest(&self, manifest: &Manifest) -> Result<ManifestCheck> {
        let mut check = ManifestCheck::default();
        let Some(applied) = self.registry().latest()? else {
            check
                .differences
                .push("nothing is applied: no online store serves this model's features".into());
            return Ok(check);
        };
        check.applied_now = Some(applied.seq);
        if manifest.inputs.project != applied.definitions.project {
            check.differences.push(format!(
                "the manifest is of project `{}`, but `{}` is applied here",
                manifest.inputs.project, applied.definitions.project
            ));
        }
        let served = &applied.versions;
        // One comparison for views, on-demand views and the service: what it was trained on
        // against what is served now.
        let seq = applied.seq;
        let mut compare = |what: String, trained: &String, now: Option<&String>| match now {
            Some(now) if now == trained => {}
            Some(now) => check.differences.push(format!(
                "{what}: trained on version {trained}, served version {now} (applied version {seq})"
            )),
            None => check.differences.push(format!(
                "{what}: trained on version {trained}, not served in applied version {seq}"
            )),
        };
        for (name, trained) in &manifest.inputs.view_versions {
            let (kind, now) = match (served.feature_views.get(name), served.on_demand_views.get(name)) {
                (Some(v), _) => ("feature view", Some(v)),
                (None, Some(v)) => ("on-demand view", Some(v)),
                (None, None) => ("view", None),
            };
            compare(format!("{kind} `{name}`"), trained, now);
        }
        if let (Some(service), Some(trained)) = (&manifest.inputs.request.service, &manifest.inputs.service_version) {
            compare(
                format!("feature service `{service}`"),
                trained,
                served.feature_services.get(service),
            );
        }
        match manifest.applied_version {
            AppliedVersion::Unapplied => check
                .differences
                .push("the training set was built from unapplied definitions (its manifest says `unapplied`)".into()),
            AppliedVersion::Version(seq) if seq != applied.seq && check.differences.is_empty() => {
                check.notes.push(format!(
                    "the registry moved from version {seq} to {}, but nothing this training set uses changed",
                    applied.seq
                ));
            }
            AppliedVersion::Version(_) => {}
            AppliedVersion::Unrecorded => check
                .notes
                .push("the manifest predates recording the applied version; views and service compared".into()),
        }
        Ok(check)
    }
}

/// Writes a manifest as pretty JSON.
pub fn write_manifest(manifest: &Manifest, path: &Path) -> Result<()> {
    let text = serde_json::to_string_pretty(manifest).map_err(|e| Error::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    std::fs::write(path, text).map_err(|e| Error::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

pub fn read_manifest(path: &Path) -> Result<Manifest> {
    let refuse = |problem: ManifestProblem| Error::Manifest {
        path: path.to_path_buf(),
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| refuse(ManifestProblem::Unreadable(e.to_string())))?;
    let manifest: Manifest =
        serde_json::from_str(&text).map_err(|e| refuse(ManifestProblem::NotAManifest(e.to_string())))?;
    if manifest.manifest_version != MANIFEST_VERSION {
        return Err(refuse(ManifestProblem::Version(manifest.manifest_version)));
    }
    Ok(manifest)
}

/// Why a manifest (or a file it fingerprints) cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestProblem {
    /// A file to fingerprint cannot be read.
    Fingerprint(String),
    /// The manifest cannot be read.
    Unreadable(String),
    /// The file is not JSON of a manifest.
    NotAManifest(String),
    /// A manifest of another manifest version.
    Version(u32),
}

/// The message of an [`Error::Manifest`].
pub(crate) fn manifest_problem(path: &Path, problem: &ManifestProblem) -> String {
    let path = path.display();
    match problem {
        ManifestProblem::Fingerprint(e) => format!("fingerprinting {path}: {e}"),
        ManifestProblem::Unreadable(e) => format!("reading manifest {path}: {e}"),
        ManifestProblem::NotAManifest(e) => format!("manifest {path} is not a skewless manifest: {e}"),
        ManifestProblem::Version(found) => format!(
            "manifest {path} has manifest_version {found}; this skewless ({}) reads version {MANIFEST_VERSION}",
            crate::VERSION
        ),
    }
}

/// The outcome of re-running a manifest's request.
#[derive(Debug, Clone, Serialize)]
pub struct ReproduceReport {
    pub output_matches: bool,
    pub recorded_sha256: String,
    pub reproduced_sha256: String,
    /// What differs from the recorded run, one line each; empty when nothing does.
    pub changed_inputs: Vec<String>,
    /// Why the re-run failed, if it did (the changed inputs usually say why).
    pub error: Option<String>,
}

/// The first 12 characters of a hash, for messages (whole if shorter: manifests are files
/// people can edit).
pub fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// Compares the recorded inputs with what is on disk now.
pub fn changed_inputs(manifest: &Manifest, now: &Inputs) -> Vec<String> {
    let mut out = Vec::new();
    if manifest.skewless_version != crate::VERSION {
        out.push(format!(
            "skewless version {} → {}",
            manifest.skewless_version,
            crate::VERSION
        ));
    }
    if manifest.inputs.definitions_text_hash != now.definitions_text_hash {
        out.push("definitions: the text of feature_defs changed".to_string());
    }
    for (view, old) in &manifest.inputs.view_versions {
        match now.view_versions.get(view) {
            Some(new) if new != old => out.push(format!("definition: view `{view}` version {old} → {new}")),
            None => out.push(format!("definition: view `{view}` is no longer read")),
            _ => {}
        }
    }
    for (name, old_files) in &manifest.inputs.sources {
        let new_files: std::collections::HashMap<&Path, &Fingerprint> = now
            .sources
            .get(name)
            .map(|files| files.iter().map(|f| (f.path.as_path(), f)).collect())
            .unwrap_or_default();
        let old_paths: std::collections::HashSet<&Path> = old_files.iter().map(|f| f.path.as_path()).collect();
        for f in old_files {
            match new_files.get(f.path.as_path()) {
                None => out.push(format!("source `{name}`: file {} is gone", f.path.display())),
                Some(n) if n.sha256 != f.sha256 => out.push(format!(
                    "source `{name}`: file {} changed (sha256 {}… → {}…)",
                    f.path.display(),
                    short(&f.sha256),
                    short(&n.sha256)
                )),
                Some(_) => {}
            }
        }
        let mut added: Vec<&&Path> = new_files.keys().filter(|p| !old_paths.contains(**p)).collect();
        added.sort();
        for path in added {
            out.push(format!("source `{name}`: new file {}", path.display()));
        }
    }
    if manifest.inputs.spine.sha256 != now.spine.sha256 {
        out.push(format!("spine {} changed", manifest.inputs.spine.path.display()));
    }
    out
}

impl RecordedRequest {
    pub fn project(&self) -> Project {
        Project::new(&self.defs_dir, &self.repo_dir)
    }

    pub fn options(&self) -> TrainingSetOptions {
        TrainingSetOptions {
            spine: self.spine.clone().into(),
            selection: match (&self.service, &self.features) {
                (Some(service), _) => FeatureSelection::Service(service.clone()),
                (None, features) => FeatureSelection::Features(features.clone().unwrap_or_default()),
            },
            timestamp_column: self.timestamp_column.clone(),
            full_names: self.full_names,
        }
    }
}
