//! Checking a view's source data row by row, to say exactly where a job fails.
//!
//! `validate` plans every expression against the sources' schemas, but some failures exist
//! only in the data: `CAST(tier AS BIGINT)` on `'gold'`, a division by zero, a CSV row past
//! the lines schema inference read, a damaged Parquet page. A DataFusion job that meets one
//! fails with a message that names no view, feature, file or row. This module reads each
//! file on its own and evaluates each feature's compiled expression batch by batch, so a
//! failure is pinned to (source, file, row, view, feature):
//!
//! - `skewless validate --data` runs it over every view before any job does;
//! - training sets and materialization run it when their job fails ([`attributed`]), and
//!   report what it finds instead of the bare engine error.
//!
//! A dependency that panics on a damaged file (a decoder, say) is contained here and in
//! [`attributed`]: the panic becomes that file's error, and the process goes on.

use std::collections::BTreeSet;
use std::fmt;
use std::fs::File;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::DFSchema;
use datafusion::physical_plan::PhysicalExpr;
use datafusion::prelude::SessionContext;
use futures::FutureExt;
use skewless_defs::{Definitions, FeatureView, SourceFormat};
use skewless_engine::compile_view;

use crate::{Error, Result, source};

/// Rows per batch when checking: a failing batch is searched row by row.
const BATCH_ROWS: usize = 8192;

/// One problem in a source's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataProblem {
    pub source: String,
    pub file: PathBuf,
    pub format: SourceFormat,
    /// 0-based data row (a CSV's header is not a row); `None` when the file cannot be read
    /// far enough to tell.
    pub row: Option<usize>,
    /// The view and feature whose expression failed; `None` when the file itself is damaged.
    pub feature: Option<(String, String)>,
    pub message: String,
}

impl fmt::Display for DataProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "source `{}`, {}", self.source, self.file.display())?;
        match (self.row, self.format) {
            // Line numbers count the header, as editors do.
            (Some(row), SourceFormat::Csv) => write!(f, " line {}", row + 2)?,
            (Some(row), SourceFormat::Parquet) => write!(f, " row {row}")?,
            (None, _) => {}
        }
        match &self.feature {
            Some((view, feature)) => write!(f, ": feature `{view}.{feature}`: {}", self.message),
            None => write!(f, ": cannot be read: {}", self.message),
        }
    }
}

/// The text of a panic's payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Runs `f`, turning a panic inside it into an error message.
fn contained<T>(f: impl FnOnce() -> std::result::Result<T, String>) -> std::result::Result<T, String> {
    std::panic::catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|p| Err(format!("the reader panicked: {}", panic_message(&*p))))
}

/// Reads every file of `view`'s source and evaluates `features` (all of the view's when
/// `None`) over every row. Returns the problems: per file, one for a damaged file, else the
/// first failing row of each failing feature.
pub fn check_view(
    ctx: &SessionContext,
    defs: &Definitions,
    root: &Path,
    view: &FeatureView,
    features: Option<&BTreeSet<String>>,
) -> Result<Vec<DataProblem>> {
    let Some(source) = defs.sources.get(&view.source) else {
        return Err(Error::Unknown {
            kind: crate::Kind::Source,
            name: view.source.clone(),
        });
    };
    if source.path.is_none() {
        return Ok(Vec::new());
    }
    let files = source::resolve(root, source)?;
    let schema = source::read_schema(source, &files, &source::key_columns(defs, source))?;
    let compiled = compile_view(view, &schema).map_err(Error::Invalid)?;
    let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
    let mut exprs: Vec<(String, Arc<dyn PhysicalExpr>)> = Vec::new();
    for f in compiled {
        if features.is_none_or(|wanted| wanted.contains(&f.name)) {
            exprs.push((f.name, skewless_engine::physical_expr(ctx, f.expr, &df_schema)?));
        }
    }
    let mut problems = Vec::new();
    // The batch files, then the pushed rows of the source's log (Parquet).
    let log = skewless_push_log::segments(root, &source.name)?;
    let all = files
        .files
        .iter()
        .map(|f| (f, files.format))
        .chain(log.iter().map(|f| (f, SourceFormat::Parquet)));
    for (file, format) in all {
        let problem = |row: Option<usize>, feature: Option<&str>, message: String| DataProblem {
            source: source.name.clone(),
            file: file.clone(),
            format,
            row,
            feature: feature.map(|f| (view.name.clone(), f.to_string())),
            message,
        };
        let mut failed: BTreeSet<String> = BTreeSet::new();
        let mut offset = 0;
        let read = contained(|| {
            for_each_batch(file, format, &schema, &mut |batch| {
                for (name, expr) in &exprs {
                    if failed.contains(name) {
                        continue;
                    }
                    if let Err(message) = evaluate(expr.as_ref(), &batch) {
                        // The first row that fails on its own; no row when none does alone.
                        let (row, message) = (0..batch.num_rows())
                            .find_map(|r| {
                                evaluate(expr.as_ref(), &batch.slice(r, 1))
                                    .err()
                                    .map(|m| (Some(offset + r), m))
                            })
                            .unwrap_or_else(|| {
                                (
                                    None,
                                    format!("{message} (in rows {offset}..{})", offset + batch.num_rows()),
                                )
                            });
                        problems.push(problem(row, Some(name), message));
                        failed.insert(name.clone());
                    }
                }
                offset += batch.num_rows();
            })
        });
        if let Err(message) = read {
            let message = if offset > 0 {
                format!("{message} (after {offset} rows read)")
            } else {
                message
            };
            problems.push(problem(None, None, message));
        }
    }
    Ok(problems)
}

