//! Definitions → DataFusion expressions, checked and cast to the declared types.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::common::tree_node::TreeNode;
use datafusion::common::{Column, DFSchema, TableReference};
use datafusion::logical_expr::{Expr, ExprSchemable, Volatility, cast, lit, when};
use datafusion::prelude::{SessionConfig, SessionContext};
use skewless_defs::{
    AggFunction, Aggregation, Definitions, Diagnostic, Diagnostics, Feature, FeatureType, FeatureView, OnDemandView,
    did_you_mean, expr as sql,
};

use crate::types::{arrow_type, fits};

/// A feature ready to evaluate: its expression yields exactly `arrow_type(ty)`, named `name`.
/// For an aggregated feature, the expression is its per-row *input* and `ty` the input's
/// type (`skewless_aggregates` folds the inputs into the feature).
#[derive(Debug, Clone)]
pub struct CompiledFeature {
    pub name: String,
    pub ty: FeatureType,
    pub expr: Expr,
}

/// The session every feature expression is planned in. Identifiers are taken as written
/// (no lower-casing), matching how names are written in the YAML and in the data.
pub fn session() -> SessionContext {
    SessionContext::new_with_config(config())
}

/// [`session`] with its memory pool capped at `bytes` ([`crate::memory::BoundedPool`]):
/// operators that would need more spill or fail with DataFusion's "resources exhausted"
/// error instead of exhausting the machine, and never hang.
pub fn session_with_memory_limit(bytes: usize) -> datafusion::error::Result<SessionContext> {
    let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
        .with_memory_pool(std::sync::Arc::new(crate::memory::BoundedPool::new(bytes)))
        .build_arc()?;
    Ok(SessionContext::new_with_config_rt(config(), runtime))
}

/// A physical expression for `expr` over `schema`, to evaluate batches outside a plan (pushes,
/// on-demand programs, `validate --data`). Lowered the way DataFusion lowers a query's
/// expressions: types coerced, then simplified, then planned. The simplifier also rewrites
/// functions that exist only in logical form (`coalesce`, `nvl`); planned without it they fail
/// at evaluation. So a pushed row is computed by the same expression a training set runs.
pub fn physical_expr(
    ctx: &SessionContext,
    expr: Expr,
    schema: &DFSchema,
) -> datafusion::error::Result<Arc<dyn datafusion::physical_expr::PhysicalExpr>> {
    let context = datafusion::logical_expr::simplify::SimplifyContext::builder()
        .with_schema(Arc::new(schema.clone()))
        .build();
    let simplifier = datafusion::optimizer::simplify_expressions::ExprSimplifier::new(context);
    let expr = simplifier.simplify(simplifier.coerce(expr, schema)?)?;
    ctx.create_physical_expr(expr, schema)
}

fn config() -> SessionConfig {
    let mut config = SessionConfig::new();
    config.options_mut().sql_parser.enable_ident_normalization = false;
    // Parquet leaves NaN out of float min/max statistics, and DataFusion 55 trusts them: a
    // column whose statistics say min = max (NaN aside) is read as that constant, so a NaN
    // feature value comes back as its neighbour's (apache/datafusion#24804, open). Sources are
    // read whole anyway (time filters aside), so no statistics are gathered from files.
    config.options_mut().execution.collect_statistics = false;
    config
}

/// Compiles every feature of a feature view against its source's schema.
pub fn compile_view(view: &FeatureView, source_schema: &Schema) -> Result<Vec<CompiledFeature>, Diagnostics> {
    let schema = match DFSchema::try_from(source_schema.clone()) {
        Ok(s) => s,
        Err(e) => {
            return Err(one(
                &view.loc,
                format!("source schema of view `{}` is unusable: {e}", view.name),
            ));
        }
    };
    let ctx = session();
    compile_all(
        &ctx,
        &view.name,
        &view.features,
        &schema,
        &format!("source `{}`", view.source),
    )
}

