//! Merging per-file definitions and checking everything that needs more than one file.
//!
//! Checks that need the data (column types, expression types, key types of sources) live
//! in the `engine` crate; everything here is decided from the definitions alone.

use std::collections::{BTreeMap, HashMap};

use crate::definitions::Definitions;
use crate::diagnostic::{Diagnostic, Diagnostics, Loc};
use crate::expr;
use crate::model::*;
use crate::parse::FileDefs;

pub const DEFAULT_PROJECT: &str = "default";

/// Merges files (in the given order) into one set and validates it.
pub fn merge_and_validate(files: Vec<FileDefs>, text_hash: String, problems: &mut Diagnostics) -> Definitions {
    let mut defs = Definitions {
        project: DEFAULT_PROJECT.to_string(),
        entities: BTreeMap::new(),
        sources: BTreeMap::new(),
        feature_views: BTreeMap::new(),
        on_demand_views: BTreeMap::new(),
        feature_services: BTreeMap::new(),
        text_hash,
    };
    let mut project_loc: Option<Loc> = None;
    let mut broken: Vec<String> = Vec::new();
    let mut view_locs: HashMap<String, Loc> = HashMap::new();
    for file in files {
        broken.extend(file.broken);
        if let Some((name, loc)) = file.project {
            match &project_loc {
                Some(first) if defs.project != name => problems.push(Diagnostic::new(
                    &loc,
                    format!(
                        "project `{name}` conflicts with project `{}` declared at {first}",
                        defs.project
                    ),
                )),
                _ => {
                    defs.project = name;
                    project_loc = Some(loc);
                }
            }
        }
        for e in file.entities {
            insert_unique(&mut defs.entities, e.name.clone(), e.loc.clone(), e, "entity", problems);
        }
        for s in file.sources {
            insert_unique(&mut defs.sources, s.name.clone(), s.loc.clone(), s, "source", problems);
        }
        for v in file.feature_views {
            if claim_view_name(&mut view_locs, &v.name, &v.loc, problems) {
                defs.feature_views.insert(v.name.clone(), v);
            }
        }
        for v in file.on_demand_views {
            if claim_view_name(&mut view_locs, &v.name, &v.loc, problems) {
                defs.on_demand_views.insert(v.name.clone(), v);
            }
        }
        for s in file.feature_services {
            insert_unique(
                &mut defs.feature_services,
                s.name.clone(),
                s.loc.clone(),
                s,
                "feature service",
                problems,
            );
        }
    }
    // A name that failed to parse was reported once; references to it are not reported again.
    let known_broken = Broken(broken);
    check_entities(&defs, problems);
    for view in defs.feature_views.values() {
        check_feature_view(&defs, view, &known_broken, problems);
    }
    for view in defs.on_demand_views.values() {
        check_on_demand_view(&defs, view, &known_broken, problems);
    }
    check_on_demand_cycles(&defs, problems);
    for service in defs.feature_services.values() {
        check_service(&defs, service, &known_broken, problems);
    }
    defs
}

fn insert_unique<T>(
    map: &mut BTreeMap<String, T>,
    name: String,
    loc: Loc,
    item: T,
    what: &str,
    problems: &mut Diagnostics,
) where
    T: HasLoc,
{
    if let Some(first) = map.get(&name) {
        problems.push(Diagnostic::new(
            &loc,
            format!("duplicate {what} `{name}` (first defined at {})", first.loc()),
        ));
    } else {
        map.insert(name, item);
    }
}

fn claim_view_name(seen: &mut HashMap<String, Loc>, name: &str, loc: &Loc, problems: &mut Diagnostics) -> bool {
    if let Some(first) = seen.get(name) {
        problems.push(Diagnostic::new(
            loc,
            format!(
                "duplicate view `{name}` (first defined at {first}); feature views and on-demand views share names"
            ),
        ));
        return false;
    }
    seen.insert(name.to_string(), loc.clone());
    true
}

struct Broken(Vec<String>);

impl Broken {
    fn entity(&self, name: &str) -> bool {
        self.0.iter().any(|b| b.strip_prefix("entity:") == Some(name))
    }
    fn source(&self, name: &str) -> bool {
        self.0.iter().any(|b| b.strip_prefix("source:") == Some(name))
    }
    fn view(&self, name: &str) -> bool {
        self.0.iter().any(|b| b.strip_prefix("view:") == Some(name))
    }
    fn feature(&self, view: &str, feature: &str) -> bool {
        self.view(view)
            || self
                .0
                .iter()
                .any(|b| b.strip_prefix("feature:") == Some(&format!("{view}.{feature}")))
    }
}