fn evaluate(expr: &dyn PhysicalExpr, batch: &RecordBatch) -> std::result::Result<(), String> {
    contained(|| {
        expr.evaluate(batch)
            .and_then(|v| v.into_array(batch.num_rows()))
            .map(|_| ())
            .map_err(|e| e.strip_backtrace())
    })
}

/// Decodes `file` batch by batch with `schema` (CSV) or its own (Parquet, which
/// [`source::read_schema`] checked is the same).
fn for_each_batch(
    file: &Path,
    format: SourceFormat,
    schema: &SchemaRef,
    each: &mut dyn FnMut(RecordBatch),
) -> std::result::Result<(), String> {
    let f = File::open(file).map_err(|e| e.to_string())?;
    match format {
        SourceFormat::Parquet => {
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
                .and_then(|b| b.with_batch_size(BATCH_ROWS).build())
                .map_err(|e| e.to_string())?;
            for batch in reader {
                each(batch.map_err(|e| e.to_string())?);
            }
        }
        SourceFormat::Csv => {
            let reader = arrow::csv::ReaderBuilder::new(Arc::clone(schema))
                .with_header(true)
                .with_batch_size(BATCH_ROWS)
                .build(f)
                .map_err(|e| e.to_string())?;
            for batch in reader {
                each(batch.map_err(|e| e.to_string())?);
            }
        }
    }
    Ok(())
}

/// Runs a job over `view`'s source. If it fails on the data (an engine error or a panic),
/// the source is checked ([`check_view`]) and the error names view, feature, file and row;
/// if the check finds nothing, the engine's error is kept, prefixed with the view.
pub(crate) async fn attributed<T>(
    ctx: &SessionContext,
    defs: &Definitions,
    root: &Path,
    view: &FeatureView,
    features: Option<&BTreeSet<String>>,
    job: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    let cause = match AssertUnwindSafe(job).catch_unwind().await {
        Ok(Ok(value)) => return Ok(value),
        Ok(Err(e @ (Error::DataFusion(_) | Error::Arrow(_)))) if !is_resources(&e) => e.to_string(),
        Ok(Err(Error::DataFusion(e))) => {
            return Err(Error::View {
                view: view.name.clone(),
                message: e.strip_backtrace(),
            });
        }
        Ok(Err(other)) => return Err(other),
        Err(panic) => format!("the engine panicked: {}", panic_message(&*panic)),
    };
    // A check that cannot run keeps the job's own error.
    let problems = check_view(ctx, defs, root, view, features).unwrap_or_default();
    if problems.is_empty() {
        Err(Error::View {
            view: view.name.clone(),
            message: cause,
        })
    } else {
        Err(Error::Data {
            view: view.name.clone(),
            problems,
        })
    }
}

fn is_resources(e: &Error) -> bool {
    matches!(e, Error::DataFusion(e) if matches!(e.find_root(), datafusion::error::DataFusionError::ResourcesExhausted(_)))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// A dependency that panics mid-job (as a decoder may on a damaged page) is contained:
    /// the job's error names the view and, when the data check pins it, the file.
    #[tokio::test]
    async fn a_panic_inside_a_job_is_that_views_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("data")).expect("data dir");
        std::fs::write(dir.path().join("data/s.csv"), "id,ts,x\n1,2026-01-01T00:00:00Z,1.5\n").expect("csv");
        let yaml = r#"
entities: { e: { keys: { id: int64 } } }
sources: { s: { path: data/s.csv, timestamp: ts } }
feature_views: { v: { entity: e, source: s, features: { x: float64 } } }
"#;
        let defs = skewless_defs::load_texts(&[(PathBuf::from("t.yaml"), yaml.to_string())]).expect("defs");
        let view = &defs.feature_views["v"];
        let ctx = skewless_engine::session();
        let job = async {
            if view.name == "v" {
                panic!("decoder exploded");
            }
            Ok(())
        };
        let e = attributed(&ctx, &defs, dir.path(), view, None, job)
            .await
            .expect_err("a panic is an error");
        assert_eq!(e.to_string(), "feature view `v`: the engine panicked: decoder exploded");

        // A row past the lines schema inference reads that does not decode: named with its file.
        let mut csv = String::from("id,ts,x\n");
        for i in 0..1100 {
            let x = if i == 1050 {
                "oops".to_string()
            } else {
                format!("{i}.5")
            };
            csv.push_str(&format!("{i},2026-01-01T00:00:00Z,{x}\n"));
        }
        std::fs::write(dir.path().join("data/s.csv"), csv).expect("csv");
        let job = async { Err::<(), _>(Error::Arrow(arrow::error::ArrowError::ComputeError("boom".into()))) };
        let text = attributed(&ctx, &defs, dir.path(), view, None, job)
            .await
            .expect_err("error")
            .to_string();
        assert!(
            text.contains("s.csv: cannot be read") && text.contains("oops"),
            "{text}"
        );

        // When the check itself cannot run (the schema is unreadable), the job's error stays.
        std::fs::write(
            dir.path().join("data/s.csv"),
            "id,ts,x\n1,2026-01-01T00:00:00Z,1.5\n2,x,y,z\n",
        )
        .expect("csv");
        let job = async { Err::<(), _>(Error::Arrow(arrow::error::ArrowError::ComputeError("boom".into()))) };
        let text = attributed(&ctx, &defs, dir.path(), view, None, job)
            .await
            .expect_err("error")
            .to_string();
        assert_eq!(text, "feature view `v`: Compute error: boom");
    }
}
