//! From located YAML trees to the typed model, collecting every problem on the way.
//!
//! Parsing is forgiving in one way only: a bad field is reported and skipped, and the rest
//! of the file is still read, so one run reports every mistake. Cross-references between
//! files (a view naming an entity) are checked later, in `validate`.

use std::collections::BTreeMap;

use crate::diagnostic::{Diagnostic, Diagnostics, Loc};
use crate::duration::Duration;
use crate::model::*;
use crate::yaml::{Node, Value};

/// Everything declared in one file, in file order.
#[derive(Debug, Default)]
pub struct FileDefs {
    pub project: Option<(String, Loc)>,
    pub entities: Vec<Entity>,
    pub sources: Vec<Source>,
    pub feature_views: Vec<FeatureView>,
    pub on_demand_views: Vec<OnDemandView>,
    pub feature_services: Vec<FeatureService>,
    /// Names declared here that failed to parse (`entity:x`, `source:x`, `view:x`, `feature:v.f`):
    /// references to them are not reported again as unknown.
    pub broken: Vec<String>,
}

const TOP_LEVEL: &[&str] = &[
    "project",
    "entities",
    "sources",
    "feature_views",
    "on_demand_views",
    "feature_services",
];

pub fn file_defs(root: &Node, problems: &mut Diagnostics) -> FileDefs {
    let mut out = FileDefs::default();
    let Some(top) = Fields::new(root, "a definition file", TOP_LEVEL, problems) else {
        return out;
    };
    if let Some(node) = top.get("project")
        && let Some(name) = name(node, "project name", problems)
    {
        out.project = Some((name, node.loc.clone()));
    }
    let mut section = |key: &str, each: &mut dyn FnMut(String, &Node, &mut Diagnostics)| {
        let Some(node) = top.get(key) else { return };
        let Some(entries) = expect_map(node, key, problems) else {
            return;
        };
        for (k, v) in entries {
            if let Some(n) = name(k, key.trim_end_matches('s'), problems) {
                each(n, v, problems);
            }
        }
    };
    let mut broken = Vec::new();
    section("entities", &mut |n, v, p| match entity(n.clone(), v, p) {
        Some(e) => out.entities.push(e),
        None => broken.push(format!("entity:{n}")),
    });
    section("sources", &mut |n, v, p| match source(n.clone(), v, p) {
        Some(s) => out.sources.push(s),
        None => broken.push(format!("source:{n}")),
    });
    section(
        "feature_views",
        &mut |n, v, p| match feature_view(n.clone(), v, p, &mut broken) {
            Some(view) => out.feature_views.push(view),
            None => broken.push(format!("view:{n}")),
        },
    );
    section(
        "on_demand_views",
        &mut |n, v, p| match on_demand_view(n.clone(), v, p, &mut broken) {
            Some(view) => out.on_demand_views.push(view),
            None => broken.push(format!("view:{n}")),
        },
    );
    section("feature_services", &mut |n, v, p| {
        out.feature_services.extend(feature_service(n, v, p))
    });
    out.broken = broken;
    out
}

fn entity(name: String, node: &Node, problems: &mut Diagnostics) -> Option<Entity> {
    let f = Fields::new(node, &format!("entity `{name}`"), &["keys", "description"], problems)?;
    let mut keys = Vec::new();
    match f.get("keys") {
        None => problems.push(Diagnostic::new(
            &node.loc,
            format!("entity `{name}` has no `keys`: expected a mapping of key name to type, e.g. `keys: {{ driver_id: int64 }}`"),
        )),
        Some(keys_node) => {
            for (k, v) in expect_map(keys_node, "keys", problems).unwrap_or_default() {
                let Some(key) = self::name(k, "key name", problems) else { continue };
                if let Some(ty) = parse_enum::<KeyType>(v, "key type", KeyType::ALL.map(KeyType::name), problems) {
                    keys.push(JoinKey { name: key, ty });
                }
            }
            if keys.is_empty() && keys_node.as_map().is_some_and(|m| m.is_empty()) {
                problems.push(Diagnostic::new(&keys_node.loc, format!("entity `{name}` needs at least one key")));
            }
        }
    }
    let description = f.string("description", problems);
    Some(Entity {
        name,
        keys,
        description,
        loc: node.loc.clone(),
    })
}