trait HasLoc {
    fn loc(&self) -> &Loc;
}
impl HasLoc for Entity {
    fn loc(&self) -> &Loc {
        &self.loc
    }
}
impl HasLoc for Source {
    fn loc(&self) -> &Loc {
        &self.loc
    }
}
impl HasLoc for FeatureService {
    fn loc(&self) -> &Loc {
        &self.loc
    }
}

/// A key name means one column in a spine, so it must have one type across entities.
fn check_entities(defs: &Definitions, problems: &mut Diagnostics) {
    let mut seen: BTreeMap<&str, (&Entity, KeyType)> = BTreeMap::new();
    for entity in defs.entities.values() {
        for key in &entity.keys {
            match seen.get(key.name.as_str()) {
                Some((other, ty)) if *ty != key.ty => problems.push(Diagnostic::new(
                    &entity.loc,
                    format!(
                        "key `{}` of entity `{}` is {} but entity `{}` declares it {}; a key name must have one type",
                        key.name, entity.name, key.ty, other.name, ty
                    ),
                )),
                Some(_) => {}
                None => {
                    seen.insert(&key.name, (entity, key.ty));
                }
            }
        }
    }
}

fn check_feature_view(defs: &Definitions, view: &FeatureView, broken: &Broken, problems: &mut Diagnostics) {
    for entity in &view.entities {
        if !defs.entities.contains_key(entity) && !broken.entity(entity) {
            problems.push(
                Diagnostic::new(
                    &view.entities_loc,
                    format!("feature view `{}` names unknown entity `{entity}`", view.name),
                )
                .suggest(entity, defs.entities.keys().map(String::as_str)),
            );
        }
    }
    match defs.sources.get(&view.source) {
        None if broken.source(&view.source) => {}
        None => problems.push(
            Diagnostic::new(&view.source_loc, format!("feature view `{}` names unknown source `{}`", view.name, view.source))
                .suggest(&view.source, defs.sources.keys().map(String::as_str)),
        ),
        Some(source) if view.as_of == AsOf::Available && source.created.is_none() => problems.push(Diagnostic::new(
            &view.source_loc,
            format!(
                "feature view `{}` has `as_of: available` but source `{}` declares no `created` column to say when rows landed",
                view.name, source.name
            ),
        )),
        Some(_) => {}
    }
    if view.entities.is_empty() {
        problems.push(Diagnostic::new(
            &view.entities_loc,
            format!("feature view `{}` needs at least one entity", view.name),
        ));
    }
    let keys = defs.view_keys(view);
    for (i, key) in keys.iter().enumerate() {
        if keys[..i].iter().any(|k| k.name == key.name) {
            problems.push(Diagnostic::new(
                &view.entities_loc,
                format!(
                    "feature view `{}` gets join key `{}` from two entities (or one entity twice)",
                    view.name, key.name
                ),
            ));
        }
    }
    for f in &view.features {
        if keys.iter().any(|k| k.name == f.name) {
            problems.push(Diagnostic::new(
                &f.loc,
                format!(
                    "feature `{}` has the name of a join key of view `{}`",
                    f.name, view.name
                ),
            ));
        }
        if let Some(sql) = &f.expr
            && let Err(e) = expr::parse(sql)
        {
            problems.push(Diagnostic::new(
                &f.expr_loc,
                format!("expression of feature `{}.{}` does not parse: {e}", view.name, f.name),
            ));
        }
        check_contract(f, problems);
    }
    if let Some(tile) = view.tile {
        check_aggregations(view, tile, problems);
    }
}

