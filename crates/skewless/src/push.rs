//! Pushes from the CLI and tests: the push path of [`skewless_serving::push`] over a project's
//! applied definitions.

use std::path::Path;

use skewless_online::OnlineStore;
use skewless_push_log::PushLog;
use skewless_serving::RequestError;
pub use skewless_serving::push::*;

impl crate::Project {
    /// Pushes `input` to `source` of the applied definitions through a target compiled for
    /// this one push (the server keeps its targets: [`crate::serving::Serving::push`]).
    pub async fn push(
        &self,
        store: &dyn OnlineStore,
        source: &str,
        input: &PushInput,
        id: Option<String>,
        to: PushTo,
        now: i64,
    ) -> Result<PushReport, crate::Error> {
        let target = self.push_target(source)?;
        target
            .push_input(store, input, id, to, now)
            .await
            .map_err(crate::Error::Serve)
    }

    /// Pushes the rows of a file (see [`crate::push_rows::read_file`]).
    pub async fn push_file(
        &self,
        store: &dyn OnlineStore,
        source: &str,
        file: &Path,
        id: Option<String>,
        to: PushTo,
        now: i64,
    ) -> Result<PushReport, crate::Error> {
        let target = self.push_target(source)?;
        let input = crate::push_rows::read_file(file, &target.input)?;
        target.push_owned(store, input, id, to, now).await.map_err(|e| match e {
            // A refused row is named in the file (rows count from 0, after a CSV's header).
            RequestError::BadRow {
                file: None,
                push_source,
                problem,
            } => crate::Error::Serve(RequestError::BadRow {
                file: Some(file.to_path_buf()),
                push_source,
                problem,
            }),
            e => crate::Error::Serve(e),
        })
    }

    /// `source` of the applied definitions, compiled for pushes.
    fn push_target(&self, source: &str) -> Result<PushTarget, crate::Error> {
        Ok(PushTarget::compile(&self.root, &self.applied()?, source)?.with_registry(self.registry()))
    }

    /// Folds `source`'s push journal, then merges the small segments of its log into one, atomically.
    pub fn compact(&self, source: &str) -> Result<skewless_push_log::Compacted, crate::Error> {
        let defs = self.load()?;
        if !defs.sources.contains_key(source) {
            return Err(crate::Error::Unknown {
                kind: skewless_offline::Kind::Source,
                name: source.to_string(),
                near: skewless_defs::did_you_mean(source, defs.sources.keys().map(String::as_str)),
            });
        }
        Ok(PushLog::open(&self.root, source).compact()?)
    }
}