fn source(name: String, node: &Node, problems: &mut Diagnostics) -> Option<Source> {
    let fields = &["path", "format", "timestamp", "created", "push", "description"];
    let f = Fields::new(node, &format!("source `{name}`"), fields, problems)?;
    let path = f.string("path", problems);
    let path_loc = f.get("path").map_or_else(|| node.loc.clone(), |n| n.loc.clone());
    let stated = f.get("format").and_then(|n| {
        parse_enum_with::<SourceFormat>(n, "source format", &["parquet", "csv"], problems, |s| match s {
            "parquet" => Some(SourceFormat::Parquet),
            "csv" => Some(SourceFormat::Csv),
            _ => None,
        })
    });
    let format = stated.or_else(|| path.as_deref().and_then(SourceFormat::from_extension));
    let push = f.bool("push", problems).unwrap_or(false);
    if path.is_none() && !push {
        problems.push(Diagnostic::new(
            &node.loc,
            format!("source `{name}` has neither `path` nor `push: true`: expected a file, directory or glob to read, or pushed events"),
        ));
    }
    let timestamp = match f.get("timestamp") {
        Some(n) => self::name(n, "timestamp column", problems),
        None => {
            problems.push(Diagnostic::new(
                &node.loc,
                format!("source `{name}` has no `timestamp`: expected the event-time column's name"),
            ));
            None
        }
    }?;
    let created = f.get("created").and_then(|n| self::name(n, "created column", problems));
    let description = f.string("description", problems);
    Some(Source {
        name,
        path,
        format,
        timestamp,
        created,
        push,
        description,
        loc: node.loc.clone(),
        path_loc,
    })
}