/// What an aggregated view must satisfy without looking at data: no ttl (windows bound the
/// rows), windows that are whole multiples of the tile, expressions that parse, and unique
/// feature names after the windows are spelled out. Input types are checked against the
/// source's schema (`skewless_engine::check`).
fn check_aggregations(view: &FeatureView, tile: Tile, problems: &mut Diagnostics) {
    if let Some(ttl) = view.ttl {
        problems.push(Diagnostic::new(
            &view.loc,
            format!(
                "feature view `{}` has aggregations and a `ttl` ({ttl}): an aggregate's window says which rows count; \
remove `ttl`",
                view.name
            ),
        ));
    }
    let mut seen: HashMap<&str, &Loc> = HashMap::new();
    for f in &view.features {
        let Some(agg) = &f.aggregation else { continue };
        if let Some(first) = seen.insert(&f.name, &f.loc) {
            problems.push(Diagnostic::new(
                &f.loc,
                format!(
                    "aggregation feature `{}.{}` is declared twice (first at line {})",
                    view.name, f.name, first.line
                ),
            ));
        }
        if let (Tile::Every(tile), Window::Last(window)) = (tile, agg.window)
            && window.seconds() % tile.seconds() != 0
        {
            problems.push(Diagnostic::new(
                &f.loc,
                format!(
                    "window {window} of `{}.{}` is not a whole number of tiles ({tile}): a tiled window is made of \
whole tiles; pick a window that is a multiple of the tile, or set the view's `tile` to one that divides it",
                    view.name, f.name
                ),
            ));
        }
        for (what, sql) in [("expression", &agg.expr), ("`where`", &agg.filter)] {
            if let Some(sql) = sql
                && let Err(e) = expr::parse(sql)
            {
                problems.push(Diagnostic::new(
                    &f.expr_loc,
                    format!("{what} of aggregation `{}.{}` does not parse: {e}", view.name, f.name),
                ));
            }
        }
    }
}

fn check_contract(f: &Feature, problems: &mut Diagnostics) {
    let c = &f.contract;
    if (c.min.is_some() || c.max.is_some()) && !f.ty.is_numeric() {
        problems.push(Diagnostic::new(
            &f.loc,
            format!(
                "contract of feature `{}` sets min/max but its type {} is not numeric",
                f.name, f.ty
            ),
        ));
    }
    if let (Some(min), Some(max)) = (c.min, c.max)
        && min > max
    {
        problems.push(Diagnostic::new(
            &f.loc,
            format!("contract of feature `{}` has min {min} greater than max {max}", f.name),
        ));
    }
    for value in c.allowed.iter().flatten() {
        let fits = match (value, f.ty) {
            (Literal::Bool(_), FeatureType::Bool) | (Literal::String(_), FeatureType::String) => true,
            (Literal::Int(_), t) => t.is_numeric(),
            (Literal::Float(_), FeatureType::Float32 | FeatureType::Float64) => true,
            _ => false,
        };
        if !fits {
            problems.push(Diagnostic::new(
                &f.loc,
                format!("allowed value {value} of feature `{}` is not of type {}", f.name, f.ty),
            ));
        }
    }
}

fn check_on_demand_view(defs: &Definitions, view: &OnDemandView, broken: &Broken, problems: &mut Diagnostics) {
    for f in &view.features {
        if view.request.iter().any(|r| r.name == f.name) {
            problems.push(Diagnostic::new(
                &f.loc,
                format!(
                    "feature `{}` has the name of a request field of `{}`",
                    f.name, view.name
                ),
            ));
        }
        let Some(sql) = &f.expr else { continue };
        let parsed = match expr::parse(sql) {
            Ok(p) => p,
            Err(e) => {
                problems.push(Diagnostic::new(
                    &f.expr_loc,
                    format!("expression of feature `{}.{}` does not parse: {e}", view.name, f.name),
                ));
                continue;
            }
        };
        for parts in expr::references(&parsed) {
            if let [v, feature] = parts.as_slice()
                && broken.feature(v, feature)
            {
                continue;
            }
            if let Some(message) = on_demand_reference_problem(defs, view, &parts) {
                let name = parts.join(".");
                let candidates = reference_candidates(defs, view);
                problems.push(
                    Diagnostic::new(
                        &f.expr_loc,
                        format!("expression of feature `{}.{}` {message}", view.name, f.name),
                    )
                    .suggest(&name, candidates.iter().map(String::as_str)),
                );
            }
        }
    }
}

