//! The merged, validated set of definitions and the questions later stages ask of it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::*;

/// Every definition under `feature_defs/`, merged across files and validated.
///
/// Names are unique per kind; feature views and on-demand views share one namespace because
/// `view:feature` references do not say which kind they mean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Definitions {
    pub project: String,
    pub entities: BTreeMap<String, Entity>,
    pub sources: BTreeMap<String, Source>,
    pub feature_views: BTreeMap<String, FeatureView>,
    pub on_demand_views: BTreeMap<String, OnDemandView>,
    pub feature_services: BTreeMap<String, FeatureService>,
    /// SHA-256 over every definition file's path and text: what exactly was read.
    pub text_hash: String,
}

/// A feature resolved to its view, as a service or a request names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedFeature {
    pub view: String,
    pub feature: String,
    #[serde(rename = "type")]
    pub ty: FeatureType,
    pub on_demand: bool,
}

/// Two features that would answer under one name: `name` comes from both views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameClash {
    pub name: String,
    pub first: String,
    pub second: String,
}

impl std::fmt::Display for NameClash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "feature name `{}` comes from both `{}` and `{}`; ask with full names (view__feature) or for only one of them",
            self.name, self.first, self.second
        )
    }
}

/// The one rule for the names of features in an answer, a training set or a service: no
/// two features may answer under one name. Training sets, both lookup APIs and service
/// validation all ask this. Short names clash when two views share a feature name; full
/// names (`view__feature`) only in contrived cases (`a:b__c` and `a__b:c`), still refused.
pub fn output_name_clash(features: &[ResolvedFeature], full_names: bool) -> Option<NameClash> {
    let mut owner: std::collections::HashMap<std::borrow::Cow<'_, str>, &str> =
        std::collections::HashMap::with_capacity(features.len());
    for f in features {
        let name = if full_names {
            std::borrow::Cow::Owned(format!("{}__{}", f.view, f.feature))
        } else {
            std::borrow::Cow::Borrowed(f.feature.as_str())
        };
        if let Some(first) = owner.get(&name)
            && *first != f.view
        {
            return Some(NameClash {
                name: name.into_owned(),
                first: first.to_string(),
                second: f.view.clone(),
            });
        }
        owner.insert(name, &f.view);
    }
    None
}

impl Definitions {
    /// The join keys of a feature view: each entity's keys, in entity then declaration order.
    pub fn view_keys(&self, view: &FeatureView) -> Vec<&JoinKey> {
        view.entities
            .iter()
            .filter_map(|e| self.entities.get(e))
            .flat_map(|e| e.keys.iter())
            .collect()
    }

    /// The features of a (feature or on-demand) view, if the view exists.
    pub fn view_features(&self, view: &str) -> Option<&[Feature]> {
        self.feature_views
            .get(view)
            .map(|v| v.features.as_slice())
            .or_else(|| self.on_demand_views.get(view).map(|v| v.features.as_slice()))
    }

    /// Expands `view:feature` / `view:*` references. Every reference that does not resolve is
    /// reported, each with a "did you mean" where a near name exists.
    pub fn resolve(&self, refs: &[FeatureRef]) -> Result<Vec<ResolvedFeature>, Unresolved> {
        let mut out: Vec<ResolvedFeature> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut problems: Vec<UnresolvedRef> = Vec::new();
        for r in refs {
            let on_demand = self.on_demand_views.contains_key(&r.view);
            let Some(features) = self.view_features(&r.view) else {
                let views = self.feature_views.keys().chain(self.on_demand_views.keys());
                problems.push(UnresolvedRef {
                    reference: r.to_string(),
                    unknown_view: true,
                    did_you_mean: crate::did_you_mean(&r.view, views.map(String::as_str)),
                });
                continue;
            };
            let picked: Vec<&Feature> = match &r.feature {
                // `*` expands in name order, so reordering YAML keys changes nothing downstream.
                None => {
                    let mut all: Vec<&Feature> = features.iter().collect();
                    all.sort_by(|a, b| a.name.cmp(&b.name));
                    all
                }
                Some(name) => match features.iter().find(|f| &f.name == name) {
                    Some(f) => vec![f],
                    None => {
                        let near = crate::did_you_mean(name, features.iter().map(|f| f.name.as_str()));
                        problems.push(UnresolvedRef {
                            reference: r.to_string(),
                            unknown_view: false,
                            did_you_mean: near.map(|n| format!("{}:{n}", r.view)),
                        });
                        continue;
                    }
                },
            };
            for f in picked {
                if seen.insert((r.view.clone(), f.name.clone())) {
                    out.push(ResolvedFeature {
                        view: r.view.clone(),
                        feature: f.name.clone(),
                        ty: f.ty,
                        on_demand,
                    });
                }
            }
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(Unresolved(problems))
        }
    }

    /// The features a service serves, in its order, without repeats.
    pub fn service_features(&self, service: &FeatureService) -> Result<Vec<ResolvedFeature>, Unresolved> {
        self.resolve(&service.features)
    }
}

/// Feature references that do not resolve ([`Definitions::resolve`]): one line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolved(pub Vec<UnresolvedRef>);

/// One reference that does not resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnresolvedRef {
    /// As given: `view:feature` or `view:*`.
    pub reference: String,
    /// The view is unknown (else the feature is).
    pub unknown_view: bool,
    /// A near view name, or a near `view:feature`.
    pub did_you_mean: Option<String>,
}

impl std::fmt::Display for UnresolvedRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.unknown_view {
            let view = self.reference.split(':').next().unwrap_or_default();
            write!(f, "unknown view `{view}` in `{}`", self.reference)?;
        } else {
            write!(f, "unknown feature `{}`", self.reference)?;
        }
        match &self.did_you_mean {
            Some(near) => write!(f, " (did you mean `{near}`?)"),
            None => Ok(()),
        }
    }
}

impl std::fmt::Display for Unresolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}
