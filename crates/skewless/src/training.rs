//! Training sets through the facade: which features (a list or a service), then the offline
//! path's point-in-time join, returned as a batch, a DataFusion `DataFrame`, or a Parquet file.

use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow::array::RecordBatch;
use datafusion::prelude::{DataFrame, SessionContext};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use skewless_defs::{Definitions, FeatureRef, Loc, ResolvedFeature};
pub use skewless_offline::training_set::Progress;
use skewless_offline::training_set::{self, TrainingSetRequest};

use crate::{Error, Project, Result};

/// Which features a training set holds.
#[derive(Debug, Clone)]
pub enum FeatureSelection {
    /// `view:feature` or `view:*` references, in output order.
    Features(Vec<String>),
    /// A feature service's features, in its order.
    Service(String),
}

#[derive(Debug, Clone)]
pub struct TrainingSetOptions {
    pub spine: PathBuf,
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
    pub seconds: f64,
}

impl TrainingSetOutput {
    /// The training set as a DataFusion `DataFrame`, for further queries in Rust.
    pub fn into_dataframe(self, ctx: &SessionContext) -> Result<DataFrame> {
        ctx.read_batch(self.batch).map_err(|e| Error::Offline(e.into()))
    }
}

/// Resolves a selection against the definitions.
pub fn resolve_selection(defs: &Definitions, selection: &FeatureSelection) -> Result<Vec<ResolvedFeature>> {
    let refs: Vec<FeatureRef> = match selection {
        FeatureSelection::Service(name) => {
            let service = defs.feature_services.get(name).ok_or_else(|| {
                let hint = skewless_defs::did_you_mean(name, defs.feature_services.keys().map(String::as_str));
                Error::Request(format!(
                    "unknown feature service `{name}`{}",
                    hint.map(|h| format!(" (did you mean `{h}`?)")).unwrap_or_default()
                ))
            })?;
            service.features.clone()
        }
        FeatureSelection::Features(list) => list
            .iter()
            .map(|text| {
                FeatureRef::parse(text, &Loc::default())
                    .ok_or_else(|| Error::Request(format!("expected `view:feature` or `view:*`, found `{text}`")))
            })
            .collect::<Result<_>>()?,
    };
    if refs.is_empty() {
        return Err(Error::Request("no features requested".into()));
    }
    defs.resolve(&refs).map_err(Error::Request)
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
        let built = training_set::build(ctx, defs, &self.root, &request, progress).await?;
        Ok(TrainingSetOutput {
            batch: built.batch,
            features,
            rows_read: built.rows_read,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
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
