//! `get_historical_features`: Feast's entity DataFrame, as uploaded, becomes a spine, and the
//! answer is skewless's training set over it, exactly as `skewless training-set` builds it.
//!
//! What the upload looks like: `pa.Table.from_pandas(entity_df)`, so it may carry pandas'
//! index as extra columns (`__index_level_0__`, named in the schema's `pandas` metadata) and
//! that metadata itself. Neither is a spine column: both are dropped, so the answer holds the
//! DataFrame's columns and the features, in the DataFrame's row order.

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use skewless::Project;
use skewless::offline::training_set::inferred_time_column;
use skewless::training::{FeatureSelection, Spine, TrainingSetOptions, TrainingSetOutput};

use crate::refusal::{FeastClass, Refusal, of_error};

/// What the spine is called in errors.
const LABEL: &str = "Feast's entity DataFrame";

/// Builds the training set for Feast's request, on a blocking thread of the runtime: the join
/// is CPU work that must not hold up the threads answering other calls.
pub(crate) async fn answer(
    project: &Project,
    upload: Vec<RecordBatch>,
    schema: SchemaRef,
    feature_refs: Vec<String>,
    full_feature_names: bool,
) -> Result<TrainingSetOutput, Refusal> {
    let (spine, timestamp_column) = spine(upload, schema)?;
    let project = project.clone();
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let ctx = skewless::engine_session();
        let options = TrainingSetOptions {
            spine: Spine::Rows {
                label: LABEL.into(),
                batch: spine,
            },
            selection: FeatureSelection::Features(feature_refs),
            timestamp_column,
            full_names: full_feature_names,
        };
        runtime.block_on(project.training_set(&ctx, &options))
    })
    .await
    .map_err(|e| Refusal::failed(format!("the training set's task stopped: {e}")))?
    .map_err(|e| of_error(&e))
}

/// The uploaded table as a spine, and its time column by Feast's rule.
pub(crate) fn spine(upload: Vec<RecordBatch>, schema: SchemaRef) -> Result<(RecordBatch, String), Refusal> {
    // Feast's placeholder when it has no entity DataFrame: one `key` column.
    if schema.fields().len() == 1 && schema.field(0).name() == "key" {
        return Err(Refusal::unsupported(
            "skewless builds training sets over an entity DataFrame; retrieval without one \
             (by start_date and end_date) is not served",
        ));
    }
    let index = pandas_index_columns(&schema);
    let keep: Vec<usize> = (0..schema.fields().len())
        .filter(|&i| !index.contains(schema.field(i).name()))
        .collect();
    let fields: Vec<_> = keep
        .iter()
        .map(|&i| schema.field(i).as_ref().clone().with_metadata(Default::default()))
        .collect();
    let bare = std::sync::Arc::new(Schema::new(fields));
    let whole = arrow::compute::concat_batches(&schema, &upload)
        .and_then(|b| b.project(&keep))
        .and_then(|b| RecordBatch::try_new(std::sync::Arc::clone(&bare), b.columns().to_vec()))
        .map_err(|e| Refusal::invalid(FeastClass::FeastError, format!("{LABEL} cannot be read: {e}")))?;
    let timestamp_column = timestamp_column(&bare)?;
    Ok((whole, timestamp_column))
}

/// The time column by Feast's rule ([`inferred_time_column`]), or Feast's refusal.
fn timestamp_column(schema: &Schema) -> Result<String, Refusal> {
    inferred_time_column(schema).map_err(|times| {
        Refusal::invalid(
            FeastClass::EntityTimestampInferenceException,
            format!(
                "{LABEL} needs a column `event_timestamp`, or exactly one timestamp column, for the time of \
                 each row; it has {}",
                described(&times)
            ),
        )
    })
}

/// `none`, or the columns quoted.
fn described(columns: &[String]) -> String {
    if columns.is_empty() {
        "none".to_string()
    } else {
        columns.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ")
    }
}

/// The columns pandas stored its index in (the `pandas` metadata's `index_columns` that are
/// names; a range index is stored as a description, not a column).
fn pandas_index_columns(schema: &Schema) -> Vec<String> {
    let Some(pandas) = schema.metadata().get("pandas") else {
        return Vec::new();
    };
    let Ok(meta) = serde_json::from_str::<serde_json::Value>(pandas) else {
        return Vec::new();
    };
    meta["index_columns"]
        .as_array()
        .map(|columns| columns.iter().filter_map(|c| c.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, TimestampNanosecondArray};
    use arrow::datatypes::{DataType, Field, TimeUnit};

    use super::*;

    fn upload(time_name: &str, with_index: bool) -> (Vec<RecordBatch>, SchemaRef) {
        let mut fields = vec![
            Field::new("driver_id", DataType::Int64, true),
            Field::new(time_name, DataType::Timestamp(TimeUnit::Nanosecond, None), true),
        ];
        let mut columns: Vec<arrow::array::ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![1001, 1002])),
            Arc::new(TimestampNanosecondArray::from(vec![1_000_000_000, 2_000_000_000])),
        ];
        let mut metadata = std::collections::HashMap::new();
        if with_index {
            fields.push(Field::new("__index_level_0__", DataType::Int64, true));
            columns.push(Arc::new(Int64Array::from(vec![7, 3])));
            metadata.insert(
                "pandas".to_string(),
                r#"{"index_columns": ["__index_level_0__"], "columns": []}"#.to_string(),
            );
        } else {
            metadata.insert(
                "pandas".to_string(),
                r#"{"index_columns": [{"kind": "range", "start": 0, "stop": 2, "step": 1}]}"#.to_string(),
            );
        }
        let schema = Arc::new(Schema::new(fields).with_metadata(metadata));
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns).unwrap();
        (vec![batch.slice(0, 1), batch.slice(1, 1)], schema)
    }

    #[test]
    fn pandas_index_and_metadata_are_not_spine_columns() {
        let (batches, schema) = upload("event_timestamp", true);
        let (rows, ts) = spine(batches, schema).unwrap();
        assert_eq!(ts, "event_timestamp");
        let names: Vec<_> = rows.schema().fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(names, ["driver_id", "event_timestamp"]);
        assert!(rows.schema().metadata().is_empty());
        assert_eq!(rows.num_rows(), 2, "every uploaded batch, in order");
        let (batches, schema) = upload("event_timestamp", false);
        assert_eq!(spine(batches, schema).unwrap().0.num_columns(), 2);
    }

    #[test]
    fn the_time_column_is_found_by_feasts_rule() {
        let (batches, schema) = upload("requested_at", false);
        assert_eq!(spine(batches, schema).unwrap().1, "requested_at");
        let schema = Arc::new(Schema::new(vec![Field::new("driver_id", DataType::Int64, true)]));
        let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(Int64Array::from(vec![1]))]).unwrap();
        let refusal = spine(vec![batch], schema).unwrap_err();
        assert_eq!(refusal.class(), FeastClass::EntityTimestampInferenceException);
        assert!(refusal.message().contains("it has none"), "{refusal}");
    }

    #[test]
    fn feasts_placeholder_is_retrieval_without_entities() {
        let schema = Arc::new(Schema::new(vec![Field::new("key", DataType::Utf8, true)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(arrow::array::StringArray::from(vec!["mock_key"]))],
        )
        .unwrap();
        let refusal = spine(vec![batch], schema).unwrap_err();
        assert_eq!(refusal.code(), tonic::Code::Unimplemented);
        assert!(refusal.message().contains("entity DataFrame"), "{refusal}");
    }
}