/// The input of an on-demand view: its request fields, unqualified, and the features it
/// reads from other views, qualified by view name (`driver_stats.conv_rate`).
pub fn on_demand_input_schema(defs: &Definitions, view: &OnDemandView) -> Result<DFSchema, String> {
    let mut fields: Vec<(Option<TableReference>, Arc<Field>)> = view
        .request
        .iter()
        .map(|r| (None, Arc::new(Field::new(&r.name, arrow_type(r.ty), true))))
        .collect();
    let mut read = BTreeSet::new();
    for f in &view.features {
        if let Ok(parsed) = sql::parse(f.expr_or_column()) {
            for parts in sql::references(&parsed) {
                if let [v, feature] = parts.as_slice() {
                    read.insert((v.clone(), feature.clone()));
                }
            }
        }
    }
    for (v, feature) in read {
        let ty = defs
            .view_features(&v)
            .and_then(|fs| fs.iter().find(|f| f.name == feature))
            .map(|f| f.ty);
        if let Some(ty) = ty {
            fields.push((
                Some(TableReference::bare(v)),
                Arc::new(Field::new(feature, arrow_type(ty), true)),
            ));
        }
    }
    DFSchema::new_with_metadata(fields, HashMap::new()).map_err(|e| e.strip_backtrace())
}

/// Compiles the features of an on-demand view over [`on_demand_input_schema`].
pub fn compile_on_demand(defs: &Definitions, view: &OnDemandView) -> Result<Vec<CompiledFeature>, Diagnostics> {
    let schema = on_demand_input_schema(defs, view).map_err(|e| {
        one(
            &view.loc,
            format!("inputs of on-demand view `{}` clash: {e}", view.name),
        )
    })?;
    compile_all(
        &session(),
        &view.name,
        &view.features,
        &schema,
        &format!("on-demand view `{}` inputs", view.name),
    )
}

fn compile_all(
    ctx: &SessionContext,
    view: &str,
    features: &[Feature],
    schema: &DFSchema,
    inputs: &str,
) -> Result<Vec<CompiledFeature>, Diagnostics> {
    let mut out = Vec::with_capacity(features.len());
    let mut problems = Diagnostics::default();
    for f in features {
        let compiled = match &f.aggregation {
            Some(agg) => compile_aggregation_input(ctx, f, agg, schema, inputs),
            None => compile_feature(ctx, f, schema, inputs).map(|expr| (expr, f.ty)),
        };
        match compiled {
            Ok((expr, ty)) => out.push(CompiledFeature {
                name: f.name.clone(),
                ty,
                expr,
            }),
            Err((message, hint)) => {
                let mut d = Diagnostic::new(&f.expr_loc, format!("feature `{view}.{}` {message}", f.name));
                d.did_you_mean = hint;
                problems.push(d);
            }
        }
    }
    if problems.is_empty() { Ok(out) } else { Err(problems) }
}

/// The message (completing "feature `v.f` …") and an optional suggestion.
type Problem = (String, Option<String>);

fn compile_feature(ctx: &SessionContext, f: &Feature, schema: &DFSchema, inputs: &str) -> Result<Expr, Problem> {
    let (expr, actual) = row_expr(ctx, &f.name, f.expr.as_deref(), schema, inputs)?;
    if !fits(&actual, f.ty) {
        return Err((
            format!(
                "yields {actual} but is declared {}; CAST it explicitly if the conversion is intended",
                f.ty
            ),
            None,
        ));
    }
    let target = arrow_type(f.ty);
    let expr = if actual == target { expr } else { cast(expr, target) };
    Ok(expr.alias(&f.name))
}

/// The input type of an aggregated feature: what its compiled expression yields, one value
/// per source row (NULL where the row does not count).
fn aggregation_input_type(f: &Feature) -> Option<FeatureType> {
    let agg = f.aggregation.as_ref()?;
    Some(match agg.function {
        AggFunction::Count => FeatureType::Bool,
        AggFunction::Sum | AggFunction::Mean | AggFunction::VarPop | AggFunction::StddevPop => FeatureType::Float64,
        AggFunction::Min | AggFunction::Max | AggFunction::First | AggFunction::Last => f.ty,
        // Decided by the expression's type at compile time; the declared type is int64.
        AggFunction::CountDistinct => return None,
    })
}

