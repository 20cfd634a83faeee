//! The Flight service: `DoExchange` answers reads, `DoPut` answers checks; every other method
//! is refused with what to use instead.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, HandshakeResponse,
    PollInfo, PutResult, SchemaResult, Ticket,
};
use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt, TryStreamExt};
use skewless::Project;
use tonic::{Request, Response, Status, Streaming};

use crate::FlightEvent;
use crate::command::{self, Command};
use crate::historical;
use crate::refusal::{FeastClass, Refusal};

/// Feast's remote offline store over one skewless project.
#[derive(Clone)]
pub struct OfflineService {
    project: Project,
    max_upload_bytes: usize,
    events: Arc<dyn Fn(FlightEvent) + Send + Sync>,
}

impl std::fmt::Debug for OfflineService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfflineService")
            .field("project", &self.project)
            .field("max_upload_bytes", &self.max_upload_bytes)
            .finish_non_exhaustive()
    }
}

/// An uploaded table: every batch, and the schema they share.
struct Upload {
    descriptor: Option<FlightDescriptor>,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

impl OfflineService {
    pub fn new(project: Project, max_upload_bytes: usize, events: Arc<dyn Fn(FlightEvent) + Send + Sync>) -> Self {
        OfflineService {
            project,
            max_upload_bytes,
            events,
        }
    }

    /// Reads a call's whole upload (Feast sends its table, then reads the answer), refusing
    /// it past the byte limit.
    async fn read_upload(&self, request: Request<Streaming<FlightData>>) -> Result<Upload, Refusal> {
        let mut messages = request.into_inner();
        let first = messages
            .message()
            .await
            .map_err(|e| Refusal::of_status(&e, "reading the upload"))?
            .ok_or_else(|| Refusal::invalid(FeastClass::FeastError, "the call sent nothing (no descriptor)"))?;
        let descriptor = first.flight_descriptor.clone();
        let limit = self.max_upload_bytes;
        let mut sent = 0usize;
        let counted = stream::once(async { Ok(first) })
            .chain(messages)
            .map(move |message| {
                let message = message.map_err(FlightError::from)?;
                sent = sent.saturating_add(message.data_body.len() + message.data_header.len());
                if sent > limit {
                    return Err(FlightError::ExternalError(Box::new(Refusal::too_large(format!(
                        "the upload is over the server's limit of {limit} bytes (--flight-max-upload)"
                    )))));
                }
                Ok(message)
            })
            // pyarrow's DoExchange sends the descriptor alone first, with no IPC message:
            // nothing to decode.
            .try_filter(|message| std::future::ready(!message.data_header.is_empty()));
        let mut decoded = FlightRecordBatchStream::new_from_flight_data(counted);
        let mut batches = Vec::new();
        while let Some(batch) = decoded.next().await {
            batches.push(batch.map_err(|e| match e {
                FlightError::ExternalError(inner) => match inner.downcast::<Refusal>() {
                    Ok(refusal) => *refusal,
                    Err(other) => Refusal::invalid(FeastClass::FeastError, other.to_string()),
                },
                FlightError::Tonic(status) => Refusal::of_status(&status, "reading the upload"),
                other => Refusal::invalid(FeastClass::FeastError, format!("the upload is not Arrow data: {other}")),
            })?);
        }
        let schema = decoded
            .schema()
            .cloned()
            .ok_or_else(|| Refusal::invalid(FeastClass::FeastError, "the upload has no schema"))?;
        Ok(Upload {
            descriptor,
            schema,
            batches,
        })
    }

    fn command(upload: &Upload) -> Result<Command, Refusal> {
        let descriptor = upload.descriptor.as_ref().ok_or_else(|| {
            Refusal::invalid(
                FeastClass::FeastError,
                "the call names no command (Feast's client puts its JSON command in the descriptor)",
            )
        })?;
        command::parse(&descriptor.cmd)
    }

    fn refused(&self, api: &str, refusal: Refusal) -> Status {
        (self.events)(FlightEvent::Refused {
            api: api.to_string(),
            message: refusal.message().to_string(),
        });
        refusal.into()
    }

    /// A `DoExchange` read, answered with one table.
    async fn exchange(&self, upload: Upload, command: Command) -> Result<RecordBatch, Refusal> {
        match command {
            Command::HistoricalFeatures {
                entity_df_sql: true, ..
            } => Err(Refusal::unsupported(
                "skewless does not run SQL for the entity DataFrame: pass a pandas DataFrame",
            )),
            Command::HistoricalFeatures {
                feature_refs,
                full_feature_names,
                ..
            } => {
                let started = Instant::now();
                let built = historical::answer(
                    &self.project,
                    upload.batches,
                    upload.schema,
                    feature_refs,
                    full_feature_names,
                )
                .await?;
                (self.events)(FlightEvent::Answered {
                    api: "get_historical_features".into(),
                    rows: built.batch.num_rows(),
                    seconds: started.elapsed().as_secs_f64(),
                    warnings: built.skew_warnings,
                });
                Ok(built.batch)
            }
            Command::ValidateDataSource { .. } => Err(Refusal::unsupported(
                "validate_data_source is a DoPut call, not a DoExchange",
            )),
            Command::Other { api } => Err(unsupported_api(&api)),
        }
    }

