//! Feast's commands: the JSON a Flight descriptor carries (`{"command_id", "api", ...}`),
//! read into what skewless answers.

use serde::Deserialize;

use crate::refusal::{FeastClass, Refusal};

/// One call, by the `api` it names.
#[derive(Debug)]
pub(crate) enum Command {
    /// `get_historical_features`: a training set over the uploaded entity DataFrame.
    HistoricalFeatures {
        feature_refs: Vec<String>,
        full_feature_names: bool,
        /// Feast's `entity_df` given as SQL (a string), which skewless does not run.
        entity_df_sql: bool,
    },
    /// `validate_data_source`: `feast apply` asks for each batch source.
    ValidateDataSource { name: String },
    /// Anything else Feast's client sends: refused, named.
    Other { api: String },
}

impl Command {
    /// The api name, for events and messages.
    pub(crate) fn api(&self) -> &str {
        match self {
            Command::HistoricalFeatures { .. } => "get_historical_features",
            Command::ValidateDataSource { .. } => "validate_data_source",
            Command::Other { api } => api,
        }
    }
}

#[derive(Deserialize)]
struct Raw {
    api: String,
    feature_refs: Option<Vec<String>>,
    full_feature_names: Option<bool>,
    entity_df_sql: Option<String>,
    /// The source as Feast's `str(DataSource)`: its protobuf message in JSON.
    data_source_proto: Option<String>,
}

#[derive(Deserialize)]
struct DataSourceJson {
    name: String,
}

/// Reads a descriptor's command.
pub(crate) fn parse(cmd: &[u8]) -> Result<Command, Refusal> {
    let bad = |what: String| Refusal::invalid(FeastClass::FeastError, what);
    let raw: Raw = serde_json::from_slice(cmd)
        .map_err(|e| bad(format!("the Flight command is not Feast's JSON command ({e})")))?;
    Ok(match raw.api.as_str() {
        "get_historical_features" => Command::HistoricalFeatures {
            feature_refs: raw
                .feature_refs
                .ok_or_else(|| bad("get_historical_features without `feature_refs`".into()))?,
            full_feature_names: raw.full_feature_names.unwrap_or(false),
            entity_df_sql: raw.entity_df_sql.is_some(),
        },
        "validate_data_source" => {
            let proto = raw
                .data_source_proto
                .ok_or_else(|| bad("validate_data_source without `data_source_proto`".into()))?;
            let source: DataSourceJson = serde_json::from_str(&proto).map_err(|e| {
                bad(format!(
                    "validate_data_source: `data_source_proto` names no source ({e})"
                ))
            })?;
            Command::ValidateDataSource { name: source.name }
        }
        _ => Command::Other { api: raw.api },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_feasts_client_sends() {
        let cmd = br#"{"command_id": "c1", "api": "get_historical_features", "feature_view_names": ["v"],
            "feature_refs": ["v:a", "v:b"], "project": "p", "full_feature_names": true, "name_aliases": [null]}"#;
        match parse(cmd).unwrap() {
            Command::HistoricalFeatures {
                feature_refs,
                full_feature_names,
                entity_df_sql,
            } => {
                assert_eq!(feature_refs, ["v:a", "v:b"]);
                assert!(full_feature_names);
                assert!(!entity_df_sql);
            }
            other => panic!("{other:?}"),
        }
        let proto = r#"{\n  \"type\": \"BATCH_FILE\",\n  \"name\": \"trips\"\n}"#;
        let cmd = format!(r#"{{"command_id": "c2", "api": "validate_data_source", "data_source_proto": "{proto}"}}"#);
        assert!(matches!(parse(cmd.as_bytes()).unwrap(), Command::ValidateDataSource { name } if name == "trips"));
        let cmd = br#"{"command_id": "c3", "api": "offline_write_batch", "feature_view_names": ["v"]}"#;
        assert_eq!(parse(cmd).unwrap().api(), "offline_write_batch");
    }

    #[test]
    fn refuses_what_is_not_a_command() {
        for cmd in [
            &b"not json"[..],
            br#"{"command_id": "c"}"#,
            br#"{"api": "get_historical_features"}"#,
            br#"{"api": "validate_data_source", "data_source_proto": "{}"}"#,
        ] {
            let refusal = parse(cmd).unwrap_err();
            assert_eq!(refusal.code(), tonic::Code::InvalidArgument, "{refusal}");
        }
    }
}
