//! The typed model of `feature_defs/`: what the YAML means, once parsed.
//!
//! These types are plain data. They serialize to JSON for the registry, which is how any
//! applied version of the definitions can be read back. Locations ([`Loc`]) point into the
//! YAML for error messages; they are not part of what a definition means, so they are not
//! serialized and never enter a version hash.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::diagnostic::Loc;
use crate::duration::Duration;

/// The value type of a feature or request field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeatureType {
    Bool,
    Int32,
    Int64,
    Float32,
    Float64,
    String,
    Timestamp,
}

impl FeatureType {
    pub const ALL: [FeatureType; 7] = [
        FeatureType::Bool,
        FeatureType::Int32,
        FeatureType::Int64,
        FeatureType::Float32,
        FeatureType::Float64,
        FeatureType::String,
        FeatureType::Timestamp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FeatureType::Bool => "bool",
            FeatureType::Int32 => "int32",
            FeatureType::Int64 => "int64",
            FeatureType::Float32 => "float32",
            FeatureType::Float64 => "float64",
            FeatureType::String => "string",
            FeatureType::Timestamp => "timestamp",
        }
    }

    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            FeatureType::Int32 | FeatureType::Int64 | FeatureType::Float32 | FeatureType::Float64
        )
    }
}

impl FromStr for FeatureType {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        FeatureType::ALL.into_iter().find(|t| t.name() == s).ok_or(())
    }
}

impl fmt::Display for FeatureType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The type of an entity join key. Keys are exact: no floats, no timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    Int64,
    String,
}

impl KeyType {
    pub const ALL: [KeyType; 2] = [KeyType::Int64, KeyType::String];

    pub fn name(self) -> &'static str {
        match self {
            KeyType::Int64 => "int64",
            KeyType::String => "string",
        }
    }
}

impl FromStr for KeyType {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        KeyType::ALL.into_iter().find(|t| t.name() == s).ok_or(())
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which time decides whether a row was knowable at `t` (DESIGN.md, point-in-time rule 2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AsOf {
    /// Rows count from their event time (Feast's semantics).
    #[default]
    Event,
    /// Rows count only once they had landed (`created <= t`): bitemporal, no leakage of late data.
    Available,
}

impl AsOf {
    pub fn name(self) -> &'static str {
        match self {
            AsOf::Event => "event",
            AsOf::Available => "available",
        }
    }
}

/// What happens to a source row whose features break their contracts (DESIGN.md, "Bad input
/// gets a clear error"). The same on every path: training sets, materialization and push.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnViolation {
    /// The row is no candidate for any feature of the view; it is written to the quarantine.
    #[default]
    Quarantine,
    /// The row stays a candidate, with each breaking feature null.
    Null,
    /// The job (or push) fails, naming the row.
    Fail,
}

impl OnViolation {
    pub fn name(self) -> &'static str {
        match self {
            OnViolation::Quarantine => "quarantine",
            OnViolation::Null => "null",
            OnViolation::Fail => "fail",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinKey {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: KeyType,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    pub name: String,
    pub keys: Vec<JoinKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip)]
    pub loc: Loc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    Parquet,
    Csv,
}

impl SourceFormat {
    pub fn name(self) -> &'static str {
        match self {
            SourceFormat::Parquet => "parquet",
            SourceFormat::Csv => "csv",
        }
    }

    /// The format a file name's extension says, if any.
    pub fn from_extension(path: &str) -> Option<Self> {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".parquet") || lower.ends_with(".pq") {
            Some(SourceFormat::Parquet)
        } else if lower.ends_with(".csv") {
            Some(SourceFormat::Csv)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub name: String,
    /// A file, a directory or a glob, relative to the project root (the parent of `feature_defs/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Stated, or read off the path's extension; `None` for a directory left to be sniffed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<SourceFormat>,
    pub timestamp: String,
    /// The availability column: when a row landed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default)]
    pub push: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip)]
    pub loc: Loc,
    #[serde(skip)]
    pub path_loc: Loc,
}

/// A literal in a contract's `allowed` list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Literal {
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Int(i) => write!(f, "{i}"),
            Literal::Float(x) => write!(f, "{x}"),
            Literal::String(s) => write!(f, "{s:?}"),
        }
    }
}