/// An aggregated feature's per-row input: its expression cast to what the function reads
/// (float64 for sum, mean, var and stddev; the declared type for min, max, first and last; a
/// TRUE per non-null value for count), NULL where `where` does not hold.
fn compile_aggregation_input(
    ctx: &SessionContext,
    f: &Feature,
    agg: &Aggregation,
    schema: &DFSchema,
    inputs: &str,
) -> Result<(Expr, FeatureType), Problem> {
    let (input, actual) = match &agg.expr {
        Some(text) => row_expr(ctx, &f.name, Some(text), schema, inputs)?,
        None => (lit(true), DataType::Boolean),
    };
    let function = agg.function;
    let input_ty = match function {
        AggFunction::Count => FeatureType::Bool,
        AggFunction::CountDistinct => match &actual {
            t if fits(t, FeatureType::Int64) => FeatureType::Int64,
            t if fits(t, FeatureType::String) => FeatureType::String,
            DataType::Boolean => FeatureType::Bool,
            t if crate::types::timestamp_fits(t) => FeatureType::Timestamp,
            t => {
                return Err((
                    format!(
                        "counts distinct values of {t}; count_distinct takes integers, strings, booleans or timestamps \
(float equality is too fragile to count on: CAST to an integer or a string first)"
                    ),
                    None,
                ));
            }
        },
        _ => {
            let ty = aggregation_input_type(f).unwrap_or(f.ty);
            if !fits(&actual, ty) {
                let wants = if ty == FeatureType::Float64 && function.fixed_type().is_some() {
                    format!("{function} needs a numeric input")
                } else {
                    format!("{function} keeps its input's type, and the feature is declared {ty}")
                };
                return Err((
                    format!("aggregates {actual}, but {wants}; CAST it if that is intended"),
                    None,
                ));
            }
            ty
        }
    };
    let typed = if function == AggFunction::Count {
        when(input.is_not_null(), lit(true))
            .end()
            .map_err(|e| (e.strip_backtrace(), None))?
    } else if actual == arrow_type(input_ty) {
        input
    } else {
        cast(input, arrow_type(input_ty))
    };
    let expr = match &agg.filter {
        None => typed,
        Some(text) => {
            let (condition, ty) = row_expr(ctx, &f.name, Some(text), schema, inputs)?;
            if ty != DataType::Boolean && ty != DataType::Null {
                return Err((format!("has a `where` that yields {ty}, not a boolean"), None));
            }
            when(condition, typed).end().map_err(|e| (e.strip_backtrace(), None))?
        }
    };
    Ok((expr.alias(&f.name), input_ty))
}

/// A row-level expression (`None`: the column `name`), checked: known columns, no aggregates
/// or subqueries, nothing time- or chance-dependent. Returns it with the type it yields.
fn row_expr(
    ctx: &SessionContext,
    name: &str,
    text: Option<&str>,
    schema: &DFSchema,
    inputs: &str,
) -> Result<(Expr, DataType), Problem> {
    // Names are checked before DataFusion plans the expression, for one uniform message.
    let names: Vec<String> = schema.columns().iter().map(|c| c.flat_name()).collect();
    let referenced: Vec<String> = match text {
        None => vec![name.to_string()],
        Some(text) => sql::parse(text)
            .map(|e| sql::references(&e).iter().map(|p| p.join(".")).collect())
            .unwrap_or_default(),
    };
    for name in referenced {
        if !names.contains(&name) {
            let hint = did_you_mean(&name, names.iter().map(String::as_str));
            let what = if text.is_none() {
                "reads column"
            } else {
                "reads unknown column"
            };
            return Err((format!("{what} `{name}`, which {inputs} does not have"), hint));
        }
    }
    let expr = match text {
        None => Expr::Column(Column::new_unqualified(name)),
        Some(text) => ctx
            .parse_sql_expr(text, schema)
            .map_err(|e| (format!("has an invalid expression: {}", e.strip_backtrace()), None))?,
    };
    let not_row_level = expr
        .exists(|e| {
            Ok(matches!(
                e,
                Expr::AggregateFunction(_)
                    | Expr::WindowFunction(_)
                    | Expr::ScalarSubquery(_)
                    | Expr::Exists(_)
                    | Expr::InSubquery(_)
            ))
        })
        .unwrap_or(false);
    if not_row_level {
        return Err((
            "is not a row-level expression: aggregates, window functions and subqueries are not allowed here".into(),
            None,
        ));
    }
    // Volatile (random()) and stable (now(), current_date) functions depend on when and where
    // they run: offline and online would compute different values for the same row.
    let time_or_chance = expr
        .exists(|e| Ok(matches!(e, Expr::ScalarFunction(f) if f.func.signature().volatility != Volatility::Immutable)))
        .unwrap_or(false);
    if time_or_chance {
        return Err((
            "calls a function whose result depends on when or where it runs (such as random() or now()): offline and online would compute different values".into(),
            None,
        ));
    }
    let actual = expr
        .get_type(schema)
        .map_err(|e| (format!("does not type-check: {}", e.strip_backtrace()), None))?;
    Ok((expr, actual))
}