    /// A `DoPut` check.
    fn put(&self, command: Command) -> Result<(), Refusal> {
        match command {
            Command::ValidateDataSource { name } => {
                let defs = self.project.load().map_err(|e| crate::refusal::of_error(&e))?;
                match skewless::feast_export::source_of_batch_name(&defs, &name) {
                    Some(_) => {
                        (self.events)(FlightEvent::Answered {
                            api: "validate_data_source".into(),
                            rows: 0,
                            seconds: 0.0,
                            warnings: Vec::new(),
                        });
                        Ok(())
                    }
                    None => Err(Refusal::invalid(
                        FeastClass::FeastObjectNotFoundException,
                        format!(
                            "source `{name}` is not one skewless defines (sources: {}); export the Feast \
                             repository again with `skewless export feast`",
                            defs.sources.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    )),
                }
            }
            Command::HistoricalFeatures { .. } => Err(Refusal::unsupported(
                "get_historical_features is answered on DoExchange (Feast 0.67's client); the DoPut, \
                 GetFlightInfo and DoGet sequence of older clients is not served",
            )),
            Command::Other { api } => Err(unsupported_api(&api)),
        }
    }
}

/// What to use instead of a Feast offline-store call skewless does not answer.
fn unsupported_api(api: &str) -> Refusal {
    let instead = match api {
        "offline_write_batch" | "write_logged_features" => {
            "rows enter skewless through a push (POST /push, or Feast's store.push), which reaches both the \
             offline log and the online store"
        }
        "persist" => {
            "write the training set where you want it from the DataFrame, or use `skewless training-set --out`"
        }
        "pull_latest_from_table_or_query" | "pull_all_from_table_or_query" => {
            "materialization runs in skewless (Feast's store.materialize goes to POST /materialize); read sources \
             directly or build a training set"
        }
        "get_table_column_names_and_types_from_data_source" => {
            "the exported Feast repository declares every source's schema; export it again with `skewless export feast`"
        }
        _ => "skewless answers get_historical_features and validate_data_source",
    };
    Refusal::unsupported(format!("skewless does not answer Feast's `{api}` call: {instead}"))
}

fn not_served(method: &str) -> Status {
    Refusal::unsupported(format!(
        "skewless's Flight server does not serve {method}: it answers Feast's remote offline store \
         (DoExchange for get_historical_features, DoPut for validate_data_source)"
    ))
    .into()
}

type Boxed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl FlightService for OfflineService {
    type HandshakeStream = BoxStream<'static, Result<HandshakeResponse, Status>>;
    type ListFlightsStream = BoxStream<'static, Result<FlightInfo, Status>>;
    type DoGetStream = BoxStream<'static, Result<FlightData, Status>>;
    type DoPutStream = BoxStream<'static, Result<PutResult, Status>>;
    type DoActionStream = BoxStream<'static, Result<arrow_flight::Result, Status>>;
    type ListActionsStream = BoxStream<'static, Result<ActionType, Status>>;
    type DoExchangeStream = Boxed<FlightData>;

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        let upload = self.read_upload(request).await.map_err(|r| self.refused("?", r))?;
        let command = Self::command(&upload).map_err(|r| self.refused("?", r))?;
        let api = command.api().to_string();
        let batch = self
            .exchange(upload, command)
            .await
            .map_err(|r| self.refused(&api, r))?;
        let schema = batch.schema();
        let answer = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(stream::iter([Ok(batch)]))
            .map_err(|e| Status::internal(format!("encoding the answer: {e}")));
        Ok(Response::new(Box::pin(answer)))
    }

    async fn do_put(&self, request: Request<Streaming<FlightData>>) -> Result<Response<Self::DoPutStream>, Status> {
        let upload = self.read_upload(request).await.map_err(|r| self.refused("?", r))?;
        let command = Self::command(&upload).map_err(|r| self.refused("?", r))?;
        let api = command.api().to_string();
        self.put(command).map_err(|r| self.refused(&api, r))?;
        Ok(Response::new(Box::pin(stream::empty())))
    }

    async fn handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        Err(not_served("Handshake"))
    }

    async fn list_flights(&self, _request: Request<Criteria>) -> Result<Response<Self::ListFlightsStream>, Status> {
        // Nothing is kept between calls: there are no flights to list.
        Ok(Response::new(Box::pin(stream::empty())))
    }

    async fn get_flight_info(&self, _request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        Err(not_served("GetFlightInfo"))
    }

    async fn poll_flight_info(&self, _request: Request<FlightDescriptor>) -> Result<Response<PollInfo>, Status> {
        Err(not_served("PollFlightInfo"))
    }

    async fn get_schema(&self, _request: Request<FlightDescriptor>) -> Result<Response<SchemaResult>, Status> {
        Err(not_served("GetSchema"))
    }

    async fn do_get(&self, _request: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        Err(not_served("DoGet"))
    }

    async fn do_action(&self, _request: Request<Action>) -> Result<Response<Self::DoActionStream>, Status> {
        Err(not_served("DoAction"))
    }

    async fn list_actions(&self, _request: Request<Empty>) -> Result<Response<Self::ListActionsStream>, Status> {
        Ok(Response::new(Box::pin(stream::empty())))
    }
}
