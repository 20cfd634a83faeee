//! Training sets through the facade: which features (a list or a service), then the offline
//! path's point-in-time join, returned as an Arrow batch, or written as Parquet or CSV.

use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use skewless_defs::{Definitions, ResolvedFeature};
use skewless_offline::training_set::{self, TrainingSetRequest};
pub use skewless_offline::training_set::{Progress, Spine};

use crate::{Error, Project, Result};

pub use skewless_defs::FeatureSelection;

#[derive(Debug, Clone)]
pub struct TrainingSetOptions {
    /// A file (the CLI's `--spine`) or rows in memory (a Python DataFrame, Feast's upload).
    pub spine: Spine,
    pub selection: FeatureSelection,
    pub timestamp_column: String,
    pub full_names: bool,
}

/// A built training set and what it took.
#[derive(Debug, Clone)]
pub struct TrainingSetOutput {
    pub batch: RecordBatch,
    pub features: Vec<ResolvedFeature>,
    pub rows_read: std::collections::BTreeMap<String, usize>,
    /// Rows that broke a view's contracts, by view (only views with contracts), each written
    /// to the quarantine file named here.
    pub broke_contracts: std::collections::BTreeMap<String, skewless_offline::quarantine::Quarantined>,
    pub seconds: f64,
    /// Where the definitions this was built from differ from the applied ones (what
    /// `materialize` and `get` serve): each such view, said plainly. Empty when they agree.
    pub skew_warnings: Vec<String>,
    /// The applied registry version whose views (and on-demand views) this training set
    /// matches; `None` when built from unapplied definitions (see `skew_warnings`).
    pub applied_version: Option<u64>,
}

/// Resolves a selection against the definitions ([`skewless_defs::resolve_selection`]).
pub fn resolve_selection(defs: &Definitions, selection: &FeatureSelection) -> Result<Vec<ResolvedFeature>> {
    skewless_defs::resolve_selection(defs, selection).map_err(Error::Selection)
}

impl Project {
    /// Builds a point-in-time-correct training set for the spine.
    pub async fn training_set(&self, ctx: &SessionContext, options: &TrainingSetOptions) -> Result<TrainingSetOutput> {
        self.training_set_with_progress(ctx, options, &|_| {}).await
    }

    /// [`Project::training_set`], reporting progress as it goes.
    pub async fn training_set_with_progress(
        &self,
        ctx: &SessionContext,
        options: &TrainingSetOptions,
        progress: &dyn Fn(Progress),
    ) -> Result<TrainingSetOutput> {
        let defs = self.load()?;
        self.training_set_from(ctx, &defs, options, progress).await
    }

    /// Builds a training set and writes it to `out` (see [`write_output`]), without a manifest.
    pub async fn training_set_written(
        &self,
        ctx: &SessionContext,
        options: &TrainingSetOptions,
        out: &Path,
        progress: &dyn Fn(Progress),
    ) -> Result<TrainingSetOutput> {
        let defs = self.load()?;
        check_output(&defs, &self.root, &options.spine, out)?;
        let built = self.training_set_from(ctx, &defs, options, progress).await?;
        write_output(&built.batch, out)?;
        Ok(built)
    }

    /// Builds a training set from definitions already loaded and validated.
    pub(crate) async fn training_set_from(
        &self,
        ctx: &SessionContext,
        defs: &Definitions,
        options: &TrainingSetOptions,
        progress: &dyn Fn(Progress),
    ) -> Result<TrainingSetOutput> {
        let started = Instant::now();
        let features = resolve_selection(defs, &options.selection)?;
        let request = TrainingSetRequest {
            spine: options.spine.clone(),
            timestamp_column: options.timestamp_column.clone(),
            features: features.clone(),
            full_names: options.full_names,
        };
        let (skew_warnings, applied_version) = self.skew_against_applied(defs, &features)?;
        let built = training_set::build(ctx, defs, &self.root, &request, progress).await?;
        Ok(TrainingSetOutput {
            batch: built.batch,
            features,
            rows_read: built.rows_read,
            broke_contracts: built.quarantined,
            seconds: started.elapsed().as_secs_f64(),
            skew_warnings,
            applied_version,
        })
    }

