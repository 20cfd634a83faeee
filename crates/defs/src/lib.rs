//! `skewless-defs`: the typed model of `feature_defs/`.
//!
//! Feature authors declare entities, sources, feature views, on-demand views and feature
//! services once, in YAML files anywhere under `feature_defs/`. This crate turns those files
//! into [`Definitions`]: parsed with line and column kept on every node, merged across files,
//! validated with *every* problem reported (with a "did you mean" where a near name exists),
//! and given canonical [version hashes](version) and [plans](plan::plan) of what changed.
//!
//! ```text
//! *.yaml ──yaml──▶ located tree ──parse──▶ per-file model ──validate──▶ Definitions
//!                                                                        ├─ version hashes
//!                                                                        └─ plan (diff, breaking changes)
//! ```
//!
//! It is pure: no DataFusion, no tokio, no network. It reads files and parses SQL with the
//! same parser DataFusion uses; type-checking expressions against source data is the
//! `engine` crate's job.

mod definitions;
mod diagnostic;
mod duration;
pub mod expr;
pub mod instant;
mod model;
mod parse;
pub mod plan;
#[doc(hidden)]
pub mod planted;
mod selection;
mod validate;
pub mod version;
mod yaml;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use definitions::{Definitions, NameClash, ResolvedFeature, Unresolved, UnresolvedRef, output_name_clash};
pub use diagnostic::{Diagnostic, Diagnostics, Loc, did_you_mean};
pub use duration::Duration;
pub use model::*;
pub use parse::is_name;
pub use selection::{
    FeatureSelection, SelectionError, needed_views, on_demand_dependencies, on_demand_reads, resolve_selection,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid definitions:\n{0}")]
    Invalid(Diagnostics),
    #[error("reading definitions at {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("no definition files (*.yaml, *.yml) under {0}")]
    Empty(PathBuf),
    /// A definitions tree discovery will not walk whole (too deep, too many files).
    #[error("reading definitions at {path}: {message}")]
    Discovery { path: PathBuf, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Loads every `*.yaml` / `*.yml` file under `dir` (recursively, in path order; see
/// `collect_yaml` for links and limits).
pub fn load_dir(dir: &Path) -> Result<Definitions> {
    let mut paths = Vec::new();
    collect_yaml(dir, &mut paths)?;
    if paths.is_empty() {
        return Err(Error::Empty(dir.to_path_buf()));
    }
    paths.sort();
    let mut files = Vec::with_capacity(paths.len());
    let mut not_utf8 = Diagnostics::default();
    for path in paths {
        let bytes = std::fs::read(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        match String::from_utf8(bytes) {
            Ok(text) => files.push((path, text)),
            Err(e) => not_utf8.push(utf8_problem(&path, e.as_bytes(), e.utf8_error().valid_up_to())),
        }
    }
    if !not_utf8.is_empty() {
        // Reported with every other file's problems, so one run lists them all.
        return match load_files(&files, Some(dir)) {
            Err(Error::Invalid(mut problems)) => {
                problems.extend(not_utf8);
                Err(Error::Invalid(problems.sorted()))
            }
            Err(other) => Err(other),
            Ok(_) => Err(Error::Invalid(not_utf8)),
        };
    }
    load_files(&files, Some(dir))
}

/// A definitions file that is not UTF-8, located at its first bad byte.
fn utf8_problem(path: &Path, bytes: &[u8], valid_up_to: usize) -> Diagnostic {
    let before = &bytes[..valid_up_to];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    // Valid UTF-8 up to here, so counting chars is safe.
    let column = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
    let file: std::sync::Arc<Path> = std::sync::Arc::from(path);
    Diagnostic::new(
        &Loc::new(&file, line, column),
        format!(
            "the file is not UTF-8 (byte 0x{:02X}); save it as UTF-8",
            bytes.get(valid_up_to).copied().unwrap_or(0)
        ),
    )
}

/// Parses and validates definition texts given as `(path, text)`, the path used in messages.
///
/// ```
/// use std::path::PathBuf;
///
/// let text = r#"
/// entities: { driver: { keys: { driver_id: int64 } } }
/// sources: { stats: { path: data/stats.parquet, timestamp: event_timestamp } }
/// feature_views:
///   driver_stats: { entity: driver, source: stats, ttl: 2h, features: { conv_rate: float32 } }
/// "#;
/// let defs = skewless_defs::load_texts(&[(PathBuf::from("defs.yaml"), text.to_string())]).unwrap();
/// assert_eq!(defs.feature_views["driver_stats"].ttl.map(|t| t.seconds()), Some(7200));
///
/// let typo = text.replace("entity: driver", "entity: drivr");
/// let err = skewless_defs::load_texts(&[(PathBuf::from("defs.yaml"), typo)]).unwrap_err();
/// assert!(err.to_string().contains("defs.yaml:5:27: error: feature view `driver_stats` names unknown entity `drivr` (did you mean `driver`?)"));
/// ```
pub fn load_texts(files: &[(PathBuf, String)]) -> Result<Definitions> {
    load_files(files, None)
}

/// `text_hash` covers each file's path relative to `dir` (so the hash does not depend on
/// where the definitions directory is, or how it was named on the command line) and its text.
fn load_files(files: &[(PathBuf, String)], dir: Option<&Path>) -> Result<Definitions> {
    let mut problems = Diagnostics::default();
    let mut parsed = Vec::new();
    let mut hasher = Sha256::new();
    for (path, text) in files {
        let relative = dir.and_then(|d| path.strip_prefix(d).ok()).unwrap_or(path);
        hasher.update(relative.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update(text.as_bytes());
        hasher.update([0]);
        let (root, yaml_problems) = yaml::parse(path, text);
        problems.extend(yaml_problems);
        if let Some(root) = root {
            parsed.push(parse::file_defs(&root, &mut problems));
        }
    }
    let defs = validate::merge_and_validate(parsed, hex::encode(hasher.finalize()), &mut problems);
    if problems.is_empty() {
        Ok(defs)
    } else {
        Err(Error::Invalid(problems.sorted()))
    }
}

/// How deep discovery walks below the definitions directory, and how many files it takes:
/// far beyond any real project, and a clear error instead of a walk that never ends.
const MAX_DEPTH: usize = 64;
const MAX_FILES: usize = 10_000;

/// Every `*.yaml` / `*.yml` file under `dir`, each once. Links are followed (a definitions
/// tree may link shared files in), but a directory or file reached twice (a link cycle, two
/// links to one place) is taken once, at its first path in name order; a dangling link with a
/// definitions name, an unreadable entry, a tree deeper than [`MAX_DEPTH`] or larger than
/// [`MAX_FILES`] files is an error naming the path.
fn collect_yaml(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    walk(dir, 0, &mut seen, out)
}

fn walk(dir: &Path, depth: usize, seen: &mut std::collections::HashSet<PathBuf>, out: &mut Vec<PathBuf>) -> Result<()> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let real = std::fs::canonicalize(dir).map_err(io(dir))?;
    if !seen.insert(real) {
        return Ok(());
    }
    if depth > MAX_DEPTH {
        return Err(Error::Discovery {
            path: dir.to_path_buf(),
            message: format!("more than {MAX_DEPTH} directory levels below the definitions directory"),
        });
    }
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        entries.push(entry.map_err(io(dir))?.path());
    }
    entries.sort();
    for path in entries {
        let is_yaml = matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
        // Follows links: what the entry is, not what names it.
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            // A dangling link that is not named as a definitions file is not one.
            Err(_) if !is_yaml && path.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) => continue,
            Err(source) => return Err(Error::Io { path, source }),
        };
        if meta.is_dir() {
            walk(&path, depth + 1, seen, out)?;
        } else if is_yaml && meta.is_file() && seen.insert(std::fs::canonicalize(&path).map_err(io(&path))?) {
            out.push(path);
            if out.len() > MAX_FILES {
                return Err(Error::Discovery {
                    path: dir.to_path_buf(),
                    message: format!("more than {MAX_FILES} definition files; point --defs at the definitions alone"),
                });
            }
        }
    }
    Ok(())
}
