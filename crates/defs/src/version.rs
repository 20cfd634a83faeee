//! Canonical version hashes of views, services, entities and sources.
//!
//! A version names what a definition *means*: it changes when values could change and not
//! otherwise. The hash is SHA-256 over a canonical JSON document (object keys sorted,
//! features sorted by name, expressions printed back from their syntax tree), truncated to
//! 16 hex digits. Metadata (owner, description, tags, the `online` flag) and YAML layout
//! (comments, key order, quoting, spacing inside expressions) are not part of it. A view's
//! source *path* is not either: where the data lives is recorded by run manifests; the
//! source's timestamp and availability columns are, because they decide which row wins.
//! Services and on-demand views include the versions of the views they read, so a change
//! upstream shows as a change of every consumer.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::definitions::Definitions;
use crate::expr;
use crate::model::*;

/// Bumped if the canonical form itself changes, so old and new hashes never collide.
const FORMAT: &str = "skewless-version-1";

/// Versions of everything in a set of definitions, by kind and name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Versions {
    pub entities: BTreeMap<String, String>,
    pub sources: BTreeMap<String, String>,
    pub feature_views: BTreeMap<String, String>,
    pub on_demand_views: BTreeMap<String, String>,
    pub feature_services: BTreeMap<String, String>,
}

pub fn versions(defs: &Definitions) -> Versions {
    let map = |names: Vec<&String>, f: &dyn Fn(&str) -> String| names.into_iter().map(|n| (n.clone(), f(n))).collect();
    Versions {
        entities: map(defs.entities.keys().collect(), &|n| entity_version(&defs.entities[n])),
        sources: map(defs.sources.keys().collect(), &|n| source_version(&defs.sources[n])),
        feature_views: map(defs.feature_views.keys().collect(), &|n| {
            view_version(defs, &defs.feature_views[n])
        }),
        on_demand_views: map(defs.on_demand_views.keys().collect(), &|n| on_demand_version(defs, n)),
        feature_services: map(defs.feature_services.keys().collect(), &|n| {
            service_version(defs, &defs.feature_services[n])
        }),
    }
}

fn digest(kind: &str, body: Value) -> String {
    let doc = json!({ "format": FORMAT, "kind": kind, "body": body });
    // serde_json's map is ordered by key, so this text is canonical.
    let text = doc.to_string();
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

fn keys_json(keys: &[&JoinKey]) -> Value {
    let mut keys: Vec<_> = keys.iter().map(|k| json!([k.name, k.ty.name()])).collect();
    keys.sort_by_key(|k| k.to_string());
    Value::Array(keys)
}

fn features_json(features: &[Feature]) -> Value {
    let mut out: Vec<Value> = features
        .iter()
        .map(|f| {
            json!({
                "name": f.name,
                "type": f.ty.name(),
                "expr": expr::canonical(f.expr_or_column()),
                "contract": serde_json::to_value(&f.contract).unwrap_or(Value::Null),
            })
        })
        .collect();
    out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Value::Array(out)
}

pub fn entity_version(entity: &Entity) -> String {
    digest("entity", keys_json(&entity.keys.iter().collect::<Vec<_>>()))
}

pub fn source_version(source: &Source) -> String {
    digest(
        "source",
        json!({
            "path": source.path,
            "format": source.format.map(SourceFormat::name),
            "timestamp": source.timestamp,
            "created": source.created,
            "push": source.push,
        }),
    )
}

pub fn view_version(defs: &Definitions, view: &FeatureView) -> String {
    let source = defs.sources.get(&view.source);
    let mut hashed = json!({
        "keys": keys_json(&defs.view_keys(view)),
        "timestamp": source.map(|s| &s.timestamp),
        "created": source.and_then(|s| s.created.as_ref()),
        "ttl_seconds": view.ttl.map(|t| t.seconds()),
        "as_of": view.as_of.name(),
        "features": features_json(&view.features),
    });
    // Contracts decide which rows count, so how they are enforced is part of what the view
    // computes; a view without contracts is unchanged by it (and keeps its version).
    if view.has_contracts() {
        hashed["contracts_enforced"] = json!(view.on_violation.name());
    }
    digest("feature_view", hashed)
}

/// Includes the versions of the views the expressions read (cycles were rejected by validation;
/// a cycle that slipped through hashes its back-edge as the bare name instead of recursing).
pub fn on_demand_version(defs: &Definitions, name: &str) -> String {
    on_demand_version_inner(defs, name, &mut Vec::new())
}

fn on_demand_version_inner(defs: &Definitions, name: &str, visiting: &mut Vec<String>) -> String {
    let Some(view) = defs.on_demand_views.get(name) else {
        return String::new();
    };
    visiting.push(name.to_string());
    let mut upstream = BTreeMap::new();
    for (v, _) in crate::on_demand_reads(view).iter().flatten() {
        let version = if let Some(fv) = defs.feature_views.get(v) {
            view_version(defs, fv)
        } else if visiting.contains(v) {
            v.clone()
        } else {
            on_demand_version_inner(defs, v, visiting)
        };
        upstream.insert(v.clone(), version);
    }
    visiting.pop();
    let mut request: Vec<_> = view.request.iter().map(|r| json!([r.name, r.ty.name()])).collect();
    request.sort_by_key(|r| r.to_string());
    digest(
        "on_demand_view",
        json!({ "request": request, "features": features_json(&view.features), "upstream": upstream }),
    )
}

/// A service's version: its resolved feature list, in order, with each view's version.
pub fn service_version(defs: &Definitions, service: &FeatureService) -> String {
    let resolved = defs.service_features(service).unwrap_or_default();
    let features: Vec<Value> = resolved
        .iter()
        .map(|f| {
            let version = match defs.feature_views.get(&f.view) {
                Some(v) => view_version(defs, v),
                None => on_demand_version(defs, &f.view),
            };
            json!([f.view, f.feature, f.ty.name(), version])
        })
        .collect();
    digest("feature_service", Value::Array(features))
}