fn feature_view(
    name: String,
    node: &Node,
    problems: &mut Diagnostics,
    broken: &mut Vec<String>,
) -> Option<FeatureView> {
    let fields = &[
        "entity",
        "entities",
        "source",
        "ttl",
        "as_of",
        "on_violation",
        "online",
        "tags",
        "owner",
        "description",
        "features",
        "aggregations",
        "tile",
    ];
    let f = Fields::new(node, &format!("feature view `{name}`"), fields, problems)?;
    let entities = match (f.get("entity"), f.get("entities")) {
        (Some(n), None) | (None, Some(n)) => names_or_list(n, "entity", problems),
        (Some(_), Some(n)) => {
            problems.push(Diagnostic::new(&n.loc, "give either `entity` or `entities`, not both"));
            Vec::new()
        }
        (None, None) => {
            problems.push(Diagnostic::new(
                &node.loc,
                format!(
                    "feature view `{name}` has no `entity`: expected the entity (or list of entities) it describes"
                ),
            ));
            Vec::new()
        }
    };
    let source = match f.get("source") {
        Some(n) => self::name(n, "source name", problems),
        None => {
            problems.push(Diagnostic::new(
                &node.loc,
                format!("feature view `{name}` has no `source`: expected the name of a source"),
            ));
            None
        }
    };
    let entities_loc = f
        .get("entity")
        .or(f.get("entities"))
        .map_or_else(|| node.loc.clone(), |n| n.loc.clone());
    let source_loc = f.get("source").map_or_else(|| node.loc.clone(), |n| n.loc.clone());
    let ttl = f.get("ttl").and_then(|n| duration(n, problems));
    let as_of = f
        .get("as_of")
        .and_then(|n| {
            parse_enum_with(n, "as_of", &["event", "available"], problems, |s| match s {
                "event" => Some(AsOf::Event),
                "available" => Some(AsOf::Available),
                _ => None,
            })
        })
        .unwrap_or_default();
    let on_violation = f
        .get("on_violation")
        .and_then(|n| {
            parse_enum_with(
                n,
                "on_violation",
                &["quarantine", "null", "fail"],
                problems,
                |s| match s {
                    "quarantine" => Some(OnViolation::Quarantine),
                    "null" => Some(OnViolation::Null),
                    "fail" => Some(OnViolation::Fail),
                    _ => None,
                },
            )
        })
        .unwrap_or_default();
    let online = f.bool("online", problems).unwrap_or(true);
    let tags = f.get("tags").map(|n| tags(n, problems)).unwrap_or_default();
    let owner = f.string("owner", problems);
    let description = f.string("description", problems);
    let (features, tile) = match (f.get("features"), f.get("aggregations")) {
        (Some(_), Some(a)) => {
            problems.push(Diagnostic::new(
                &a.loc,
                format!(
                    "feature view `{name}` has both `features` and `aggregations`: a view is either rows or \
windowed aggregates; declare the aggregates in a view of their own over the same source"
                ),
            ));
            (Vec::new(), None)
        }
        (None, Some(a)) => {
            let features = aggregations(&name, a, problems, broken);
            let tile = match f.get("tile") {
                Some(n) => tile(n, problems),
                None => Some(default_tile(&features)),
            };
            (features, tile)
        }
        (features_node, None) => {
            if let Some(t) = f.get("tile") {
                problems.push(Diagnostic::new(
                    &t.loc,
                    format!("`tile` applies to `aggregations`, and feature view `{name}` has none"),
                ));
            }
            (features(&name, features_node, &node.loc, false, problems, broken), None)
        }
    };
    Some(FeatureView {
        name,
        entities,
        source: source?,
        ttl,
        as_of,
        on_violation,
        online,
        tags,
        owner,
        description,
        features,
        tile,
        loc: node.loc.clone(),
        entities_loc,
        source_loc,
    })
}

/// The tile when a view names none: the largest of 1d, 1h, 5m, 1m and 1s that divides every
/// finite window and cuts the shortest into at least 12 tiles (so no window is off by more
/// than a twelfth of itself); 1d when every window is `lifetime`.
pub fn default_tile(features: &[Feature]) -> Tile {
    let windows: Vec<u64> = features
        .iter()
        .filter_map(|f| match f.aggregation.as_ref()?.window {
            Window::Last(d) if d.seconds() > 0 => Some(d.seconds()),
            _ => None,
        })
        .collect();
    let Some(shortest) = windows.iter().min() else {
        return Tile::Every(Duration::from_seconds(86_400));
    };
    let tile = [86_400, 3_600, 300, 60, 1]
        .into_iter()
        .find(|t| shortest / t >= 12 && windows.iter().all(|w| w % t == 0))
        .unwrap_or(1);
    Tile::Every(Duration::from_seconds(tile))
}

fn tile(node: &Node, problems: &mut Diagnostics) -> Option<Tile> {
    if node.as_str() == Some("exact") {
        return Some(Tile::Exact);
    }
    let text = node.as_str().unwrap_or_default();
    match text.parse::<Duration>() {
        Ok(d) if d.seconds() > 0 => Some(Tile::Every(d)),
        Ok(_) => {
            problems.push(Diagnostic::new(&node.loc, "`tile` must be positive, or `exact`"));
            None
        }
        Err(e) => {
            problems.push(Diagnostic::new(
                &node.loc,
                format!(
                    "invalid tile `{text}`: {} (e.g. 5m, 1h, 1d, or `exact` for untiled windows)",
                    e.0
                ),
            ));
            None
        }
    }
}

