//! What a request asks for and what answering it reads: one implementation for training sets,
//! serving, manifests, parity and versions.
//!
//! An on-demand view reads the views its expressions name (`view.feature`); which those are is
//! worked out here only ([`on_demand_reads`]). Definitions that validated always parse, so a
//! parse failure here can only mean unvalidated definitions: their references are then
//! unknown, and validation is what reports them.

use std::collections::BTreeSet;

use crate::Loc;
use crate::definitions::{Definitions, ResolvedFeature};
use crate::model::{FeatureRef, OnDemandView};
use crate::{did_you_mean, expr};

/// The features a request or a training set asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FeatureSelection {
    /// `view:feature` or `view:*` references, in output order.
    Features(Vec<String>),
    /// A feature service's features, in its order.
    Service(String),
}

/// Why a selection does not resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    #[error("unknown feature service `{name}`{}", near(did_you_mean))]
    UnknownService { name: String, did_you_mean: Option<String> },
    #[error("expected `view:feature` or `view:*`, found `{0}`")]
    BadReference(String),
    #[error("no features requested")]
    Empty,
    /// References to views or features that do not exist, one per line.
    #[error("{0}")]
    Unresolved(crate::definitions::Unresolved),
}

fn near(name: &Option<String>) -> String {
    name.as_ref()
        .map(|h| format!(" (did you mean `{h}`?)"))
        .unwrap_or_default()
}

/// The features `selection` names, resolved against `defs`.
pub fn resolve_selection(
    defs: &Definitions,
    selection: &FeatureSelection,
) -> Result<Vec<ResolvedFeature>, SelectionError> {
    let refs: Vec<FeatureRef> = match selection {
        FeatureSelection::Service(name) => {
            let service = defs
                .feature_services
                .get(name)
                .ok_or_else(|| SelectionError::UnknownService {
                    name: name.clone(),
                    did_you_mean: did_you_mean(name, defs.feature_services.keys().map(String::as_str)),
                })?;
            service.features.clone()
        }
        FeatureSelection::Features(list) => list
            .iter()
            .map(|text| {
                FeatureRef::parse(text, &Loc::default()).ok_or_else(|| SelectionError::BadReference(text.clone()))
            })
            .collect::<Result<_, _>>()?,
    };
    if refs.is_empty() {
        return Err(SelectionError::Empty);
    }
    defs.resolve(&refs).map_err(SelectionError::Unresolved)
}

/// The `(view, feature)` pairs each feature of an on-demand view reads, in feature order.
pub fn on_demand_reads(view: &OnDemandView) -> Vec<Vec<(String, String)>> {
    view.features
        .iter()
        .map(|f| match expr::parse(f.expr_or_column()) {
            Ok(parsed) => expr::references(&parsed)
                .into_iter()
                .filter_map(|parts| match parts.as_slice() {
                    [v, feature] => Some((v.clone(), feature.clone())),
                    _ => None,
                })
                .collect(),
            Err(_) => Vec::new(),
        })
        .collect()
}

/// The other on-demand views `view` reads, in first-mention order.
pub fn on_demand_dependencies(defs: &Definitions, view: &OnDemandView) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (v, _) in on_demand_reads(view).into_iter().flatten() {
        if defs.on_demand_views.contains_key(&v) && v != view.name && !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// What answering `features` reads: the feature views (directly or through on-demand views),
/// and the on-demand views to evaluate, dependencies first.
pub fn needed_views(defs: &Definitions, features: &[ResolvedFeature]) -> (BTreeSet<String>, Vec<String>) {
    let mut needed = BTreeSet::new();
    let mut on_demand = Vec::new();
    for f in features {
        if f.on_demand {
            collect_on_demand(defs, &f.view, &mut needed, &mut on_demand);
        } else {
            needed.insert(f.view.clone());
        }
    }
    (needed, on_demand)
}

fn collect_on_demand(defs: &Definitions, name: &str, needed: &mut BTreeSet<String>, order: &mut Vec<String>) {
    if order.iter().any(|n| n == name) {
        return;
    }
    let Some(view) = defs.on_demand_views.get(name) else {
        return;
    };
    for (v, _) in on_demand_reads(view).into_iter().flatten() {
        if defs.on_demand_views.contains_key(&v) {
            collect_on_demand(defs, &v, needed, order);
        } else {
            needed.insert(v);
        }
    }
    // Dependencies first, so evaluation order is a topological order.
    order.push(name.to_string());
}