fn one(loc: &skewless_defs::Loc, message: String) -> Diagnostics {
    Diagnostics(vec![Diagnostic::new(loc, message)])
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use datafusion::arrow::array::{Array, Float32Array, Float64Array, Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    use super::*;

    fn defs(text: &str) -> Definitions {
        skewless_defs::load_texts(&[(PathBuf::from("defs.yaml"), text.to_string())]).unwrap_or_else(|e| panic!("{e}"))
    }

    fn source_schema() -> Schema {
        Schema::new(vec![
            Field::new("driver_id", DataType::Int64, false),
            Field::new(
                "event_timestamp",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                false,
            ),
            Field::new("conv_rate", DataType::Float64, true),
            Field::new("avg_daily_trips", DataType::Int64, true),
            Field::new("city", DataType::Utf8, true),
        ])
    }

    const VIEW: &str = r#"
entities: { driver: { keys: { driver_id: int64 } } }
sources: { s: { path: s.parquet, timestamp: event_timestamp } }
feature_views:
  v:
    entity: driver
    source: s
    features:
      conv_rate: float32
      trips_per_hour: { type: float64, expr: "avg_daily_trips / 24.0" }
      upper_city: { type: string, expr: "upper(city)" }
on_demand_views:
  o:
    request: { distance_km: float64 }
    features:
      score: { type: float64, expr: "v.conv_rate * 10 - distance_km" }
"#;

    fn evaluate(features: &[CompiledFeature], schema: &DFSchema, batch: &RecordBatch) -> Vec<Arc<dyn Array>> {
        let ctx = session();
        features
            .iter()
            .map(|f| {
                let physical = physical_expr(&ctx, f.expr.clone(), schema).unwrap();
                physical.evaluate(batch).unwrap().into_array(batch.num_rows()).unwrap()
            })
            .collect()
    }

    /// Two source rows: drivers 1 and 2, conv_rate 0.5 and null, cities oslo and null.
    fn source_batch(schema: &Arc<Schema>, avg_daily_trips: Vec<Option<i64>>) -> RecordBatch {
        RecordBatch::try_new(
            Arc::clone(schema),
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(datafusion::arrow::array::TimestampMicrosecondArray::from(vec![0, 1])),
                Arc::new(Float64Array::from(vec![Some(0.5), None])),
                Arc::new(Int64Array::from(avg_daily_trips)),
                Arc::new(StringArray::from(vec![Some("oslo"), None])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn view_features_evaluate_to_declared_types() {
        let defs = defs(VIEW);
        let schema = Arc::new(source_schema());
        let features = compile_view(&defs.feature_views["v"], &schema).unwrap();
        let batch = source_batch(&schema, vec![Some(48), Some(12)]);
        let out = evaluate(&features, &DFSchema::try_from(source_schema()).unwrap(), &batch);
        let conv = out[0].as_any().downcast_ref::<Float32Array>().unwrap();
        assert_eq!((conv.value(0), conv.is_null(1)), (0.5, true));
        let per_hour = out[1].as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!((per_hour.value(0), per_hour.value(1)), (2.0, 0.5));
        let city = out[2].as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!((city.value(0), city.is_null(1)), ("OSLO", true));
    }

    /// `coalesce` exists only in logical form: planned without simplification it fails when
    /// evaluated, so a push through a view using it failed (found by the parity property
    /// test once it pushed). `physical_expr` simplifies first, as a query plan does.
    #[test]
    fn logical_only_functions_evaluate_outside_a_plan() {
        let defs = defs(&VIEW.replace(
            "      upper_city:",
            "      filled: { type: float64, expr: \"coalesce(conv_rate, -1.0) + nvl(avg_daily_trips, 0)\" }\n      upper_city:",
        ));
        let schema = Arc::new(source_schema());
        let features = compile_view(&defs.feature_views["v"], &schema).unwrap();
        let batch = source_batch(&schema, vec![None, Some(12)]);
        let out = evaluate(&features, &DFSchema::try_from(source_schema()).unwrap(), &batch);
        let filled = out[2].as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!((filled.value(0), filled.value(1)), (0.5, 11.0));
    }

    #[test]
    fn on_demand_features_read_qualified_view_features() {
        let defs = defs(VIEW);
        let view = &defs.on_demand_views["o"];
        let schema = on_demand_input_schema(&defs, view).unwrap();
        let features = compile_on_demand(&defs, view).unwrap();
        let batch = RecordBatch::try_new(
            Arc::new(schema.as_arrow().clone()),
            vec![
                Arc::new(Float64Array::from(vec![Some(3.0), Some(1.0)])),
                Arc::new(Float32Array::from(vec![Some(0.5), None])),
            ],
        )
        .unwrap();
        let out = evaluate(&features, &schema, &batch);
        let score = out[0].as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(score.value(0), 2.0);
        assert!(score.is_null(1), "null in, null out");
    }

    fn problems(features: &str) -> Vec<String> {
        let text = VIEW.replace(
            "      conv_rate: float32\n      trips_per_hour: { type: float64, expr: \"avg_daily_trips / 24.0\" }\n      upper_city: { type: string, expr: \"upper(city)\" }\n",
            &format!("      conv_rate: float32\n{features}"),
        );
        let defs = defs(&text);
        match compile_view(&defs.feature_views["v"], &source_schema()) {
            Ok(_) => Vec::new(),
            Err(d) => d.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn type_errors_are_located_and_explained() {
        let found = problems(
            "      a: { type: int64, expr: \"conv_rate * 2\" }\n      b: { type: float64, expr: \"conv_rte + 1\" }\n      c: { type: float64, expr: \"avg(conv_rate)\" }\n      d: { type: float64, expr: \"random()\" }\n      d2: { type: timestamp, expr: \"now()\" }\n      e: { type: bool, expr: \"city\" }\n      missing: float64\n",
        );
        assert_eq!(found.len(), 7, "{found:#?}");
        assert!(
            found[0].starts_with("defs.yaml:10:31: error: feature `v.a` yields Float64 but is declared int64"),
            "{}",
            found[0]
        );
        assert!(
            found[1].contains("reads unknown column `conv_rte`") && found[1].ends_with("(did you mean `conv_rate`?)"),
            "{}",
            found[1]
        );
        assert!(found[2].contains("not a row-level expression"), "{}", found[2]);
        assert!(found[3].contains("depends on when or where it runs"), "{}", found[3]);
        assert!(
            found[4].contains("depends on when or where it runs"),
            "now() is stable, not immutable: {}",
            found[4]
        );
        assert!(found[5].contains("yields Utf8 but is declared bool"), "{}", found[5]);
        assert!(
            found[6].contains("reads column `missing`, which source `s` does not have"),
            "{}",
            found[6]
        );
    }

    #[test]
    fn clean_expressions_have_no_problems() {
        assert!(
            problems("      ok: { type: float64, expr: \"CASE WHEN conv_rate > 0.5 THEN 1 ELSE 0 END\" }\n").is_empty()
        );
    }
}
