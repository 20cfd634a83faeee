//! Rows that break a view's contracts: counted, and kept where a person can read why.
//!
//! Every job that reads a view with contracts (a training set, a materialization) splits its
//! rows by the engine's contract verdict ([`skewless_engine::contracts`]); the breaking rows
//! come here. With `on_violation: quarantine` they were excluded from the candidates, with
//! `null` their breaking features were nulled; either way each is written, with its keys, event
//! time and reason, to `.skewless/quarantine/<view>/<job>-<µs>-<nonce>.parquet`. With `fail`
//! the job stops, naming the first row.
//!
//! Pushes are many and small, so a file per push would bury the directory under a stream that
//! keeps breaking a contract: they append the same columns, one JSON object per line, to one
//! file per view and UTC day, `push-<YYYY-MM-DD>.jsonl` ([`append_rows`]). The pushed rows
//! themselves are in the push log either way; the quarantine says which broke what and why.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
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

/// Writes breaking rows `[keys.., ts, created?, reason]` for `job` (`training-set`,
/// `materialize`) to a new Parquet file of the view's quarantine. With `on_violation: fail`,
/// any row is an error naming it; with `write` false they are only counted.
pub fn write_rows(
    defs: &Definitions,
    root: &Path,
    view: &FeatureView,
    batch: &RecordBatch,
    job: &str,
    write: bool,
) -> Result<Quarantined> {
    let rows = batch.num_rows();
    let Some(out) = quarantine_batch(defs, view, batch)? else {
        return Ok(Quarantined::default());
    };
    if !write {
        return Ok(Quarantined { rows, file: None });
    }
    let dir = quarantine_dir(root, &view.name);
    let failed = |path: &Path, e: &dyn std::fmt::Display| Error::Quarantine {
        view: view.name.clone(),
        message: format!("writing the quarantine file {}: {e}", path.display()),
    };
    std::fs::create_dir_all(&dir).map_err(|e| failed(&dir, &e))?;
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    let nonce = skewless_push_log::nonce();
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

/// Appends a push's breaking rows (as for [`write_rows`]) to the view's file of the UTC day
/// of `now` (µs), one JSON object per row and line, in one write under a process-wide lock
/// (the server's threads share the file; `O_APPEND` keeps other processes' lines whole).
pub fn append_rows(
    defs: &Definitions,
    root: &Path,
    view: &FeatureView,
    batch: &RecordBatch,
    now: i64,
) -> Result<Quarantined> {
    static APPENDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let rows = batch.num_rows();
    let Some(out) = quarantine_batch(defs, view, batch)? else {
        return Ok(Quarantined::default());
    };
    let day = chrono::DateTime::from_timestamp_micros(now)
        .map_or_else(|| "unknown-day".to_string(), |t| t.format("%Y-%m-%d").to_string());
    let dir = quarantine_dir(root, &view.name);
    let file = dir.join(format!("push-{day}.jsonl"));
    let failed = |e: &dyn std::fmt::Display| Error::Quarantine {
        view: view.name.clone(),
        message: format!("appending to the quarantine file {}: {e}", file.display()),
    };
    let mut text = String::new();
    for row in 0..out.num_rows() {
        let mut object = serde_json::Map::new();
        for (field, column) in out.schema().fields().iter().zip(out.columns()) {
            object.insert(field.name().clone(), json_value(column, row));
        }
        object.insert(
            "quarantined_at".into(),
            serde_json::Value::String(rfc3339(now).unwrap_or_default()),
        );
        text.push_str(&serde_json::Value::Object(object).to_string());
        text.push('\n');
    }
    std::fs::create_dir_all(&dir).map_err(|e| failed(&e))?;
    let _one_writer = APPENDING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut handle = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&file)
        .map_err(|e| failed(&e))?;
    std::io::Write::write_all(&mut handle, text.as_bytes()).map_err(|e| failed(&e))?;
    Ok(Quarantined { rows, file: Some(file) })
}

/// The quarantine columns of breaking rows `[keys.., ts, created?, reason]`: keys, event
/// time, created, view, reason and action. `None` when there are none; with
/// `on_violation: fail`, an error naming the first.
fn quarantine_batch(defs: &Definitions, view: &FeatureView, batch: &RecordBatch) -> Result<Option<RecordBatch>> {
    let rows = batch.num_rows();
    if rows == 0 {
        return Ok(None);
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
        return Err(Error::Quarantine {
            view: view.name.clone(),
            message: format!(
                "{rows} rows break contracts (on_violation: fail); the first: {} at {}: {}",
                key_text.join(","),
                at(k),
                at(batch.num_columns() - 1)
            ),
        });
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
    Ok(Some(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?))
}

/// RFC 3339 in UTC with µs, as the CLI prints instants.
fn rfc3339(micros: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_micros(micros).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

/// One quarantine cell as JSON: numbers and strings as themselves, instants in RFC 3339,
/// floats that JSON cannot hold (NaN, ±inf) as their names, the rest as Arrow prints them.
fn json_value(column: &ArrayRef, row: usize) -> serde_json::Value {
    use arrow::array::{AsArray, types};
    use serde_json::Value;
    if column.is_null(row) {
        return Value::Null;
    }
    let shown = || Value::String(arrow::util::display::array_value_to_string(column, row).unwrap_or_default());
    match column.data_type() {
        DataType::Int64 => Value::from(column.as_primitive::<types::Int64Type>().value(row)),
        DataType::Int32 => Value::from(column.as_primitive::<types::Int32Type>().value(row)),
        DataType::Float64 => {
            let x = column.as_primitive::<types::Float64Type>().value(row);
            serde_json::Number::from_f64(x).map_or_else(shown, Value::Number)
        }
        DataType::Boolean => Value::Bool(column.as_boolean().value(row)),
        DataType::Utf8 => Value::String(column.as_string::<i32>().value(row).to_string()),
        DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, _) => {
            let micros = column.as_primitive::<types::TimestampMicrosecondType>().value(row);
            rfc3339(micros).map_or_else(shown, Value::String)
        }
        _ => shown(),
    }
}
