//! Rows that break a view's contracts: counted, and kept where a person can read why.
//!
//! Every job that reads a view with contracts (a training set, a materialization) splits its
//! rows by the engine's contract verdict ([`skewless_engine::contracts`]); the breaking rows
//! come here. With `on_violation: quarantine` they were excluded from the candidates, with
//! `null` their breaking features were nulled; either way each is written, with its keys, event
//! time and reason, to `.skewless/quarantine/<view>/<job>-<µs>-<nonce>.parquet`. With `fail`
//! the job stops, naming the first row. Pushes write the same files for their rows.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::DataFrame;
use parquet::arrow::ArrowWriter;
use skewless_defs::{Definitions, FeatureView, OnViolation};

use crate::{Error, Result};

/// The directory of a view's quarantine files.
pub fn quarantine_dir(root: &Path, view: &str) -> PathBuf {
    root.join(".skewless").join("quarantine").join(view)
}

/// What a job did with rows that break contracts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quarantined {
    pub rows: usize,
    /// The file they were written to (none when there were none).
    pub file: Option<PathBuf>,
}

/// Collects `violations` (`[__k.., __ts, __created?, __violation]`, from
/// [`crate::training_set::FeatureFrame`]) and writes them for `job` (`training-set`,
/// `materialize`, `push`). With `on_violation: fail`, any row is an error naming it.
pub async fn record(
    defs: &Definitions,
    root: &Path,
    view: &FeatureView,
    violations: DataFrame,
    job: &str,
    write: bool,
) -> Result<Quarantined> {
    let batches = violations.collect().await?;
    let Some(first) = batches.first() else {
        return Ok(Quarantined::default());
    };
    let batch = concat_batches(&first.schema(), &batches)?;
    write_rows(defs, root, view, &batch, job, write)
}

/// [`record`] for rows already in memory (pushes).
pub fn write_rows(
    defs: &Definitions,
    root: &Path,
    view: &FeatureView,
    batch: &RecordBatch,
    job: &str,
    write: bool,
) -> Result<Quarantined> {
    let rows = batch.num_rows();
    if rows == 0 {
        return Ok(Quarantined::default());
    }
    let keys = defs.view_keys(view);
    let k = keys.len();
    let reasons = batch.column(batch.num_columns() - 1);
    if view.on_violation == OnViolation::Fail {
        let at = |c: usize| arrow::util::display::array_value_to_string(batch.column(c), 0).unwrap_or_default();
        let key_text: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(i, key)| format!("{}={}", key.name, at(i)))
            .collect();
        return Err(Error::View {
            view: view.name.clone(),
            message: format!(
                "{rows} rows break contracts (on_violation: fail); the first: {} at {}: {}",
                key_text.join(","),
                at(k),
                at(batch.num_columns() - 1)
            ),
        });
    }
    if !write {
        return Ok(Quarantined { rows, file: None });
    }
    let action = match view.on_violation {
        OnViolation::Null => "nulled",
        _ => "excluded",
    };
    let mut fields: Vec<Field> = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        fields.push(Field::new(&key.name, batch.column(i).data_type().clone(), true));
        columns.push(Arc::clone(batch.column(i)));
    }
    fields.push(Field::new("event_timestamp", batch.column(k).data_type().clone(), true));
    columns.push(Arc::clone(batch.column(k)));
    if batch.num_columns() == k + 3 {
        fields.push(Field::new("created", batch.column(k + 1).data_type().clone(), true));
        columns.push(Arc::clone(batch.column(k + 1)));
    }
    fields.push(Field::new("view", DataType::Utf8, false));
    columns.push(Arc::new(StringArray::from(vec![view.name.as_str(); rows])));
    fields.push(Field::new("reason", reasons.data_type().clone(), true));
    columns.push(Arc::clone(reasons));
    fields.push(Field::new("action", DataType::Utf8, false));
    columns.push(Arc::new(StringArray::from(vec![action; rows])));
    let out = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;

    let dir = quarantine_dir(root, &view.name);
    let failed = |path: &Path, e: &dyn std::fmt::Display| Error::View {
        view: view.name.clone(),
        message: format!("writing the quarantine file {}: {e}", path.display()),
    };
    std::fs::create_dir_all(&dir).map_err(|e| failed(&dir, &e))?;
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    let nonce = crate::push_log::nonce();
    let file = dir.join(format!("{job}-{micros:016}-{nonce:016x}.parquet"));
    let tmp = dir.join(format!(".tmp-{nonce:016x}"));
    let written = (|| -> std::result::Result<(), Box<dyn std::error::Error>> {
        let mut writer = ArrowWriter::try_new(std::fs::File::create(&tmp)?, out.schema(), None)?;
        writer.write(&out)?;
        writer.close()?;
        std::fs::rename(&tmp, &file)?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(failed(&file, &e));
    }
    Ok(Quarantined { rows, file: Some(file) })
}
