//! What applying new definitions would change, and which changes break consumers.
//!
//! A change is *breaking* when something that a training job or an online service relies on
//! stops holding: a feature disappears or changes type, an entity's keys change, a view
//! stops being served, a request field becomes required, or the point-in-time rules of an
//! online view (ttl, as_of) change under the services that read it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::definitions::Definitions;
use crate::model::*;
use crate::version::{Versions, versions};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Entity,
    Source,
    FeatureView,
    OnDemandView,
    FeatureService,
}

impl ObjectKind {
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Entity => "entity",
            ObjectKind::Source => "source",
            ObjectKind::FeatureView => "feature view",
            ObjectKind::OnDemandView => "on-demand view",
            ObjectKind::FeatureService => "feature service",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Add,
    Change,
    Remove,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub kind: ObjectKind,
    pub name: String,
    pub action: Action,
    pub old_version: Option<String>,
    pub new_version: Option<String>,
    /// Why consumers break; empty for a compatible change.
    pub breaking: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub changes: Vec<Change>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn breaking(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| !c.breaking.is_empty())
    }
}

/// Compares what was applied (`None`: nothing yet) with what the files say now.
pub fn plan(old: Option<&Definitions>, new: &Definitions) -> Plan {
    let empty = Versions::default();
    let old_versions = old.map(versions);
    let old_v = old_versions.as_ref().unwrap_or(&empty);
    let new_v = versions(new);
    let mut changes = Vec::new();
    // `changed` catches what matters to consumers without changing values (and so versions):
    // whether a view is served online.
    let mut diff = |kind,
                    a: &BTreeMap<String, String>,
                    b: &BTreeMap<String, String>,
                    why: &dyn Fn(&str) -> Vec<String>,
                    changed: &dyn Fn(&str) -> bool| {
        for (name, old_version) in a {
            if !b.contains_key(name) {
                changes.push(Change {
                    kind,
                    name: name.clone(),
                    action: Action::Remove,
                    old_version: Some(old_version.clone()),
                    new_version: None,
                    breaking: vec![format!("{} removed", kind.name())],
                });
            }
        }
        for (name, new_version) in b {
            let (action, old_version) = match a.get(name) {
                None => (Action::Add, None),
                Some(v) if v == new_version && !changed(name) => continue,
                Some(v) => (Action::Change, Some(v.clone())),
            };
            let breaking = if action == Action::Change {
                why(name)
            } else {
                Vec::new()
            };
            changes.push(Change {
                kind,
                name: name.clone(),
                action,
                old_version,
                new_version: Some(new_version.clone()),
                breaking,
            });
        }
    };
    let (none, same) = (|_: &str| Vec::new(), |_: &str| false);
    let Some(old) = old else {
        diff(ObjectKind::Entity, &empty.entities, &new_v.entities, &none, &same);
        diff(ObjectKind::Source, &empty.sources, &new_v.sources, &none, &same);
        diff(
            ObjectKind::FeatureView,
            &empty.feature_views,
            &new_v.feature_views,
            &none,
            &same,
        );
        diff(
            ObjectKind::OnDemandView,
            &empty.on_demand_views,
            &new_v.on_demand_views,
            &none,
            &same,
        );
        diff(
            ObjectKind::FeatureService,
            &empty.feature_services,
            &new_v.feature_services,
            &none,
            &same,
        );
        return Plan { changes };
    };
    let entity = |n: &str| entity_breaks(&old.entities[n], &new.entities[n]);
    diff(ObjectKind::Entity, &old_v.entities, &new_v.entities, &entity, &same);
    diff(ObjectKind::Source, &old_v.sources, &new_v.sources, &none, &same);
    let view = |n: &str| view_breaks(old, &old.feature_views[n], new, &new.feature_views[n]);
    let online_flag = |n: &str| old.feature_views[n].online != new.feature_views[n].online;
    diff(
        ObjectKind::FeatureView,
        &old_v.feature_views,
        &new_v.feature_views,
        &view,
        &online_flag,
    );
    let on_demand = |n: &str| on_demand_breaks(&old.on_demand_views[n], &new.on_demand_views[n]);
    diff(
        ObjectKind::OnDemandView,
        &old_v.on_demand_views,
        &new_v.on_demand_views,
        &on_demand,
        &same,
    );
    let service = |n: &str| service_breaks(old, &old.feature_services[n], new, &new.feature_services[n]);
    diff(
        ObjectKind::FeatureService,
        &old_v.feature_services,
        &new_v.feature_services,
        &service,
        &same,
    );
    Plan { changes }
}

