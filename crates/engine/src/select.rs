//! A view's select list: the one projection of its source rows that every path runs.

use std::collections::BTreeSet;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::prelude::col;
use skewless_defs::{Definitions, Diagnostics, FeatureView};

use crate::columns;
use crate::compile::compile_view;

/// The type event and availability times are computed in: UTC instants in µs.
pub fn instant_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// Source column `name` as a UTC instant in µs (event and availability times).
pub fn instant_column(name: &str) -> datafusion::logical_expr::Expr {
    datafusion::logical_expr::cast(col(format!("\"{name}\"")), instant_type())
}

/// The columns a view's rows become, as expressions over its source's columns, and its
/// contract violation. The one select list of a view: jobs run it in DataFusion plans, pushes
/// evaluate it row batch by row batch, so both compute a pushed row's features, and judge its
/// contracts, the same way.
#[derive(Debug, Clone)]
pub struct ViewSelect {
    /// `[__k.., __ts, __created?, features..]`: keys cast to their entity types, times to UTC
    /// instants in µs, features as the engine compiles them (only those asked for); with
    /// `on_violation: null`, a feature that breaks its contract is NULL.
    pub columns: Vec<datafusion::logical_expr::Expr>,
    /// Why a row breaks the view's contracts (all of its features', asked for or not: which
    /// rows count must not depend on which features a job asks for), or NULL; `None` when no
    /// feature has a contract.
    pub violation: Option<datafusion::logical_expr::Expr>,
}

pub fn view_select(
    defs: &Definitions,
    view: &FeatureView,
    source: &skewless_defs::Source,
    schema: &datafusion::arrow::datatypes::Schema,
    features: Option<&BTreeSet<String>>,
) -> Result<ViewSelect, Diagnostics> {
    let compiled = compile_view(view, schema)?;
    let mut columns = Vec::new();
    for (i, key) in defs.view_keys(view).iter().enumerate() {
        columns.push(
            datafusion::logical_expr::cast(
                col(format!("\"{}\"", key.name)),
                skewless_sources::files::key_arrow_type(key.ty),
            )
            .alias(columns::key(i)),
        );
    }
    columns.push(instant_column(&source.timestamp).alias(columns::EVENT_TIME));
    if let Some(c) = &source.created {
        columns.push(instant_column(c).alias(columns::CREATED));
    }
    let violation = crate::contracts::violation(view, &compiled);
    columns.extend(
        compiled
            .iter()
            .filter(|f| features.is_none_or(|wanted| wanted.contains(&f.name)))
            .map(|f| match view.on_violation {
                skewless_defs::OnViolation::Null => crate::contracts::nulled(view, f),
                _ => f.expr.clone(),
            }),
    );
    Ok(ViewSelect { columns, violation })
}