/// `aggregations:` of a view: each entry is one function over one input, in one or more
/// windows, and becomes one feature per window, named `<entry>_<window>` (`trips_1h`,
/// `fare_sum_lifetime`).
fn aggregations(view: &str, node: &Node, problems: &mut Diagnostics, broken: &mut Vec<String>) -> Vec<Feature> {
    let mut out = Vec::new();
    let entries = expect_map(node, "aggregations", problems).unwrap_or_default();
    if entries.is_empty() && node.as_map().is_some() {
        problems.push(Diagnostic::new(
            &node.loc,
            format!("view `{view}` declares no aggregations"),
        ));
    }
    for (k, v) in entries {
        let Some(name) = self::name(k, "aggregation name", problems) else {
            continue;
        };
        match aggregation(&name, k, v, problems) {
            Some(features) => out.extend(features),
            None => broken.push(format!("feature:{view}.{name}")),
        }
    }
    out
}

fn aggregation(name: &str, key: &Node, node: &Node, problems: &mut Diagnostics) -> Option<Vec<Feature>> {
    let f = Fields::new(
        node,
        &format!("aggregation `{name}`"),
        &["function", "expr", "window", "windows", "where", "type", "description"],
        problems,
    )?;
    let function: AggFunction = match f.get("function") {
        Some(n) => parse_enum(
            n,
            "aggregate function",
            AggFunction::ALL.map(AggFunction::name),
            problems,
        ),
        None => {
            problems.push(Diagnostic::new(
                &node.loc,
                format!(
                    "aggregation `{name}` has no `function`: expected one of {}",
                    AggFunction::ALL.map(AggFunction::name).join(", ")
                ),
            ));
            None
        }
    }?;
    let expr = f.string("expr", problems);
    let expr_loc = f.get("expr").map_or_else(|| key.loc.clone(), |n| n.loc.clone());
    if expr.is_none() && function != AggFunction::Count {
        problems.push(Diagnostic::new(
            &node.loc,
            format!("aggregation `{name}` ({function}) needs an `expr`: the value it aggregates"),
        ));
        return None;
    }
    let filter = f.string("where", problems);
    let declared = f.get("type").and_then(|n| feature_type(n, problems));
    let ty = match (function.fixed_type(), declared) {
        (Some(fixed), Some(declared)) if fixed != declared => {
            problems.push(Diagnostic::new(
                &f.get("type")?.loc,
                format!("aggregation `{name}`: {function} gives {fixed}, not {declared}; omit `type`"),
            ));
            return None;
        }
        (Some(fixed), _) => fixed,
        (None, Some(declared)) => declared,
        (None, None) => {
            problems.push(Diagnostic::new(
                &node.loc,
                format!(
                    "aggregation `{name}` ({function}) needs a `type`: its result has the type of its input, one of {}",
                    type_list()
                ),
            ));
            return None;
        }
    };
    let windows_node = match (f.get("window"), f.get("windows")) {
        (Some(n), None) | (None, Some(n)) => n,
        (Some(_), Some(n)) => {
            problems.push(Diagnostic::new(&n.loc, "give either `window` or `windows`, not both"));
            return None;
        }
        (None, None) => {
            problems.push(Diagnostic::new(
                &node.loc,
                format!("aggregation `{name}` has no `windows`: e.g. `windows: [1h, 1d, 7d]` or `window: lifetime`"),
            ));
            return None;
        }
    };
    let description = f.string("description", problems);
    let mut out = Vec::new();
    let items = match &windows_node.value {
        Value::Seq(items) => items.iter().collect(),
        _ => vec![windows_node],
    };
    for item in items {
        let text = item.as_str().unwrap_or_default();
        let window = if text == "lifetime" {
            Window::Lifetime
        } else {
            match text.parse::<Duration>() {
                Ok(d) if d.seconds() > 0 => Window::Last(d),
                Ok(_) => {
                    problems.push(Diagnostic::new(&item.loc, "a window must be positive"));
                    continue;
                }
                Err(e) => {
                    problems.push(Diagnostic::new(
                        &item.loc,
                        format!("invalid window `{text}`: {} (e.g. 5m, 1h, 7d, 30d or lifetime)", e.0),
                    ));
                    continue;
                }
            }
        };
        out.push(Feature {
            name: format!("{name}_{window}"),
            ty,
            expr: None,
            contract: Contract::default(),
            description: description.clone(),
            aggregation: Some(Aggregation {
                function,
                expr: expr.clone(),
                window,
                filter: filter.clone(),
            }),
            loc: key.loc.clone(),
            expr_loc: expr_loc.clone(),
        });
    }
    Some(out)
}

