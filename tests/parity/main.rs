//! Parity suites: the offline path (training sets) and the online path (materialization,
//! stores, the serving core) give the same value for the same key and instant.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod agg_cases;
mod agg_property;
mod contracts;
mod late;
mod online;
mod property;
mod push;
mod push_faults;

pub use skewless_testkit::copy_demo_defs;

/// One lookup through a serving core compiled for it, as a server answers one.
pub(crate) async fn lookup(
    project: &skewless::Project,
    store: &std::sync::Arc<dyn skewless::online_store::OnlineStore>,
    selection: &skewless::training::FeatureSelection,
    entities: &[Vec<(String, String)>],
    at: i64,
) -> Result<skewless::serving::GetOutput, skewless::Error> {
    let serving = skewless::serving::Serving::new(&project.dirs(), std::sync::Arc::clone(store))
        .map_err(skewless::Error::from)?;
    Ok(serving.get(selection, entities, at).await?)
}
