//! Definitions and the registry: `validate`, `plan`, `apply`, `list`, `registry`, `demo-data`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use skewless::listing;
use skewless::{ApplyOutcome, Error, Project};

use crate::args::{ExportTarget, ListKind, RegistryCommand};
use crate::output::{self, Table, print_json};

pub(crate) fn validate(project: &Project, data: bool, json: bool) -> anyhow::Result<ExitCode> {
    let result = project.load();
    let mut errors: Vec<serde_json::Value> = match &result {
        Ok(_) => Vec::new(),
        Err(Error::Invalid(d)) if json => d.iter().map(|d| serde_json::json!(d)).collect(),
        Err(_) => {
            return Err(result
                .err()
                .map(anyhow::Error::from)
                .unwrap_or_else(|| anyhow::anyhow!("unreachable")));
        }
    };
    let Ok(defs) = result else {
        print_json(&serde_json::json!({ "valid": false, "errors": errors }))?;
        return Ok(ExitCode::FAILURE);
    };
    let problems = if data {
        project.check_data(&defs).context("checking the data")?
    } else {
        Vec::new()
    };
    if json {
        errors.extend(problems.iter().map(|p| {
            serde_json::json!({
                "source": p.source,
                "file": p.file,
                "row": p.row,
                "view": p.feature.as_ref().map(|f| &f.0),
                "feature": p.feature.as_ref().map(|f| &f.1),
                "message": p.to_string(),
            })
        }));
        print_json(&serde_json::json!({ "valid": errors.is_empty(), "errors": errors }))?;
        return Ok(if errors.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("error: {p}");
        }
        eprintln!("{} problems in the data", problems.len());
        return Ok(ExitCode::FAILURE);
    }
    let features: usize = defs.feature_views.values().map(|v| v.features.len()).sum::<usize>()
        + defs.on_demand_views.values().map(|v| v.features.len()).sum::<usize>();
    println!(
        "ok: project `{}`: {} entities, {} sources, {} feature views, {} on-demand views, {} features, {} services{}",
        defs.project,
        defs.entities.len(),
        defs.sources.len(),
        defs.feature_views.len(),
        defs.on_demand_views.len(),
        features,
        defs.feature_services.len(),
        if data { "; every source row evaluates" } else { "" }
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn plan(project: &Project, json: bool) -> anyhow::Result<ExitCode> {
    let report = project.plan().context("planning")?;
    if json {
        print_json(&report.to_json())?;
        return Ok(ExitCode::SUCCESS);
    }
    match report.applied_seq {
        Some(seq) => println!("Plan against applied version {seq}:"),
        None => println!("Plan (nothing applied yet):"),
    }
    output::print_plan(&report.plan);
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn apply(
    project: &Project,
    allow_breaking: bool,
    expect: Option<u64>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let outcome = project.apply(allow_breaking, expect).context("applying")?;
    if json {
        print_json(&outcome.to_json())?;
        return Ok(ExitCode::SUCCESS);
    }
    match outcome {
        ApplyOutcome::UpToDate { seq } => {
            println!("Nothing to apply: the registry already holds these definitions (version {seq}).");
        }
        ApplyOutcome::Applied(record) => {
            output::print_plan(&record.changes);
            println!("Applied as version {} ({}).", record.seq, project.repo_dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn list(project: &Project, kind: ListKind, json: bool) -> anyhow::Result<ExitCode> {
    let defs = project.load().context("loading definitions")?;
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    match kind {
        ListKind::Views => {
            let rows = listing::views(&defs);
            if json {
                return print_json(&rows).map(|_| ExitCode::SUCCESS);
            }
            let mut t = Table::new([
                "VIEW", "KIND", "ENTITIES", "TTL", "AS_OF", "ONLINE", "FEATURES", "OWNER", "VERSION",
            ]);
            for r in rows {
                t.row([
                    r.name,
                    r.kind.replace('_', "-"),
                    if r.entities.is_empty() {
                        "-".into()
                    } else {
                        r.entities.join(",")
                    },
                    opt(&r.ttl),
                    r.as_of.unwrap_or("-").into(),
                    r.online.to_string(),
                    r.features.to_string(),
                    opt(&r.owner),
                    r.version,
                ]);
            }
            t.print();
        }
        ListKind::Features => {
            let rows = listing::features(&defs);
            if json {
                return print_json(&rows).map(|_| ExitCode::SUCCESS);
            }
            let mut t = Table::new(["FEATURE", "TYPE", "TTL", "OWNER", "VERSION", "EXPR"]);
            for r in rows {
                t.row([
                    format!("{}:{}", r.view, r.feature),
                    r.ty,
                    opt(&r.ttl),
                    opt(&r.owner),
                    r.view_version,
                    r.expr,
                ]);
            }
            t.print();
        }
        ListKind::Services => {
            let rows = listing::services(&defs);
            if json {
                return print_json(&rows).map(|_| ExitCode::SUCCESS);
            }
            let mut t = Table::new(["SERVICE", "OWNER", "VERSION", "FEATURES"]);
            for r in rows {
                t.row([r.name, opt(&r.owner), r.version, r.features.join(", ")]);
            }
            t.print();
        }
        ListKind::Entities => {
            let rows = listing::entities(&defs);
            if json {
                return print_json(&rows).map(|_| ExitCode::SUCCESS);
            }
            let mut t = Table::new(["ENTITY", "KEYS", "VERSION", "DESCRIPTION"]);
            for r in rows {
                t.row([r.name, r.keys.join(", "), r.version, opt(&r.description)]);
            }
            t.print();
        }
        ListKind::Sources => {
            let rows = listing::sources(&defs);
            if json {
                return print_json(&rows).map(|_| ExitCode::SUCCESS);
            }
            let mut t = Table::new(["SOURCE", "PATH", "FORMAT", "TIMESTAMP", "CREATED", "PUSH", "VERSION"]);
            for r in rows {
                t.row([
                    r.name,
                    opt(&r.path),
                    r.format.unwrap_or("-").into(),
                    r.timestamp,
                    opt(&r.created),
                    r.push.to_string(),
                    r.version,
                ]);
            }
            t.print();
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `skewless export feast DIR`: the applied version as a Feast repository.
pub(crate) fn export(project: &Project, target: ExportTarget) -> anyhow::Result<ExitCode> {
    let ExportTarget::Feast {
        dir,
        server_url,
        flight_addr,
        project: name,
    } = target;
    let record = project
        .registry()
        .latest()
        .context("reading the registry")?
        .ok_or_else(|| anyhow::anyhow!("nothing is applied yet: run `skewless apply` first"))?;
    let target = skewless::feast_export::FeastTarget {
        project: name,
        server_url,
        flight: flight_addr,
    };
    let out = skewless::feast_export::export(&record, &project.root, &target);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for (path, text) in &out.files {
        let path = dir.join(path);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    for line in &out.skipped {
        eprintln!("not exported: {line}");
    }
    println!(
        "exported applied version {} to {} as a Feast repository: run `feast apply` there, then `python skewless_check.py`",
        record.seq,
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn registry(project: &Project, command: RegistryCommand) -> anyhow::Result<ExitCode> {
    let registry = project.registry();
    match command {
        RegistryCommand::Log { json } => {
            let history = registry.history().context("reading the registry")?;
            if json {
                let rows: Vec<_> = history
                    .iter()
                    .map(|r| serde_json::json!({ "seq": r.seq, "applied_at": r.applied_at, "skewless_version": r.skewless_version, "text_hash": r.text_hash, "changes": r.changes.changes.len() }))
                    .collect();
                return print_json(&rows).map(|_| ExitCode::SUCCESS);
            }
            let mut t = Table::new(["VERSION", "APPLIED_AT", "CHANGES", "BREAKING", "TEXT_HASH"]);
            for r in history {
                let breaking = r.changes.breaking().count();
                t.row([
                    r.seq.to_string(),
                    r.applied_at.to_rfc3339(),
                    r.changes.changes.len().to_string(),
                    breaking.to_string(),
                    skewless::manifest::short(&r.text_hash).to_string(),
                ]);
            }
            t.print();
        }
        RegistryCommand::Show { seq } => {
            let record = match seq {
                Some(seq) => registry.get(seq)?,
                None => registry.latest()?.context("nothing has been applied yet")?,
            };
            print_json(&record)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `skewless demo-data`: the demo's sources, the same bytes for the same seed.
pub(crate) fn demo_data(out: &Path, seed: u64) -> anyhow::Result<ExitCode> {
    let written = skewless::demo_data::generate(out, seed)
        .with_context(|| format!("generating demo data in {}", out.display()))?;
    for w in written {
        println!("wrote {:>6} rows  {}", w.rows, w.file.display());
    }
    Ok(ExitCode::SUCCESS)
}
