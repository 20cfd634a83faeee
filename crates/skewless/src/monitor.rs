//! Monitoring: a service names the training set its model learned from (its reference), and
//! what is served is measured against that training set's profiles. Naming it here keeps
//! only what the server needs (the profiles of the service's features and the thresholds)
//! in the registry directory, so the server never reads the training set or its manifest.

use std::path::{Path, PathBuf};

use skewless_profile::reference::{self, Reference, Thresholds};

use crate::manifest::{fingerprint, read_manifest};
use crate::training::{FeatureSelection, resolve_selection};
use crate::{Error, Project, Result};

impl Project {
    /// Names `manifest`'s training set the reference of `service`: every feature of the
    /// service as defined now must have a profile there (else the model was not trained on
    /// this service, or the manifest was written with `--no-profile`). Each threshold is the
    /// one given, else the service's `monitoring:` block's, else the default.
    pub fn set_reference(
        &self,
        service: &str,
        manifest: &Path,
        given: &skewless_defs::Monitoring,
    ) -> Result<(PathBuf, Reference)> {
        let refused = |problem: String| Error::Reference {
            service: service.to_string(),
            problem,
        };
        let defs = self.load()?;
        let features = resolve_selection(&defs, &FeatureSelection::Service(service.to_string()))?;
        let declared = defs
            .feature_services
            .get(service)
            .and_then(|s| s.monitoring.clone())
            .unwrap_or_default();
        let defaults = Thresholds::default();
        let thresholds = Thresholds {
            psi: given.psi.or(declared.psi).unwrap_or(defaults.psi),
            null_rate: given.null_rate.or(declared.null_rate).unwrap_or(defaults.null_rate),
            min_values: given.min_values.or(declared.min_values).unwrap_or(defaults.min_values),
        };
        let recorded = read_manifest(manifest)?;
        if recorded.profiles.is_empty() {
            return Err(refused(format!(
                "{} has no profiles (written with --no-profile, or by a skewless before profiles): build the training set again",
                manifest.display()
            )));
        }
        let names: Vec<String> = features.iter().map(|f| format!("{}:{}", f.view, f.feature)).collect();
        let missing: Vec<&String> = names.iter().filter(|n| !recorded.profiles.contains_key(*n)).collect();
        if !missing.is_empty() {
            return Err(refused(format!(
                "{} has no profile of {}: it was not built for this service as it is defined now",
                manifest.display(),
                missing.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
            )));
        }
        let named = Reference {
            service: service.to_string(),
            manifest: std::path::absolute(manifest).unwrap_or_else(|_| manifest.to_path_buf()),
            manifest_sha256: fingerprint(manifest)?.sha256,
            set_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            thresholds,
            profiles: names
                .iter()
                .filter_map(|n| recorded.profiles.get(n).map(|p| (n.clone(), p.clone())))
                .collect(),
        };
        let path = reference::write(&self.repo_dir, &named).map_err(|e| refused(e.to_string()))?;
        Ok((path, named))
    }

    /// Every service's reference.
    pub fn references(&self) -> Result<std::collections::BTreeMap<String, Reference>> {
        reference::read_all(&self.repo_dir).map_err(|e| Error::Reference {
            service: "*".into(),
            problem: e.to_string(),
        })
    }
}