/// What a source row must satisfy to feed a feature; rows that break it are quarantined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contract {
    #[serde(default = "yes")]
    pub nullable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<Literal>>,
}

fn yes() -> bool {
    true
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

impl Default for Contract {
    fn default() -> Self {
        Contract {
            nullable: true,
            min: None,
            max: None,
            allowed: None,
        }
    }
}

impl Contract {
    pub fn is_empty(&self) -> bool {
        *self == Contract::default()
    }
}

impl FeatureView {
    /// Whether any feature has a contract (so `on_violation` applies).
    pub fn has_contracts(&self) -> bool {
        self.features.iter().any(|f| !f.contract.is_empty())
    }

    /// Whether the view's features are windowed aggregations (its rows are events, not values).
    pub fn is_aggregated(&self) -> bool {
        self.tile.is_some()
    }

    /// The longest finite window of an aggregated view, in µs; `None` when one is `lifetime`
    /// (or the view is not aggregated).
    pub fn longest_window_micros(&self) -> Option<i64> {
        let mut longest = None;
        for f in &self.features {
            longest = longest.max(Some(f.aggregation.as_ref()?.window.micros()?));
        }
        longest
    }
}

/// An aggregate function of a windowed aggregation (DESIGN.md rule 6). Every function skips
/// null inputs, as SQL's do; `count` without an input counts rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggFunction {
    Count,
    Sum,
    Mean,
    Min,
    Max,
    First,
    Last,
    VarPop,
    StddevPop,
    CountDistinct,
}

impl AggFunction {
    pub const ALL: [AggFunction; 10] = [
        AggFunction::Count,
        AggFunction::Sum,
        AggFunction::Mean,
        AggFunction::Min,
        AggFunction::Max,
        AggFunction::First,
        AggFunction::Last,
        AggFunction::VarPop,
        AggFunction::StddevPop,
        AggFunction::CountDistinct,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AggFunction::Count => "count",
            AggFunction::Sum => "sum",
            AggFunction::Mean => "mean",
            AggFunction::Min => "min",
            AggFunction::Max => "max",
            AggFunction::First => "first",
            AggFunction::Last => "last",
            AggFunction::VarPop => "var_pop",
            AggFunction::StddevPop => "stddev_pop",
            AggFunction::CountDistinct => "count_distinct",
        }
    }

    /// The result type when it does not depend on the input; `None` for min, max, first and
    /// last, whose result has the input's type (the feature's declared `type`).
    pub fn fixed_type(self) -> Option<FeatureType> {
        match self {
            AggFunction::Count | AggFunction::CountDistinct => Some(FeatureType::Int64),
            AggFunction::Sum | AggFunction::Mean | AggFunction::VarPop | AggFunction::StddevPop => {
                Some(FeatureType::Float64)
            }
            AggFunction::Min | AggFunction::Max | AggFunction::First | AggFunction::Last => None,
        }
    }

    /// Whether an empty window gives 0 (the counts) rather than null.
    pub fn zero_when_empty(self) -> bool {
        matches!(self, AggFunction::Count | AggFunction::CountDistinct)
    }
}

impl FromStr for AggFunction {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        AggFunction::ALL.into_iter().find(|f| f.name() == s).ok_or(())
    }
}

impl fmt::Display for AggFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How far back a windowed aggregation looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Window {
    /// Every row up to `t`.
    Lifetime,
    /// The last `w` (tiled or exact, as the view's tile says).
    Last(Duration),
}

impl Window {
    /// The window's length in µs; `None` for `lifetime`.
    pub fn micros(self) -> Option<i64> {
        match self {
            Window::Lifetime => None,
            Window::Last(d) => Some(d.micros()),
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Window::Lifetime => f.write_str("lifetime"),
            Window::Last(d) => write!(f, "{d}"),
        }
    }
}

impl Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text == "lifetime" {
            return Ok(Window::Lifetime);
        }
        text.parse()
            .map(Window::Last)
            .map_err(|e: crate::duration::DurationError| serde::de::Error::custom(e.0))
    }
}

/// The tile of an aggregated view: the unit its events are pre-aggregated in, offline and
/// online (DESIGN.md rule 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tile {
    /// No tiling: windows are exactly `(t − w, t]` (each event its own 1 µs tile).
    Exact,
    Every(Duration),
}

