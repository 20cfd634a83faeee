//! The commands, one module per family; each prints its own answers.

pub(crate) mod monitor;
pub(crate) mod online;
pub(crate) mod parity;
pub(crate) mod project;
pub(crate) mod serve;
pub(crate) mod training;

use std::sync::Arc;

use anyhow::Context;
use skewless::Project;
use skewless::online::parse_instant;
use skewless::online_store::{OnlineStore, StoreConfig};

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}

pub(crate) fn instant(text: &str) -> anyhow::Result<i64> {
    parse_instant(text).map_err(anyhow::Error::msg)
}

/// Opens the configured online store (default: the embedded one in the repository).
pub(crate) fn store_config(project: &Project, url: Option<&str>) -> anyhow::Result<StoreConfig> {
    Ok(match url {
        Some(url) => StoreConfig::parse(url)?,
        None => StoreConfig::default_for(&project.repo_dir),
    })
}

/// The configured store; an embedded one held by a running server is reached through it.
pub(crate) async fn online_store(project: &Project, url: Option<&str>) -> anyhow::Result<Arc<dyn OnlineStore>> {
    Ok(skewless::online_store::open(&store_config(project, url)?).await?)
}
