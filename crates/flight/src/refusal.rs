//! Why a call is not answered, as a gRPC status whose message is Feast's error detail.
//!
//! Feast's client looks for `Flight error: ` followed by a JSON object
//! `{"module", "class", "message"}` in a failed call's message, imports `module.class` and
//! raises it with `message` (`feast/arrow_error_handler.py`). So a Feast user's code sees
//! `FeastObjectNotFoundException: unknown feature ...`, skewless's words in Feast's class; any
//! other Flight client sees the JSON, which says the same.

use std::fmt;

/// The Feast exception class (in `feast.errors`) a refusal is raised as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeastClass {
    /// Unknown features, views, services or sources.
    FeastObjectNotFoundException,
    /// An entity DataFrame without a time column Feast's rules can find.
    EntityTimestampInferenceException,
    /// Everything else.
    FeastError,
}

impl FeastClass {
    fn name(self) -> &'static str {
        match self {
            FeastClass::FeastObjectNotFoundException => "FeastObjectNotFoundException",
            FeastClass::EntityTimestampInferenceException => "EntityTimestampInferenceException",
            FeastClass::FeastError => "FeastError",
        }
    }
}

/// A call not answered: the status code, Feast's class and skewless's message.
#[derive(Debug, Clone)]
pub struct Refusal {
    code: tonic::Code,
    class: FeastClass,
    message: String,
}

impl Refusal {
    /// The caller asked for something wrong or unknown.
    pub fn invalid(class: FeastClass, message: impl Into<String>) -> Self {
        let code = match class {
            FeastClass::FeastObjectNotFoundException => tonic::Code::NotFound,
            _ => tonic::Code::InvalidArgument,
        };
        Refusal {
            code,
            class,
            message: message.into(),
        }
    }

    /// A call skewless does not answer.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Refusal {
            code: tonic::Code::Unimplemented,
            class: FeastClass::FeastError,
            message: message.into(),
        }
    }

    /// The call carries no accepted key.
    pub fn unauthenticated() -> Self {
        Refusal {
            code: tonic::Code::Unauthenticated,
            class: FeastClass::FeastError,
            message: "this server demands an API key: send `authorization: Bearer <key>` (Feast: \
                      `auth: {type: kubernetes, user_token: <key>}` in feature_store.yaml)"
                .into(),
        }
    }

    /// The upload is over the limit.
    pub fn too_large(message: impl Into<String>) -> Self {
        Refusal {
            code: tonic::Code::ResourceExhausted,
            class: FeastClass::FeastError,
            message: message.into(),
        }
    }

    /// A transport failure while `doing` something, with the transport's code.
    pub fn of_status(status: &tonic::Status, doing: &str) -> Self {
        Refusal {
            code: status.code(),
            class: FeastClass::FeastError,
            message: format!("{doing}: {}", status.message()),
        }
    }

    /// A failure on skewless's side (a source that cannot be read, a bug).
    pub fn failed(message: impl Into<String>) -> Self {
        Refusal {
            code: tonic::Code::Internal,
            class: FeastClass::FeastError,
            message: message.into(),
        }
    }

    pub fn code(&self) -> tonic::Code {
        self.code
    }

    pub fn class(&self) -> FeastClass {
        self.class
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Feast's error detail: what its client parses back into an exception.
    fn detail(&self) -> String {
        serde_json::json!({
            "module": "feast.errors",
            "class": self.class.name(),
            "message": self.message,
        })
        .to_string()
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refusal {}

impl From<Refusal> for tonic::Status {
    fn from(refusal: Refusal) -> Self {
        tonic::Status::new(refusal.code, format!("Flight error: {}", refusal.detail()))
    }
}

/// A skewless error as a refusal: the caller's mistakes are Feast's not-found or bad-input
/// classes, the rest is a failure.
pub(crate) fn of_error(error: &skewless::Error) -> Refusal {
    use skewless::offline::Error as Offline;
    let message = error.to_string();
    match error {
        skewless::Error::Selection(_) | skewless::Error::Unknown { .. } => {
            Refusal::invalid(FeastClass::FeastObjectNotFoundException, message)
        }
        skewless::Error::Offline(
            Offline::Spine { .. } | Offline::RepeatsSpineColumn { .. } | Offline::NameClash(_),
        ) => Refusal::invalid(FeastClass::FeastError, message),
        skewless::Error::Invalid(_) | skewless::Error::Defs(_) => Refusal::failed(format!(
            "skewless's definitions do not load, so no training set is built: {message}"
        )),
        _ => Refusal::failed(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_carries_feasts_error_detail() {
        let status = tonic::Status::from(Refusal::invalid(
            FeastClass::FeastObjectNotFoundException,
            r#"unknown feature `v:x` ("quoted" {braces})"#,
        ));
        assert_eq!(status.code(), tonic::Code::NotFound);
        let detail = status.message().strip_prefix("Flight error: ").unwrap();
        let parsed: serde_json::Value = serde_json::from_str(detail).unwrap();
        assert_eq!(parsed["module"], "feast.errors");
        assert_eq!(parsed["class"], "FeastObjectNotFoundException");
        assert_eq!(parsed["message"], r#"unknown feature `v:x` ("quoted" {braces})"#);
    }
}