fn keys_text(keys: &[&JoinKey]) -> String {
    let mut parts: Vec<String> = keys.iter().map(|k| format!("{}:{}", k.name, k.ty)).collect();
    parts.sort();
    parts.join(", ")
}

fn entity_breaks(old: &Entity, new: &Entity) -> Vec<String> {
    let (a, b) = (
        keys_text(&old.keys.iter().collect::<Vec<_>>()),
        keys_text(&new.keys.iter().collect::<Vec<_>>()),
    );
    if a != b {
        vec![format!("keys changed ({a} → {b})")]
    } else {
        Vec::new()
    }
}

fn features_breaks(old: &[Feature], new: &[Feature]) -> Vec<String> {
    let mut out = Vec::new();
    for f in old {
        match new.iter().find(|n| n.name == f.name) {
            None => out.push(format!("feature `{}` removed", f.name)),
            Some(n) if n.ty != f.ty => out.push(format!("feature `{}` retyped ({} → {})", f.name, f.ty, n.ty)),
            Some(_) => {}
        }
    }
    out
}

fn view_breaks(old_defs: &Definitions, old: &FeatureView, new_defs: &Definitions, new: &FeatureView) -> Vec<String> {
    let mut out = features_breaks(&old.features, &new.features);
    let (a, b) = (keys_text(&old_defs.view_keys(old)), keys_text(&new_defs.view_keys(new)));
    if a != b {
        out.push(format!("join keys changed ({a} → {b})"));
    }
    if old.online && !new.online {
        out.push("no longer served online".to_string());
    }
    if old.online && new.online {
        let ttl = |t: Option<crate::Duration>| t.map_or_else(|| "none".to_string(), |d| d.to_string());
        if old.ttl != new.ttl {
            out.push(format!(
                "ttl changed on an online view ({} → {})",
                ttl(old.ttl),
                ttl(new.ttl)
            ));
        }
        if old.as_of != new.as_of {
            out.push(format!(
                "as_of changed on an online view ({} → {})",
                old.as_of.name(),
                new.as_of.name()
            ));
        }
    }
    out
}

fn on_demand_breaks(old: &OnDemandView, new: &OnDemandView) -> Vec<String> {
    let mut out = features_breaks(&old.features, &new.features);
    for r in &new.request {
        match old.request.iter().find(|o| o.name == r.name) {
            None => out.push(format!("request field `{}` added: callers must send it", r.name)),
            Some(o) if o.ty != r.ty => out.push(format!("request field `{}` retyped ({} → {})", r.name, o.ty, r.ty)),
            Some(_) => {}
        }
    }
    out
}

fn service_breaks(
    old_defs: &Definitions,
    old: &FeatureService,
    new_defs: &Definitions,
    new: &FeatureService,
) -> Vec<String> {
    let (Ok(a), Ok(b)) = (old_defs.service_features(old), new_defs.service_features(new)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for f in &a {
        match b.iter().find(|n| n.view == f.view && n.feature == f.feature) {
            None => out.push(format!("`{}:{}` no longer served", f.view, f.feature)),
            Some(n) if n.ty != f.ty => out.push(format!("`{}:{}` retyped ({} → {})", f.view, f.feature, f.ty, n.ty)),
            Some(_) => {}
        }
    }
    out
}
