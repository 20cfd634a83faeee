//! skewless's errors as the exception classes of `skewless.errors`, their fields as attributes.
//!
//! The classes are Python's (documented, catchable, picklable as plain exceptions); this
//! module only chooses one per error and fills in what the error knows.

use pyo3::prelude::*;
use skewless::defs::SelectionError;
use skewless::serving::{EntityProblem, RequestError};

/// An attribute's value.
enum Field {
    Text(String),
    Number(usize),
    Texts(Vec<String>),
    Maybe(Option<String>),
    Problems(Vec<(String, usize, usize, String, Option<String>)>),
}

/// The class name in `skewless.errors` and the attributes of `error`.
fn classify(error: &skewless::Error) -> (&'static str, Vec<(&'static str, Field)>) {
    use skewless::Error as E;
    match error {
        E::Invalid(diagnostics) => {
            let problems: Vec<_> = diagnostics
                .0
                .iter()
                .map(|d| {
                    (
                        d.loc.file.display().to_string(),
                        d.loc.line,
                        d.loc.column,
                        d.message.clone(),
                        d.did_you_mean.clone(),
                    )
                })
                .collect();
            let mut fields = Vec::new();
            if let Some(first) = problems.first() {
                fields.push(("file", Field::Text(first.0.clone())));
                fields.push(("line", Field::Number(first.1)));
                fields.push(("column", Field::Number(first.2)));
            }
            fields.push(("problems", Field::Problems(problems)));
            ("DefinitionError", fields)
        }
        E::Defs(_) => ("DefinitionError", Vec::new()),
        E::Breaking(changes) => ("BreakingChangeError", vec![("changes", Field::Texts(changes.clone()))]),
        E::Selection(SelectionError::Unresolved(unresolved))
        | E::Serve(RequestError::Selection(SelectionError::Unresolved(unresolved))) => {
            let first = unresolved.0.first();
            (
                "UnknownFeatureError",
                vec![
                    (
                        "kind",
                        Field::Text(
                            if first.is_some_and(|r| r.unknown_view) {
                                "view"
                            } else {
                                "feature"
                            }
                            .into(),
                        ),
                    ),
                    ("name", Field::Maybe(first.map(|r| r.reference.clone()))),
                    ("suggestion", Field::Maybe(first.and_then(|r| r.did_you_mean.clone()))),
                    (
                        "features",
                        Field::Texts(unresolved.0.iter().map(|r| r.reference.clone()).collect()),
                    ),
                    (
                        "suggestions",
                        Field::Texts(unresolved.0.iter().filter_map(|r| r.did_you_mean.clone()).collect()),
                    ),
                ],
            )
        }
        E::Selection(SelectionError::UnknownService { name, did_you_mean })
        | E::Serve(RequestError::Selection(SelectionError::UnknownService { name, did_you_mean })) => (
            "UnknownFeatureError",
            vec![
                ("kind", Field::Text("feature service".into())),
                ("name", Field::Text(name.clone())),
                ("suggestion", Field::Maybe(did_you_mean.clone())),
            ],
        ),
        E::Selection(_) | E::Serve(RequestError::Selection(_)) => ("UnknownFeatureError", Vec::new()),
        E::Unknown { kind, name, near } => (
            "UnknownFeatureError",
            vec![
                ("kind", Field::Text(kind.to_string())),
                ("name", Field::Text(name.clone())),
                ("suggestion", Field::Maybe(near.clone())),
            ],
        ),
        E::Serve(RequestError::UnknownView { name }) => (
            "UnknownFeatureError",
            vec![
                ("kind", Field::Text("view".into())),
                ("name", Field::Text(name.clone())),
            ],
        ),
        E::Serve(RequestError::UnknownSource { name, near }) => (
            "UnknownFeatureError",
            vec![
                ("kind", Field::Text("source".into())),
                ("name", Field::Text(name.clone())),
                ("suggestion", Field::Maybe(near.clone())),
            ],
        ),
        E::Serve(RequestError::BadEntity { entity, problem }) => {
            let field = match problem {
                EntityProblem::Value { field, .. }
                | EntityProblem::Twice { field }
                | EntityProblem::UnknownField { field, .. } => field.clone(),
                EntityProblem::MissingKey { key, .. } => key.clone(),
            };
            // Entities count from 1 in messages; Python indexes `entity_rows` from 0.
            (
                "BadEntityError",
                vec![
                    ("entity", Field::Number(entity.saturating_sub(1))),
                    ("field", Field::Text(field)),
                ],
            )
        }
        E::Serve(RequestError::MissingRequestField { entity, view, field }) => (
            "BadEntityError",
            vec![
                ("entity", Field::Number(entity.saturating_sub(1))),
                ("field", Field::Text(field.clone())),
                ("view", Field::Text(view.clone())),
            ],
        ),
        E::Serve(RequestError::StoreUnavailable { .. })
        | E::Online(
            skewless::online_store::Error::Redis { .. }
            | skewless::online_store::Error::Embedded { .. }
            | skewless::online_store::Error::EmbeddedBusy(_),
        ) => ("StoreUnavailableError", Vec::new()),
        E::Serve(RequestError::NothingApplied) => ("NothingAppliedError", Vec::new()),
        E::Serve(RequestError::BadRow { push_source, .. }) => {
            ("PushError", vec![("source", Field::Text(push_source.clone()))])
        }
        E::Serve(
            RequestError::NotPushSource { .. }
            | RequestError::ViewNotWritable { .. }
            | RequestError::BadPushId { .. }
            | RequestError::PushIdConflict { .. }
            | RequestError::LogUnavailable { .. }
            | RequestError::OnlineWriteFailed { .. },
        )
        | E::PushLog(_)
        | E::PushFile(_) => ("PushError", Vec::new()),
        E::Offline(skewless::offline::Error::Spine { path, .. }) | E::SpineColumn { path, .. } => {
            ("SpineError", vec![("path", Field::Text(path.display().to_string()))])
        }
        E::Offline(skewless::offline::Error::RepeatsSpineColumn { .. } | skewless::offline::Error::NameClash(_)) => {
            ("SpineError", Vec::new())
        }
        _ => ("Error", Vec::new()),
    }
}