fn on_demand_view(
    name: String,
    node: &Node,
    problems: &mut Diagnostics,
    broken: &mut Vec<String>,
) -> Option<OnDemandView> {
    let fields = &["request", "features", "tags", "owner", "description"];
    let f = Fields::new(node, &format!("on-demand view `{name}`"), fields, problems)?;
    let mut request = Vec::new();
    if let Some(req) = f.get("request") {
        for (k, v) in expect_map(req, "request", problems).unwrap_or_default() {
            let Some(field) = self::name(k, "request field", problems) else {
                continue;
            };
            if let Some(ty) = feature_type(v, problems) {
                request.push(RequestField { name: field, ty });
            }
        }
    }
    let tags = f.get("tags").map(|n| tags(n, problems)).unwrap_or_default();
    let owner = f.string("owner", problems);
    let description = f.string("description", problems);
    let features = features(&name, f.get("features"), &node.loc, true, problems, broken);
    Some(OnDemandView {
        name,
        request,
        features,
        tags,
        owner,
        description,
        loc: node.loc.clone(),
    })
}

fn feature_service(name: String, node: &Node, problems: &mut Diagnostics) -> Option<FeatureService> {
    // Short form: a list of refs. Long form: a mapping with `features` and metadata.
    let (list, tags, owner, description, monitoring) = match &node.value {
        Value::Seq(_) => (Some(node), BTreeMap::new(), None, None, None),
        _ => {
            let f = Fields::new(
                node,
                &format!("feature service `{name}`"),
                &["features", "tags", "owner", "description", "monitoring"],
                problems,
            )?;
            let tags = f.get("tags").map(|n| tags(n, problems)).unwrap_or_default();
            (
                f.get("features"),
                tags,
                f.string("owner", problems),
                f.string("description", problems),
                f.get("monitoring").map(|n| monitoring(n, problems)),
            )
        }
    };
    let mut features = Vec::new();
    match list.map(|n| (n, &n.value)) {
        Some((n, Value::Seq(items))) => {
            if items.is_empty() {
                problems.push(Diagnostic::new(
                    &n.loc,
                    format!("feature service `{name}` lists no features"),
                ));
            }
            for item in items {
                let text = item.as_str().unwrap_or_default();
                match FeatureRef::parse(text, &item.loc) {
                    Some(r) => features.push(r),
                    None => problems.push(Diagnostic::new(
                        &item.loc,
                        format!("expected `view:feature` or `view:*`, found `{text}`"),
                    )),
                }
            }
        }
        Some((n, _)) => problems.push(Diagnostic::new(
            &n.loc,
            format!(
                "`features` of feature service `{name}` must be a list of `view:feature`, found {}",
                n.kind()
            ),
        )),
        None => problems.push(Diagnostic::new(
            &node.loc,
            format!("feature service `{name}` has no `features`"),
        )),
    }
    Some(FeatureService {
        name,
        features,
        tags,
        owner,
        description,
        monitoring,
        loc: node.loc.clone(),
    })
}