impl Tile {
    /// The tile's length in µs (1 for exact windows).
    pub fn micros(self) -> i64 {
        match self {
            Tile::Exact => 1,
            Tile::Every(d) => d.micros(),
        }
    }
}

impl fmt::Display for Tile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tile::Exact => f.write_str("exact"),
            Tile::Every(d) => write!(f, "{d}"),
        }
    }
}

impl Serialize for Tile {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Tile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text == "exact" {
            return Ok(Tile::Exact);
        }
        text.parse()
            .map(Tile::Every)
            .map_err(|e: crate::duration::DurationError| serde::de::Error::custom(e.0))
    }
}

/// One windowed aggregate: the feature is `function(expr)` over `window`, counting only rows
/// where `filter` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aggregation {
    pub function: AggFunction,
    /// A SQL expression over the source's columns; `None` only for `count`, which then
    /// counts rows (`count(*)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expr: Option<String>,
    pub window: Window,
    /// `where`: a SQL condition over the source's columns; rows where it is not true are skipped.
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: FeatureType,
    /// A SQL expression over the source's columns (feature views) or over request fields and
    /// other views' features (on-demand views). `None`: the source column of the same name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expr: Option<String>,
    #[serde(default, skip_serializing_if = "Contract::is_empty")]
    pub contract: Contract,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Set on the features of an aggregated view: the feature is this aggregate over a
    /// window, and `expr` is unused (the aggregation holds its input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregation: Option<Aggregation>,
    #[serde(skip)]
    pub loc: Loc,
    #[serde(skip)]
    pub expr_loc: Loc,
}

impl Feature {
    /// The expression as written, or the source column it defaults to.
    pub fn expr_or_column(&self) -> &str {
        self.expr.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureView {
    pub name: String,
    /// One or more entities; the view's join keys are theirs, in this order.
    pub entities: Vec<String>,
    pub source: String,
    /// `None`: no lower bound on the age of a row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Duration>,
    #[serde(default)]
    pub as_of: AsOf,
    /// What a row that breaks a feature's contract does; matters only when a feature has one.
    #[serde(default, skip_serializing_if = "is_default")]
    pub on_violation: OnViolation,
    pub online: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub features: Vec<Feature>,
    /// The tile of an aggregated view (DESIGN.md rule 6); `None` on row views.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tile: Option<Tile>,
    #[serde(skip)]
    pub loc: Loc,
    #[serde(skip)]
    pub entities_loc: Loc,
    #[serde(skip)]
    pub source_loc: Loc,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestField {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: FeatureType,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnDemandView {
    pub name: String,
    pub request: Vec<RequestField>,
    pub features: Vec<Feature>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip)]
    pub loc: Loc,
}

/// `view:feature` or `view:*` in a feature service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureRef {
    pub view: String,
    /// `None` selects every feature of the view (`view:*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature: Option<String>,
    #[serde(skip)]
    pub loc: Loc,
}

impl fmt::Display for FeatureRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.view, self.feature.as_deref().unwrap_or("*"))
    }
}

impl FeatureRef {
    /// Parses `view:feature` / `view:*`; `None` when the text has another shape.
    pub fn parse(text: &str, loc: &Loc) -> Option<Self> {
        let (view, feature) = text.split_once(':')?;
        let (view, feature) = (view.trim(), feature.trim());
        if view.is_empty() || feature.is_empty() {
            return None;
        }
        let feature = (feature != "*").then(|| feature.to_string());
        Some(FeatureRef {
            view: view.to_string(),
            feature,
            loc: loc.clone(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureService {
    pub name: String,
    pub features: Vec<FeatureRef>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Thresholds for the drift of what is served against the service's reference training
    /// set (`skewless monitor`); unset ones take the defaults. Metadata: not in the version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<Monitoring>,
    #[serde(skip)]
    pub loc: Loc,
}

/// A service's `monitoring:` block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Monitoring {
    /// A feature breaches when the PSI of its served values is above this ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psi: Option<f64>,
    /// ... or their null rate moved by more than this (a fraction) ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub null_rate: Option<f64>,
    /// ... once a window holds this many values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_values: Option<u64>,
}