    /// Training sets read the definitions on disk; serving reads the applied ones. Where the
    /// views a training set uses differ between the two, its values are not what is served.
    /// Returns the warnings, and the applied version when there are none.
    fn skew_against_applied(
        &self,
        defs: &Definitions,
        features: &[ResolvedFeature],
    ) -> Result<(Vec<String>, Option<u64>)> {
        let applied = match self.registry().latest() {
            Ok(applied) => applied,
            Err(e) => {
                return Ok((
                    vec![format!("the applied definitions cannot be read to compare: {e}")],
                    None,
                ));
            }
        };
        let Some(applied) = applied else {
            return Ok((
                vec!["nothing is applied yet: no online store serves these definitions (run `skewless apply`)".into()],
                None,
            ));
        };
        let disk = skewless_defs::version::versions(defs);
        let (views, on_demand) = skewless_defs::needed_views(defs, features);
        let mut warnings = Vec::new();
        let pairs = views
            .iter()
            .map(|v| ("feature view", v, &disk.feature_views, &applied.versions.feature_views))
            .chain(on_demand.iter().map(|v| {
                (
                    "on-demand view",
                    v,
                    &disk.on_demand_views,
                    &applied.versions.on_demand_views,
                )
            }));
        for (kind, name, disk, applied_versions) in pairs {
            let here = disk.get(name).map(String::as_str).unwrap_or("?");
            match applied_versions.get(name) {
                Some(served) if served == here => {}
                Some(served) => warnings.push(format!(
                    "{kind} `{name}` on disk (version {here}) differs from applied version {} ({served}): this training set is not what is served; review with `skewless plan`, then `skewless apply`",
                    applied.seq
                )),
                None => warnings.push(format!(
                    "{kind} `{name}` is not in applied version {}: nothing serves it; `skewless apply` it",
                    applied.seq
                )),
            }
        }
        let matches = warnings.is_empty().then_some(applied.seq);
        Ok((warnings, matches))
    }
}

/// Refuses an output path that would destroy an input or be misread: the spine file or a
/// source file (the output would overwrite what it is built from), or an extension other
/// than `.parquet` or `.csv` (the bytes would not be what the name says).
pub fn check_output(defs: &Definitions, root: &Path, spine: &Spine, out: &Path) -> Result<()> {
    let refuse = |problem: OutputProblem| Error::Output {
        path: out.to_path_buf(),
        problem,
    };
    OutputFormat::of(out).ok_or_else(|| refuse(OutputProblem::Extension))?;
    let same = |a: &Path, b: &Path| match (canonical(a), canonical(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    };
    if let Spine::File(spine) = spine
        && same(out, spine)
    {
        return Err(refuse(OutputProblem::IsSpine));
    }
    let Some(absolute) = canonical(out) else {
        return Ok(());
    };
    if let Some(source) = defs
        .sources
        .values()
        .find(|s| skewless_offline::source::covers(root, s, &absolute))
    {
        return Err(refuse(OutputProblem::ReadBySource(source.name.clone())));
    }
    Ok(())
}

/// Why a training set's output path is refused ([`check_output`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputProblem {
    #[error("name the file *.parquet or *.csv")]
    Extension,
    #[error("is the spine; the training set would overwrite its own input")]
    IsSpine,
    #[error("is read by source `{0}`; the training set would become its feature data")]
    ReadBySource(String),
}

/// A path made absolute with its directory's symlinks resolved, whether or not the file exists.
fn canonical(path: &Path) -> Option<PathBuf> {
    if let Ok(p) = path.canonicalize() {
        return Some(p);
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.canonicalize().ok()?,
        _ => std::env::current_dir().ok()?,
    };
    Some(parent.join(path.file_name()?))
}

/// What an output file is written as, by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Parquet,
    Csv,
}

impl OutputFormat {
    pub fn of(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "parquet" => Some(OutputFormat::Parquet),
            "csv" => Some(OutputFormat::Csv),
            _ => None,
        }
    }
}

/// Writes a training set as its path's extension says (see [`check_output`]): Parquet (ZSTD),
/// or CSV with a header and RFC 3339 timestamps. It goes to a temporary file that is renamed
/// into place, so a failure never leaves a half-written file under the name.
pub fn write_output(batch: &RecordBatch, path: &Path) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| Error::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let format = OutputFormat::of(path).ok_or_else(|| err(&"name the file *.parquet or *.csv"))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| err(&e))?;
    }
    // Hidden (a leading dot), so no directory or glob source ever reads it.
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(path.file_name().unwrap_or_default());
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = match format {
        OutputFormat::Parquet => write_parquet(batch, &tmp),
        OutputFormat::Csv => write_csv(batch, &tmp),
    };
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path).map_err(|e| err(&e))) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

fn write_csv(batch: &RecordBatch, path: &Path) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| Error::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let file = std::fs::File::create(path).map_err(|e| err(&e))?;
    let mut writer = arrow::csv::WriterBuilder::new().with_header(true).build(file);
    writer.write(batch).map_err(|e| err(&e))
}

/// Writes a batch as one Parquet file (ZSTD), readable by pandas, polars and pyarrow as is.
pub fn write_parquet(batch: &RecordBatch, path: &Path) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| Error::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| err(&e))?;
    }
    let file = std::fs::File::create(path).map_err(|e| err(&e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(Default::default()))
        .build();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(|e| err(&e))?;
    writer.write(batch).map_err(|e| err(&e))?;
    writer.close().map_err(|e| err(&e))?;
    Ok(())
}