/// A service's drift thresholds: `monitoring: { psi: 0.2, null_rate: 0.05, min_values: 100 }`.
fn monitoring(node: &Node, problems: &mut Diagnostics) -> Monitoring {
    let Some(f) = Fields::new(node, "monitoring", &["psi", "null_rate", "min_values"], problems) else {
        return Monitoring::default();
    };
    let number = |key: &str, upto: f64, problems: &mut Diagnostics| {
        let n = f.get(key)?;
        match n.as_str().map(str::parse::<f64>) {
            Some(Ok(x)) if x.is_finite() && (0.0..=upto).contains(&x) => Some(x),
            _ => {
                problems.push(Diagnostic::new(
                    &n.loc,
                    format!(
                        "monitoring `{key}` must be a number from 0 to {upto}, found {}",
                        describe(n)
                    ),
                ));
                None
            }
        }
    };
    let psi = number("psi", f64::MAX, problems);
    let null_rate = number("null_rate", 1.0, problems);
    let min_values = f
        .get("min_values")
        .and_then(|n| match n.as_str().map(str::parse::<u64>) {
            Some(Ok(x)) => Some(x),
            _ => {
                problems.push(Diagnostic::new(
                    &n.loc,
                    format!("monitoring `min_values` must be a whole number, found {}", describe(n)),
                ));
                None
            }
        });
    Monitoring {
        psi,
        null_rate,
        min_values,
    }
}

fn features(
    view: &str,
    node: Option<&Node>,
    view_loc: &Loc,
    on_demand: bool,
    problems: &mut Diagnostics,
    broken: &mut Vec<String>,
) -> Vec<Feature> {
    let Some(node) = node else {
        problems.push(Diagnostic::new(view_loc, format!("view `{view}` has no `features`")));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, v) in expect_map(node, "features", problems).unwrap_or_default() {
        let Some(name) = self::name(k, "feature name", problems) else {
            continue;
        };
        match feature(name.clone(), k, v, on_demand, problems) {
            Some(feature) => out.push(feature),
            None => broken.push(format!("feature:{view}.{name}")),
        }
    }
    if out.is_empty() && node.as_map().is_some_and(|m| m.is_empty()) {
        problems.push(Diagnostic::new(
            &node.loc,
            format!("view `{view}` declares no features"),
        ));
    }
    out
}

fn feature(name: String, key: &Node, node: &Node, on_demand: bool, problems: &mut Diagnostics) -> Option<Feature> {
    // Short form `conv_rate: float32`.
    if node.as_str().is_some() {
        if on_demand {
            problems.push(Diagnostic::new(
                &node.loc,
                format!("on-demand feature `{name}` needs an `expr`: write `{name}: {{ type: ..., expr: \"...\" }}`"),
            ));
            return None;
        }
        let ty = feature_type(node, problems)?;
        return Some(Feature {
            name,
            ty,
            expr: None,
            contract: Contract::default(),
            description: None,
            aggregation: None,
            loc: key.loc.clone(),
            expr_loc: node.loc.clone(),
        });
    }
    let f = Fields::new(
        node,
        &format!("feature `{name}`"),
        &["type", "expr", "contract", "description"],
        problems,
    )?;
    let ty = match f.get("type") {
        Some(n) => feature_type(n, problems),
        None => {
            problems.push(Diagnostic::new(
                &node.loc,
                format!("feature `{name}` has no `type`: expected one of {}", type_list()),
            ));
            None
        }
    };
    let expr = f.string("expr", problems);
    let expr_loc = f.get("expr").map_or_else(|| key.loc.clone(), |n| n.loc.clone());
    if on_demand && expr.is_none() {
        problems.push(Diagnostic::new(
            &node.loc,
            format!("on-demand feature `{name}` needs an `expr`"),
        ));
    }
    let contract = f.get("contract").map(|n| contract(n, problems)).unwrap_or_default();
    let description = f.string("description", problems);
    Some(Feature {
        name,
        ty: ty?,
        expr,
        contract,
        description,
        aggregation: None,
        loc: key.loc.clone(),
        expr_loc,
    })
}

