//! A project: definitions on disk, the data they name, and the local registry.

use std::path::PathBuf;

use skewless_defs::plan::{Plan, plan};
use skewless_defs::{Definitions, Diagnostic, Diagnostics};
use skewless_engine::SourceSchemas;
use skewless_offline::source;

use crate::{Error, Result};
use skewless_registry::{AppliedRecord, Registry};

#[derive(Debug, Clone)]
pub struct Project {
    /// Where source paths are resolved: the parent of the definitions directory.
    pub root: PathBuf,
    pub defs_dir: PathBuf,
    pub repo_dir: PathBuf,
}

/// What `plan` found: the changes, against which applied version.
#[derive(Debug)]
pub struct PlanReport {
    pub definitions: Definitions,
    pub plan: Plan,
    pub applied_seq: Option<u64>,
}

#[derive(Debug)]
pub enum ApplyOutcome {
    /// The files say what the registry already holds.
    UpToDate {
        seq: u64,
    },
    Applied(Box<AppliedRecord>),
}

impl PlanReport {
    /// The document `skewless plan --json` prints.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "applied_seq": self.applied_seq, "changes": self.plan.changes })
    }
}

impl ApplyOutcome {
    /// The document `skewless apply --json` prints.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            ApplyOutcome::UpToDate { seq } => serde_json::json!({ "applied_seq": seq, "changed": false }),
            ApplyOutcome::Applied(record) => {
                serde_json::json!({ "applied_seq": record.seq, "changed": true, "changes": record.changes.changes })
            }
        }
    }
}

impl Project {
    pub fn new(defs_dir: impl Into<PathBuf>, repo_dir: impl Into<PathBuf>) -> Self {
        let defs_dir = defs_dir.into();
        // Absolute first, so `--defs .` has a parent (`..`) like any other directory.
        let absolute = std::path::absolute(&defs_dir).unwrap_or_else(|_| defs_dir.clone());
        let root = absolute.parent().map_or_else(|| PathBuf::from("/"), PathBuf::from);
        Project {
            root,
            defs_dir,
            repo_dir: repo_dir.into(),
        }
    }

    /// The directories the serving core reads ([`skewless_serving::Serving::new`]).
    pub fn dirs(&self) -> skewless_serving::ProjectDirs {
        skewless_serving::ProjectDirs {
            root: self.root.clone(),
            repo_dir: self.repo_dir.clone(),
        }
    }

    pub fn registry(&self) -> Registry {
        Registry::open(&self.repo_dir)
    }

    /// Loads and fully validates the definitions: syntax, references and, once those hold,
    /// every check that needs the sources' schemas (columns, key and expression types).
    pub fn load(&self) -> Result<Definitions> {
        let defs = skewless_defs::load_dir(&self.defs_dir).map_err(|e| match e {
            skewless_defs::Error::Invalid(d) => Error::Invalid(d),
            other => Error::Defs(other),
        })?;
        let (schemas, mut problems) = self.source_schemas(&defs);
        problems.extend(skewless_engine::check(&defs, &schemas));
        if problems.is_empty() {
            Ok(defs)
        } else {
            Err(Error::Invalid(problems.sorted()))
        }
    }

    /// Schemas of the sources that have files; a source that cannot be read is a problem
    /// located at its `path`.
    pub fn source_schemas(&self, defs: &Definitions) -> (SourceSchemas, Diagnostics) {
        let mut schemas = SourceSchemas::new();
        let mut problems = Diagnostics::default();
        for s in defs.sources.values().filter(|s| s.path.is_some()) {
            match source::resolve(&self.root, s)
                .and_then(|files| source::read_schema(s, &files, &source::key_columns(defs, s)))
            {
                Ok(schema) => {
                    schemas.insert(s.name.clone(), schema);
                }
                Err(e) => problems.push(Diagnostic::new(&s.path_loc, e.to_string())),
            }
        }
        (schemas, problems)
    }

    /// Reads every row of every source and evaluates every feature over it: the failures
    /// that exist only in the data (a cast of `'gold'` to an integer, a division by zero,
    /// a bad CSV row past the inferred lines, a damaged file), each pinned to source, file,
    /// row, view and feature. `skewless validate --data`.
    pub fn check_data(&self, defs: &Definitions) -> Result<Vec<skewless_offline::check::DataProblem>> {
        let ctx = skewless_engine::session();
        let mut problems = Vec::new();
        for view in defs.feature_views.values() {
            problems.extend(skewless_offline::check::check_view(&ctx, defs, &self.root, view, None)?);
        }
        Ok(problems)
    }

    pub fn plan(&self) -> Result<PlanReport> {
        let definitions = self.load()?;
        let applied = self.registry().latest()?;
        let plan = plan(applied.as_ref().map(|r| &r.definitions), &definitions);
        Ok(PlanReport {
            definitions,
            plan,
            applied_seq: applied.map(|r| r.seq),
        })
    }

    /// Records the definitions in the registry, unless they would break consumers and
    /// `allow_breaking` is false. `expect` pins the version the caller reviewed a plan
    /// against (`skewless apply --expect-version N`).
    pub fn apply(&self, allow_breaking: bool, expect: Option<u64>) -> Result<ApplyOutcome> {
        let report = self.plan()?;
        // `--expect-version 0`: nothing applied yet.
        if let Some(expected) = expect.map(|v| Some(v).filter(|&v| v > 0))
            && report.applied_seq != expected
        {
            return Err(self.registry().moved(expected, report.applied_seq).into());
        }
        self.apply_plan(report, allow_breaking)
    }

    /// Records a plan, compare-and-swap against the version it was made from: if another
    /// apply landed since, nothing is recorded (identical definitions read as up to date).
    pub fn apply_plan(&self, report: PlanReport, allow_breaking: bool) -> Result<ApplyOutcome> {
        let registry = self.registry();
        if let (true, Some(seq)) = (report.plan.is_empty(), report.applied_seq) {
            let now = registry.seqs()?.last().copied();
            return if now == Some(seq) {
                Ok(ApplyOutcome::UpToDate { seq })
            } else {
                Err(registry.moved(Some(seq), now).into())
            };
        }
        let breaking: Vec<String> = report
            .plan
            .breaking()
            .flat_map(|c| {
                c.breaking
                    .iter()
                    .map(move |why| format!("  {} `{}`: {why}", c.kind.name(), c.name))
            })
            .collect();
        if !breaking.is_empty() && !allow_breaking {
            return Err(Error::Breaking(breaking));
        }
        let text_hash = report.definitions.text_hash.clone();
        let versions = skewless_defs::version::versions(&report.definitions);
        match registry.record(report.definitions, report.plan, report.applied_seq) {
            Ok(record) => Ok(ApplyOutcome::Applied(Box::new(record))),
            Err(moved @ skewless_registry::RegistryError::Moved { .. }) => {
                // Lost the race to an apply of the very same definitions: nothing to do.
                match registry.latest()? {
                    Some(latest) if latest.text_hash == text_hash && latest.versions == versions => {
                        Ok(ApplyOutcome::UpToDate { seq: latest.seq })
                    }
                    _ => Err(moved.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }
}