fn on_demand_reference_problem(defs: &Definitions, view: &OnDemandView, parts: &[String]) -> Option<String> {
    match parts {
        [field] if view.request.iter().any(|r| &r.name == field) => None,
        [field] => Some(format!(
            "reads `{field}`, which is not a request field of `{}`; declare it under `request` or read a view's feature as `view.feature`",
            view.name
        )),
        [v, _] if v == &view.name => Some(format!(
            "reads its own view `{v}`; compute from request fields and other views"
        )),
        [v, feature] => match defs.view_features(v) {
            None => Some(format!("reads unknown view `{v}`")),
            Some(fs) if !fs.iter().any(|f| &f.name == feature) => {
                Some(format!("reads unknown feature `{v}.{feature}`"))
            }
            Some(_) => None,
        },
        _ => Some(format!(
            "reads `{}`: expected a request field or `view.feature`",
            parts.join(".")
        )),
    }
}

fn reference_candidates(defs: &Definitions, view: &OnDemandView) -> Vec<String> {
    let mut out: Vec<String> = view.request.iter().map(|r| r.name.clone()).collect();
    for (name, fv) in &defs.feature_views {
        out.extend(fv.features.iter().map(|f| format!("{name}.{}", f.name)));
    }
    for (name, odv) in &defs.on_demand_views {
        if name != &view.name {
            out.extend(odv.features.iter().map(|f| format!("{name}.{}", f.name)));
        }
    }
    out
}

fn check_on_demand_cycles(defs: &Definitions, problems: &mut Diagnostics) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit(
        defs: &Definitions,
        name: &str,
        marks: &mut HashMap<String, Mark>,
        path: &mut Vec<String>,
        problems: &mut Diagnostics,
    ) {
        match marks.get(name) {
            Some(Mark::Done) => return,
            Some(Mark::Visiting) => {
                let start = path.iter().position(|p| p == name).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(name.to_string());
                if let Some(view) = defs.on_demand_views.get(name) {
                    problems.push(Diagnostic::new(
                        &view.loc,
                        format!("on-demand views read each other in a cycle: {}", cycle.join(" → ")),
                    ));
                }
                return;
            }
            None => {}
        }
        let Some(view) = defs.on_demand_views.get(name) else {
            return;
        };
        marks.insert(name.to_string(), Mark::Visiting);
        path.push(name.to_string());
        for dep in crate::on_demand_dependencies(defs, view) {
            visit(defs, &dep, marks, path, problems);
        }
        path.pop();
        marks.insert(name.to_string(), Mark::Done);
    }
    let mut marks = HashMap::new();
    for name in defs.on_demand_views.keys() {
        visit(defs, name, &mut marks, &mut Vec::new(), problems);
    }
}

fn check_service(defs: &Definitions, service: &FeatureService, broken: &Broken, problems: &mut Diagnostics) {
    // Names are listed only for a "did you mean": never per service, which made many
    // services over many views quadratic.
    let views = || {
        defs.feature_views
            .keys()
            .chain(defs.on_demand_views.keys())
            .map(String::as_str)
    };
    for r in &service.features {
        if broken.view(&r.view) || r.feature.as_ref().is_some_and(|f| broken.feature(&r.view, f)) {
            continue;
        }
        match (defs.view_features(&r.view), &r.feature) {
            (None, _) => problems.push(
                Diagnostic::new(
                    &r.loc,
                    format!("feature service `{}` names unknown view `{}`", service.name, r.view),
                )
                .suggest(&r.view, views()),
            ),
            (Some(fs), Some(name)) if !fs.iter().any(|f| &f.name == name) => problems.push(
                Diagnostic::new(
                    &r.loc,
                    format!("feature service `{}` names unknown feature `{r}`", service.name),
                )
                .suggest(name, fs.iter().map(|f| f.name.as_str())),
            ),
            _ => {}
        }
    }
    // A model reads a service's features by name: two of one name would hide one of them
    // (`output_name_clash`, the rule of every answer and training set).
    let Ok(features) = defs.resolve(&service.features) else {
        return;
    };
    if let Some(clash) = crate::output_name_clash(&features, false)
        && let Some(second) = service
            .features
            .iter()
            .find(|r| r.view == clash.second && r.feature.as_ref().is_none_or(|f| *f == clash.name))
    {
        problems.push(Diagnostic::new(
            &second.loc,
            format!(
                "feature service `{}` answers feature `{}` from both `{}` and `{}`: names in a service must be unique (list only one)",
                service.name, clash.name, clash.first, clash.second
            ),
        ));
    }
}