fn contract(node: &Node, problems: &mut Diagnostics) -> Contract {
    let Some(f) = Fields::new(node, "contract", &["nullable", "min", "max", "allowed"], problems) else {
        return Contract::default();
    };
    let number = |key: &str, problems: &mut Diagnostics| {
        let n = f.get(key)?;
        match n.as_str().map(str::parse::<f64>) {
            Some(Ok(x)) if x.is_finite() => Some(x),
            _ => {
                problems.push(Diagnostic::new(
                    &n.loc,
                    format!("contract `{key}` must be a finite number, found {}", describe(n)),
                ));
                None
            }
        }
    };
    let min = number("min", problems);
    let max = number("max", problems);
    let allowed = f.get("allowed").map(|n| match &n.value {
        Value::Seq(items) => items.iter().filter_map(|item| literal(item, problems)).collect(),
        _ => {
            problems.push(Diagnostic::new(
                &n.loc,
                format!("contract `allowed` must be a list of values, found {}", n.kind()),
            ));
            Vec::new()
        }
    });
    Contract {
        nullable: f.bool("nullable", problems).unwrap_or(true),
        min,
        max,
        allowed,
    }
}

fn literal(node: &Node, problems: &mut Diagnostics) -> Option<Literal> {
    match &node.value {
        Value::Scalar { text, quoted: true } => Some(Literal::String(text.clone())),
        Value::Scalar { text, quoted: false } => Some(match text.as_str() {
            "true" => Literal::Bool(true),
            "false" => Literal::Bool(false),
            t => match (t.parse::<i64>(), t.parse::<f64>()) {
                (Ok(i), _) => Literal::Int(i),
                (_, Ok(x)) => Literal::Float(x),
                _ => Literal::String(text.clone()),
            },
        }),
        _ => {
            problems.push(Diagnostic::new(
                &node.loc,
                format!("an allowed value must be a scalar, found {}", node.kind()),
            ));
            None
        }
    }
}

fn duration(node: &Node, problems: &mut Diagnostics) -> Option<Duration> {
    let text = node.as_str().unwrap_or_default();
    match text.parse::<Duration>() {
        Ok(d) if d.seconds() == 0 => {
            problems.push(Diagnostic::new(
                &node.loc,
                "ttl must be positive; omit `ttl` for no lower bound",
            ));
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            problems.push(Diagnostic::new(
                &node.loc,
                format!("invalid duration `{text}`: {} (e.g. 90s, 15m, 2h, 7d)", e.0),
            ));
            None
        }
    }
}

fn type_list() -> String {
    FeatureType::ALL.map(FeatureType::name).join(", ")
}

fn feature_type(node: &Node, problems: &mut Diagnostics) -> Option<FeatureType> {
    parse_enum::<FeatureType>(node, "type", FeatureType::ALL.map(FeatureType::name), problems)
}

fn parse_enum<T: std::str::FromStr>(
    node: &Node,
    what: &str,
    names: impl AsRef<[&'static str]>,
    problems: &mut Diagnostics,
) -> Option<T> {
    parse_enum_with(node, what, names.as_ref(), problems, |s| s.parse().ok())
}

fn parse_enum_with<T>(
    node: &Node,
    what: &str,
    names: &[&str],
    problems: &mut Diagnostics,
    parse: impl Fn(&str) -> Option<T>,
) -> Option<T> {
    let text = node.as_str().unwrap_or_default();
    let parsed = parse(text);
    if parsed.is_none() {
        problems.push(
            Diagnostic::new(
                &node.loc,
                format!(
                    "unsupported {what} {}: expected one of {}",
                    describe(node),
                    names.join(", ")
                ),
            )
            .suggest(text, names.iter().copied()),
        );
    }
    parsed
}

fn tags(node: &Node, problems: &mut Diagnostics) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in expect_map(node, "tags", problems).unwrap_or_default() {
        match (k.as_str(), v.as_str()) {
            (Some(k), Some(v)) => {
                out.insert(k.to_string(), v.to_string());
            }
            _ => problems.push(Diagnostic::new(
                &v.loc,
                format!("tag values must be scalars, found {}", v.kind()),
            )),
        }
    }
    out
}

