//! Checks that need the data's schema: key, timestamp and expression types.

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use skewless_defs::{Definitions, Diagnostic, Diagnostics, did_you_mean};

use crate::compile::{compile_on_demand, compile_view};
use crate::types::{key_fits, timestamp_fits};

/// The schema of each source that has files, by source name. Sources without an entry
/// (push-only, or unreadable and already reported) are skipped.
pub type SourceSchemas = BTreeMap<String, SchemaRef>;

/// Every problem that needs source schemas: missing or mistyped key and time columns,
/// expressions that do not type-check. Empty when all is well.
pub fn check(defs: &Definitions, schemas: &SourceSchemas) -> Diagnostics {
    let mut problems = Diagnostics::default();
    for view in defs.feature_views.values() {
        let (Some(source), Some(schema)) = (defs.sources.get(&view.source), schemas.get(&view.source)) else {
            continue;
        };
        for key in defs.view_keys(view) {
            match column_type(schema, &key.name) {
                Err(hint) => problems.push(missing(&view.source_loc, &view.source, &key.name, "join key", hint)),
                Ok(actual) if !key_fits(actual, key.ty) => problems.push(Diagnostic::new(
                    &view.source_loc,
                    format!(
                        "key `{}` is {} in the entity but {actual} in source `{}`",
                        key.name, key.ty, source.name
                    ),
                )),
                Ok(_) => {}
            }
        }
        let times =
            std::iter::once((&source.timestamp, "timestamp")).chain(source.created.iter().map(|c| (c, "created")));
        for (column, role) in times {
            match column_type(schema, column) {
                Err(hint) => problems.push(missing(&source.loc, &source.name, column, role, hint)),
                Ok(actual) if !timestamp_fits(actual) => problems.push(Diagnostic::new(
                    &source.loc,
                    format!(
                        "{role} column `{column}` of source `{}` is {actual}; expected a timestamp or date",
                        source.name
                    ),
                )),
                Ok(_) => {}
            }
        }
        if let Err(e) = compile_view(view, schema) {
            problems.extend(e);
        }
    }
    for view in defs.on_demand_views.values() {
        if let Err(e) = compile_on_demand(defs, view) {
            problems.extend(e);
        }
    }
    problems.sorted()
}

fn column_type<'a>(
    schema: &'a Schema,
    name: &str,
) -> Result<&'a datafusion::arrow::datatypes::DataType, Option<String>> {
    schema
        .field_with_name(name)
        .map(|f| f.data_type())
        .map_err(|_| did_you_mean(name, schema.fields().iter().map(|f| f.name().as_str())))
}

fn missing(loc: &skewless_defs::Loc, source: &str, column: &str, role: &str, hint: Option<String>) -> Diagnostic {
    let mut d = Diagnostic::new(loc, format!("source `{source}` has no {role} column `{column}`"));
    d.did_you_mean = hint;
    d
}
