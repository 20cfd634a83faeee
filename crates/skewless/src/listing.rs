//! Rows for `skewless list`: one plain struct per kind, serialized as JSON or printed as a table.

use serde::Serialize;
use skewless_defs::Definitions;
use skewless_defs::version::versions;

#[derive(Debug, Clone, Serialize)]
pub struct ViewRow {
    pub name: String,
    pub kind: &'static str,
    pub entities: Vec<String>,
    pub source: Option<String>,
    pub ttl: Option<String>,
    pub as_of: Option<&'static str>,
    pub online: bool,
    pub features: usize,
    pub owner: Option<String>,
    pub version: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FeatureRow {
    pub view: String,
    pub feature: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub expr: String,
    pub ttl: Option<String>,
    pub owner: Option<String>,
    pub view_version: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceRow {
    pub name: String,
    pub features: Vec<String>,
    pub owner: Option<String>,
    pub version: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct EntityRow {
    pub name: String,
    pub keys: Vec<String>,
    pub description: Option<String>,
    pub version: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceRow {
    pub name: String,
    pub path: Option<String>,
    pub format: Option<&'static str>,
    pub timestamp: String,
    pub created: Option<String>,
    pub push: bool,
    pub version: String,
}

pub fn views(defs: &Definitions) -> Vec<ViewRow> {
    let v = versions(defs);
    let mut rows: Vec<ViewRow> = defs
        .feature_views
        .values()
        .map(|fv| ViewRow {
            name: fv.name.clone(),
            kind: "feature_view",
            entities: fv.entities.clone(),
            source: Some(fv.source.clone()),
            ttl: fv.ttl.map(|t| t.to_string()),
            as_of: Some(fv.as_of.name()),
            online: fv.online,
            features: fv.features.len(),
            owner: fv.owner.clone(),
            version: v.feature_views[&fv.name].clone(),
        })
        .collect();
    rows.extend(defs.on_demand_views.values().map(|odv| ViewRow {
        name: odv.name.clone(),
        kind: "on_demand_view",
        entities: Vec::new(),
        source: None,
        ttl: None,
        as_of: None,
        online: true,
        features: odv.features.len(),
        owner: odv.owner.clone(),
        version: v.on_demand_views[&odv.name].clone(),
    }));
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    rows
}

pub fn features(defs: &Definitions) -> Vec<FeatureRow> {
    views(defs)
        .into_iter()
        .flat_map(|view| {
            let features = defs.view_features(&view.name).unwrap_or_default();
            features
                .iter()
                .map(|f| FeatureRow {
                    view: view.name.clone(),
                    feature: f.name.clone(),
                    ty: f.ty.to_string(),
                    expr: f.expr_or_column().to_string(),
                    ttl: view.ttl.clone(),
                    owner: view.owner.clone(),
                    view_version: view.version.clone(),
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

pub fn services(defs: &Definitions) -> Vec<ServiceRow> {
    let v = versions(defs);
    defs.feature_services
        .values()
        .map(|s| ServiceRow {
            name: s.name.clone(),
            features: defs
                .service_features(s)
                .unwrap_or_default()
                .iter()
                .map(|f| format!("{}:{}", f.view, f.feature))
                .collect(),
            owner: s.owner.clone(),
            version: v.feature_services[&s.name].clone(),
        })
        .collect()
}

pub fn entities(defs: &Definitions) -> Vec<EntityRow> {
    let v = versions(defs);
    defs.entities
        .values()
        .map(|e| EntityRow {
            name: e.name.clone(),
            keys: e.keys.iter().map(|k| format!("{}:{}", k.name, k.ty)).collect(),
            description: e.description.clone(),
            version: v.entities[&e.name].clone(),
        })
        .collect()
}

pub fn sources(defs: &Definitions) -> Vec<SourceRow> {
    let v = versions(defs);
    defs.sources
        .values()
        .map(|s| SourceRow {
            name: s.name.clone(),
            path: s.path.clone(),
            format: s.format.map(|f| f.name()),
            timestamp: s.timestamp.clone(),
            created: s.created.clone(),
            push: s.push,
            version: v.sources[&s.name].clone(),
        })
        .collect()
}