/// A single name, or a list of names (`entity: driver` / `entity: [driver, customer]`).
fn names_or_list(node: &Node, what: &str, problems: &mut Diagnostics) -> Vec<String> {
    match &node.value {
        Value::Seq(items) => items.iter().filter_map(|n| name(n, what, problems)).collect(),
        _ => name(node, what, problems).into_iter().collect(),
    }
}

/// Whether `text` is a name definitions take (every entity, source, view, feature, key and
/// column name is one): usable as a SQL identifier and a column name, `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A name usable as a SQL identifier and a column name: `[A-Za-z_][A-Za-z0-9_]*`.
fn name(node: &Node, what: &str, problems: &mut Diagnostics) -> Option<String> {
    let text = match node.as_str() {
        Some(t) => t,
        None => {
            problems.push(Diagnostic::new(
                &node.loc,
                format!("expected a {what}, found {}", node.kind()),
            ));
            return None;
        }
    };
    if !is_name(text) {
        problems.push(Diagnostic::new(
            &node.loc,
            format!("invalid {what} `{text}`: use letters, digits and `_`, not starting with a digit"),
        ));
        return None;
    }
    Some(text.to_string())
}

fn expect_map<'a>(node: &'a Node, what: &str, problems: &mut Diagnostics) -> Option<&'a [(Node, Node)]> {
    if node.is_null() {
        return Some(&[]);
    }
    let map = node.as_map();
    if map.is_none() {
        problems.push(Diagnostic::new(
            &node.loc,
            format!("`{what}` must be a mapping, found {}", node.kind()),
        ));
    }
    map
}

fn describe(node: &Node) -> String {
    match node.as_str() {
        Some(t) => format!("`{t}`"),
        None => node.kind().to_string(),
    }
}

/// The fields of one mapping, with unknown ones reported (and a near known name suggested).
struct Fields<'a> {
    entries: &'a [(Node, Node)],
}

impl<'a> Fields<'a> {
    fn new(node: &'a Node, what: &str, allowed: &[&str], problems: &mut Diagnostics) -> Option<Self> {
        let Some(entries) = node.as_map() else {
            problems.push(Diagnostic::new(
                &node.loc,
                format!("{what} must be a mapping, found {}", describe(node)),
            ));
            return None;
        };
        for (k, _) in entries {
            let key = k.as_str().unwrap_or_default();
            if !allowed.contains(&key) {
                problems.push(
                    Diagnostic::new(
                        &k.loc,
                        format!(
                            "unknown field `{key}` in {what}: expected one of {}",
                            allowed.join(", ")
                        ),
                    )
                    .suggest(key, allowed.iter().copied()),
                );
            }
        }
        Some(Fields { entries })
    }

    /// The field's value; an explicitly empty value counts as absent.
    fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
            .filter(|v| !v.is_null())
    }

    fn string(&self, key: &str, problems: &mut Diagnostics) -> Option<String> {
        let node = self.get(key)?;
        match node.as_str() {
            Some(t) => Some(t.to_string()),
            None => {
                problems.push(Diagnostic::new(
                    &node.loc,
                    format!("`{key}` must be text, found {}", node.kind()),
                ));
                None
            }
        }
    }

    fn bool(&self, key: &str, problems: &mut Diagnostics) -> Option<bool> {
        let node = self.get(key)?;
        match &node.value {
            Value::Scalar { text, quoted: false } if text == "true" => Some(true),
            Value::Scalar { text, quoted: false } if text == "false" => Some(false),
            _ => {
                problems.push(Diagnostic::new(
                    &node.loc,
                    format!("`{key}` must be true or false, found {}", describe(node)),
                ));
                None
            }
        }
    }
}
