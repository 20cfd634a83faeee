//! Sources on disk: which files a source's `path` names, their format, and their schema.
//!
//! A path is a file, a directory (read recursively, skipping hidden and `_`-prefixed files
//! such as `_SUCCESS`), or a glob, resolved against the project root. Files are listed in
//! path order so every run reads them the same way. The schema is read from Parquet footers
//! and CSV headers without reading the data; CSV time columns are typed as timestamps
//! because that is what the source declares them to be.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::csv::reader::Format;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use skewless_defs::{Definitions, KeyType, Source, SourceFormat};

use crate::{Error, Result};

/// The files behind a source, in path order, and their format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFiles {
    pub format: SourceFormat,
    pub files: Vec<PathBuf>,
}

/// The type CSV time columns are read as: UTC instants with microsecond precision.
pub fn csv_time_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// Lists the files a source reads.
pub fn resolve(root: &Path, source: &Source) -> Result<SourceFiles> {
    let Some(path) = &source.path else {
        return Err(Error::PushOnly {
            source_name: source.name.clone(),
        });
    };
    let full = root.join(path);
    let mut files = Vec::new();
    if full.is_dir() {
        collect_dir(&full, &mut files).map_err(|e| read_error(source, &full, e))?;
    } else if path.contains(['*', '?', '[']) {
        let pattern = full.to_string_lossy().into_owned();
        let entries = glob::glob(&pattern).map_err(|e| Error::BadGlob {
            source_name: source.name.clone(),
            path: path.clone(),
            message: e.msg.to_string(),
        })?;
        files.extend(
            entries
                .filter_map(std::result::Result::ok)
                .filter(|p| p.is_file() && !is_hidden(p)),
        );
    } else if full.is_file() {
        files.push(full);
    }
    if files.is_empty() {
        return Err(Error::NoFiles {
            source_name: source.name.clone(),
            path: path.clone(),
        });
    }
    files.sort();
    let format = match source.format {
        Some(f) => f,
        None => {
            let first = &files[0];
            let format =
                SourceFormat::from_extension(&first.to_string_lossy()).ok_or_else(|| Error::UnknownFormat {
                    source_name: source.name.clone(),
                    file: first.clone(),
                })?;
            if let Some(other) = files
                .iter()
                .find(|f| SourceFormat::from_extension(&f.to_string_lossy()) != Some(format))
            {
                return Err(Error::UnknownFormat {
                    source_name: source.name.clone(),
                    file: other.clone(),
                });
            }
            format
        }
    };
    Ok(SourceFiles { format, files })
}

/// Whether a file at `file` (existing or not, absolute) would be read by `source`: it is the
/// source's file, lies under its directory, or matches its glob.
pub fn covers(root: &Path, source: &Source, file: &Path) -> bool {
    let Some(path) = &source.path else {
        return false;
    };
    let full = root.join(path);
    let full = full.canonicalize().unwrap_or(full);
    if full.is_dir() {
        file.starts_with(&full)
    } else if path.contains(['*', '?', '[']) {
        glob::Pattern::new(&full.to_string_lossy()).is_ok_and(|p| p.matches_path(file))
    } else {
        file == full
    }
}

fn collect_dir(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if is_hidden(&path) {
            continue;
        }
        if path.is_dir() {
            collect_dir(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Marker and temporary files (`_SUCCESS`, `.part-0.crc`) are not data.
fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(['.', '_']))
}

fn read_error(source: &Source, file: &Path, e: impl std::fmt::Display) -> Error {
    Error::Read {
        source_name: source.name.clone(),
        file: file.to_path_buf(),
        message: e.to_string(),
    }
}

/// The Arrow type join keys are compared in, on both sides of every join.
pub fn key_arrow_type(ty: KeyType) -> DataType {
    match ty {
        KeyType::Int64 => DataType::Int64,
        KeyType::String => DataType::Utf8,
    }
}

/// The join keys of every view that reads `source`, typed as their entities declare:
/// CSV files must read them so (`007` is a string key, not the number 7).
pub fn key_columns(defs: &Definitions, source: &Source) -> Vec<(String, DataType)> {
    let mut out: Vec<(String, DataType)> = Vec::new();
    for view in defs.feature_views.values().filter(|v| v.source == source.name) {
        for key in defs.view_keys(view) {
            if !out.iter().any(|(name, _)| name == &key.name) {
                out.push((key.name.clone(), key_arrow_type(key.ty)));
            }
        }
    }
    out
}

/// Reads the schema every file of the source shares. `key_columns` (see [`key_columns`])
/// fix the types of CSV key columns; Parquet files carry their own types.
pub fn read_schema(source: &Source, files: &SourceFiles, key_columns: &[(String, DataType)]) -> Result<SchemaRef> {
    let mut first: Option<(SchemaRef, &PathBuf)> = None;
    for file in &files.files {
        let schema = match files.format {
            SourceFormat::Parquet => parquet_schema(file),
            SourceFormat::Csv => csv_schema(file, source, key_columns),
        }
        .map_err(|e| read_error(source, file, e))?;
        match &first {
            None => first = Some((schema, file)),
            Some((expected, first_file)) => {
                if !same_columns(expected, &schema) {
                    return Err(Error::SchemaMismatch {
                        source_name: source.name.clone(),
                        file: file.clone(),
                        first: (*first_file).clone(),
                        found: describe(&schema),
                        expected: describe(expected),
                    });
                }
            }
        }
    }
    first.map(|(s, _)| s).ok_or_else(|| Error::NoFiles {
        source_name: source.name.clone(),
        path: source.path.clone().unwrap_or_default(),
    })
}

fn parquet_schema(file: &Path) -> std::result::Result<SchemaRef, String> {
    let f = File::open(file).map_err(|e| e.to_string())?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| e.to_string())?;
    Ok(Arc::clone(builder.schema()))
}

