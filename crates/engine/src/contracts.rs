//! Feature contracts as expressions, so every path enforces them by evaluating the same thing.
//!
//! For each feature with a contract, a *reason* expression: NULL when the value keeps the
//! contract, else a text saying which feature broke what, with the value. A view's
//! *violation* is the first reason of its features (in declared order). Training sets,
//! materialization and push all add it to the view's select list and act on it as the view's
//! `on_violation` says; no path has its own check, so a contract cannot be a source of skew.
//!
//! Semantics: `nullable: false` breaks on NULL. `min`/`max` compare numerically (as float64,
//! with -0 equal to 0); NaN breaks any `min` or `max`, since it lies in no range. `allowed`
//! compares numbers numerically and strings and booleans exactly. A NULL value keeps `min`,
//! `max` and `allowed` (only `nullable` speaks about NULL).

use datafusion::arrow::datatypes::DataType;
use datafusion::functions::expr_fn::{concat, isnan};
use std::ops::Not;

use datafusion::logical_expr::{Case, Expr, cast, lit};
use skewless_defs::{FeatureType, FeatureView, Literal};

use crate::compile::CompiledFeature;

/// The violation of `view`'s contracts for a row, or `None` when no feature has a contract.
/// `compiled` are the view's features as [`crate::compile_view`] made them (any subset).
pub fn violation(view: &FeatureView, compiled: &[CompiledFeature]) -> Option<Expr> {
    // The first non-null reason, as a CASE (what `coalesce` means, in a form physical
    // evaluation takes without the logical simplifier).
    let branches: Vec<(Expr, Expr)> = compiled
        .iter()
        .filter_map(|c| reason(view, c))
        .map(|r| (r.clone().is_not_null(), r))
        .collect();
    case(branches)
}

/// `CASE WHEN w1 THEN t1 … END` (NULL when no branch holds); `None` without branches.
fn case(branches: Vec<(Expr, Expr)>) -> Option<Expr> {
    if branches.is_empty() {
        return None;
    }
    let when_then = branches.into_iter().map(|(w, t)| (Box::new(w), Box::new(t))).collect();
    Some(Expr::Case(Case::new(None, when_then, None)))
}

/// `compiled` with its value replaced by NULL where it breaks its contract (`on_violation: null`).
pub fn nulled(view: &FeatureView, compiled: &CompiledFeature) -> Expr {
    match reason(view, compiled).and_then(|reason| case(vec![(reason.is_null(), value(compiled))])) {
        Some(kept) => kept.alias(&compiled.name),
        None => compiled.expr.clone(),
    }
}

fn value(compiled: &CompiledFeature) -> Expr {
    compiled.expr.clone().unalias()
}

/// Why `compiled`'s value breaks its contract, or NULL; `None` without a contract.
fn reason(view: &FeatureView, compiled: &CompiledFeature) -> Option<Expr> {
    if skewless_defs::planted::active(skewless_defs::planted::Fault::ContractsIgnored) {
        return None;
    }
    let feature = view.features.iter().find(|f| f.name == compiled.name)?;
    let contract = &feature.contract;
    if contract.is_empty() {
        return None;
    }
    let e = value(compiled);
    let shown = cast(e.clone(), DataType::Utf8);
    let said = |what: String| {
        concat(vec![
            lit(format!("feature `{}` = ", compiled.name)),
            shown.clone(),
            lit(what),
        ])
    };
    // Numbers compare as float64, -0 as 0 (adding +0 turns -0 into +0).
    let number = || cast(e.clone(), DataType::Float64) + lit(0.0f64);
    let mut cases: Vec<(Expr, Expr)> = Vec::new();
    if !contract.nullable {
        cases.push((
            e.clone().is_null(),
            lit(format!("feature `{}` is null (nullable: false)", compiled.name)),
        ));
    }
    if contract.min.is_some() || contract.max.is_some() {
        let mut inside = isnan(number()).not();
        if let Some(min) = contract.min {
            inside = inside.and(number().gt_eq(lit(min)));
        }
        if let Some(max) = contract.max {
            inside = inside.and(number().lt_eq(lit(max)));
        }
        let range = match (contract.min, contract.max) {
            (Some(min), Some(max)) => format!(" is outside [{min}, {max}]"),
            (Some(min), None) => format!(" is below min {min} (or NaN)"),
            (None, Some(max)) => format!(" is above max {max} (or NaN)"),
            (None, None) => String::new(),
        };
        cases.push((e.clone().is_not_null().and(inside.not()), said(range)));
    }
    if let Some(allowed) = &contract.allowed {
        let numeric = feature.ty.is_numeric();
        let list: Vec<Expr> = allowed
            .iter()
            .map(|v| match (v, numeric) {
                (Literal::Int(i), true) => lit(*i as f64),
                (Literal::Float(x), _) => lit(*x),
                (Literal::Int(i), false) => lit(*i),
                (Literal::Bool(b), _) => lit(*b),
                (Literal::String(s), _) => lit(s.clone()),
            })
            .collect();
        let subject = if numeric || feature.ty == FeatureType::Timestamp {
            number()
        } else {
            e.clone()
        };
        let shown_list: Vec<String> = allowed.iter().map(ToString::to_string).collect();
        cases.push((
            e.clone().is_not_null().and(subject.in_list(list, true)),
            said(format!(" is not one of [{}]", shown_list.join(", "))),
        ));
    }
    case(cases)
}