/// `error` as the exception to raise.
pub(crate) fn to_py(py: Python<'_>, error: &skewless::Error) -> PyErr {
    let (class, fields) = classify(error);
    match build(py, class, &error.to_string(), fields) {
        Ok(err) => err,
        Err(failed) => failed,
    }
}

/// A `SpineError` for rows given in memory (path `entity_df`), said in Python's words.
pub(crate) fn spine_error(py: Python<'_>, message: &str) -> PyErr {
    build(
        py,
        "SpineError",
        message,
        vec![("path", Field::Text("entity_df".into()))],
    )
    .unwrap_or_else(|failed| failed)
}

fn build(py: Python<'_>, class: &str, message: &str, fields: Vec<(&str, Field)>) -> PyResult<PyErr> {
    let class = py.import("skewless.errors")?.getattr(class)?;
    let instance = class.call1((message,))?;
    for (name, value) in fields {
        match value {
            Field::Text(text) => instance.setattr(name, text)?,
            Field::Number(n) => instance.setattr(name, n)?,
            Field::Texts(texts) => instance.setattr(name, texts)?,
            Field::Maybe(text) => instance.setattr(name, text)?,
            Field::Problems(problems) => {
                let list = pyo3::types::PyList::empty(py);
                for (file, line, column, message, did_you_mean) in problems {
                    let problem = pyo3::types::PyDict::new(py);
                    problem.set_item("file", file)?;
                    problem.set_item("line", line)?;
                    problem.set_item("column", column)?;
                    problem.set_item("message", message)?;
                    problem.set_item("did_you_mean", did_you_mean)?;
                    list.append(problem)?;
                }
                instance.setattr(name, list)?;
            }
        }
    }
    Ok(PyErr::from_value(instance))
}