fn csv_schema(
    file: &Path,
    source: &Source,
    key_columns: &[(String, DataType)],
) -> std::result::Result<SchemaRef, String> {
    let mut types: Vec<(&str, DataType)> = key_columns.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
    types.push((source.timestamp.as_str(), csv_time_type()));
    types.extend(source.created.as_deref().map(|c| (c, csv_time_type())));
    csv_schema_with_types(file, &types)
}

/// A CSV file's schema, inferred from its header and first rows, except for the named
/// columns, which get the given types (time columns: [`csv_time_type`], so values with an
/// offset are converted to the same UTC instant).
pub fn csv_schema_with_types(file: &Path, types: &[(&str, DataType)]) -> std::result::Result<SchemaRef, String> {
    let f = File::open(file).map_err(|e| e.to_string())?;
    let (schema, _) = Format::default()
        .with_header(true)
        .infer_schema(f, Some(1000))
        .map_err(|e| e.to_string())?;
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|field| match types.iter().find(|(name, _)| name == field.name()) {
            Some((_, ty)) => Field::new(field.name(), ty.clone(), field.is_nullable()),
            None => field.as_ref().clone(),
        })
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}

fn same_columns(a: &Schema, b: &Schema) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields()
            .iter()
            .zip(b.fields().iter())
            .all(|(x, y)| x.name() == y.name() && x.data_type() == y.data_type())
}

fn describe(schema: &Schema) -> String {
    let cols: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect();
    format!("({})", cols.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use skewless_defs::Loc;

    fn source(path: &str) -> Source {
        Source {
            name: "s".into(),
            path: Some(path.into()),
            format: SourceFormat::from_extension(path),
            timestamp: "ts".into(),
            created: None,
            push: false,
            description: None,
            loc: Loc::default(),
            path_loc: Loc::default(),
        }
    }

    #[test]
    fn resolves_files_dirs_and_globs_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("d/part=1")).unwrap();
        for f in ["d/b.csv", "d/a.csv", "d/part=1/c.csv", "d/_SUCCESS", "d/.hidden.csv"] {
            std::fs::write(root.join(f), "ts,x\n2024-01-01T00:00:00Z,1\n").unwrap();
        }
        let names = |s: SourceFiles| {
            s.files
                .iter()
                .map(|f| f.strip_prefix(root).unwrap().display().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(resolve(root, &source("d")).unwrap()),
            ["d/a.csv", "d/b.csv", "d/part=1/c.csv"]
        );
        assert_eq!(
            names(resolve(root, &source("d/*.csv")).unwrap()),
            ["d/a.csv", "d/b.csv"]
        );
        assert_eq!(resolve(root, &source("d/a.csv")).unwrap().format, SourceFormat::Csv);
        let missing = resolve(root, &source("nope/*.parquet")).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "source `s`: path `nope/*.parquet` matches no files"
        );
    }

    #[test]
    fn csv_time_columns_are_typed_as_utc_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.csv"), "id,ts,x\n1,2024-01-01T00:00:00+02:00,1.5\n").unwrap();
        let s = source("a.csv");
        let schema = read_schema(&s, &resolve(dir.path(), &s).unwrap(), &[]).unwrap();
        assert_eq!(schema.field_with_name("ts").unwrap().data_type(), &csv_time_type());
        assert_eq!(schema.field_with_name("x").unwrap().data_type(), &DataType::Float64);
    }

    #[test]
    fn files_with_different_columns_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.csv"), "ts,x\n2024-01-01T00:00:00Z,1\n").unwrap();
        std::fs::write(dir.path().join("b.csv"), "ts,y\n2024-01-01T00:00:00Z,1\n").unwrap();
        let s = source("*.csv");
        let err = read_schema(&s, &resolve(dir.path(), &s).unwrap(), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("b.csv has columns (ts: Timestamp(µs, \"UTC\"), y: Int64)"),
            "{err}"
        );
    }
}
