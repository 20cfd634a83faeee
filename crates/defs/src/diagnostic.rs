//! Where a definition problem is and what it is.
//!
//! Every user-facing problem in `feature_defs/` becomes a [`Diagnostic`] pointing at a
//! file, a 1-based line and a 1-based column. Validation collects them all into
//! [`Diagnostics`] instead of stopping at the first, so `skewless validate` can list every
//! mistake in one run.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A position in a definition file. Lines and columns are 1-based, as editors show them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Loc {
    pub file: Arc<Path>,
    pub line: usize,
    pub column: usize,
}

impl Loc {
    pub fn new(file: &Arc<Path>, line: usize, column: usize) -> Self {
        Loc {
            file: Arc::clone(file),
            line,
            column,
        }
    }

    /// The start of a file, for problems that concern a file as a whole.
    pub fn file_start(file: impl Into<PathBuf>) -> Self {
        Loc {
            file: Arc::from(file.into()),
            line: 1,
            column: 1,
        }
    }
}

impl Default for Loc {
    /// "Nowhere": for definitions read back from the registry rather than from YAML.
    fn default() -> Self {
        Loc {
            file: Arc::from(Path::new("")),
            line: 0,
            column: 0,
        }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// One problem in the definitions: where, what, and optionally a suggestion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub loc: Loc,
    pub message: String,
    /// A near name that probably was meant ("did you mean `driver`?").
    pub did_you_mean: Option<String>,
}

impl Diagnostic {
    pub fn new(loc: &Loc, message: impl Into<String>) -> Self {
        Diagnostic {
            loc: loc.clone(),
            message: message.into(),
            did_you_mean: None,
        }
    }

    /// Suggests the candidate closest to `name`, if one is close enough to be a typo.
    pub fn suggest<'a>(mut self, name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Self {
        self.did_you_mean = did_you_mean(name, candidates);
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: error: {}", self.loc, self.message)?;
        if let Some(name) = &self.did_you_mean {
            write!(f, " (did you mean `{name}`?)")?;
        }
        Ok(())
    }
}

/// All problems found in one run, in file and line order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    /// Orders by location and drops exact repeats, so output is stable across runs.
    pub fn sorted(mut self) -> Self {
        self.0.sort_by(|a, b| (&a.loc, &a.message).cmp(&(&b.loc, &b.message)));
        self.0.dedup();
        self
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        let n = self.0.len();
        write!(f, "{n} error{}", if n == 1 { "" } else { "s" })
    }
}

impl std::error::Error for Diagnostics {}

/// The candidate nearest to `name` when it is near enough to be a typo.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (strsim::damerau_levenshtein(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(distance, c)| {
            let limit = (c.len().max(name.len()) / 3).max(1);
            *distance < name.len() && (*distance <= limit || c.starts_with(name) && name.len() >= 3)
        })
        .min_by_key(|(distance, c)| (*distance, c.len()))
        .map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_names_only() {
        let names = ["driver", "customer", "trip"];
        assert_eq!(did_you_mean("drvier", names).as_deref(), Some("driver"));
        assert_eq!(did_you_mean("custmer", names).as_deref(), Some("customer"));
        assert_eq!(did_you_mean("vehicle", names), None);
        assert_eq!(did_you_mean("driver", names), None, "an exact name is not a suggestion");
    }

    #[test]
    fn renders_location_and_hint() {
        let loc = Loc::file_start("defs/a.yaml");
        let d = Diagnostic::new(&loc, "unknown entity `drvier`").suggest("drvier", ["driver"]);
        assert_eq!(
            d.to_string(),
            "defs/a.yaml:1:1: error: unknown entity `drvier` (did you mean `driver`?)"
        );
    }
}
