//! On-demand views as compiled programs: planned once, evaluated by both paths.
//!
//! An [`OnDemandProgram`] holds an on-demand view's features as physical expressions over
//! its inputs ([`OnDemandInput`]: request fields, and features of other views). Training
//! sets and serving both evaluate the same program; each caller only says where each input
//! column comes from (spine columns, joined features, looked-up values, request fields), so
//! the walk over the inputs and the casting to their declared types live here, once.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::physical_plan::PhysicalExpr;
use skewless_defs::{Definitions, Diagnostics, FeatureType, OnDemandView};

use crate::compile::{compile_on_demand, on_demand_input_schema, session};
use crate::types::arrow_type;

/// One input column of an on-demand view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnDemandInput {
    /// A request field, given with the request (or a spine column of that name).
    Request { name: String, ty: FeatureType },
    /// A feature of another (feature or on-demand) view.
    Feature {
        view: String,
        feature: String,
        ty: FeatureType,
    },
}

impl OnDemandInput {
    pub fn ty(&self) -> FeatureType {
        match self {
            OnDemandInput::Request { ty, .. } | OnDemandInput::Feature { ty, .. } => *ty,
        }
    }

    /// The Arrow type the program reads this input as.
    pub fn data_type(&self) -> DataType {
        arrow_type(self.ty())
    }
}

/// Why an evaluation failed: the caller could not give an input, or evaluating failed.
#[derive(Debug)]
pub enum EvalError<E> {
    Input(E),
    Engine(crate::Error),
}

/// An on-demand view, compiled once.
#[derive(Debug)]
pub struct OnDemandProgram {
    pub view: String,
    inputs: Vec<OnDemandInput>,
    schema: SchemaRef,
    features: Vec<(String, Arc<dyn PhysicalExpr>)>,
    /// Per feature, which inputs its expression reads (by index into `inputs`).
    reads: Vec<Vec<bool>>,
}

impl OnDemandProgram {
    /// Plans every feature of `view` (with DataFusion, once).
    pub fn compile(defs: &Definitions, view: &OnDemandView) -> Result<Self, Diagnostics> {
        let one = |message: String| Diagnostics(vec![skewless_defs::Diagnostic::new(&view.loc, message)]);
        let schema = on_demand_input_schema(defs, view)
            .map_err(|e| one(format!("inputs of on-demand view `{}` clash: {e}", view.name)))?;
        let compiled = compile_on_demand(defs, view)?;
        let ctx = session();
        let features: Vec<(String, Arc<dyn PhysicalExpr>)> = compiled
            .into_iter()
            .map(|f| {
                crate::physical_expr(&ctx, f.expr, &schema)
                    .map(|e| (f.name, e))
                    .map_err(|e| one(format!("on-demand view `{}`: {}", view.name, e.strip_backtrace())))
            })
            .collect::<Result<_, _>>()?;
        let inputs = schema
            .iter()
            .map(|(qualifier, field)| {
                let name = field.name().clone();
                match qualifier {
                    None => {
                        let ty = view.request.iter().find(|r| r.name == name).map(|r| r.ty);
                        ty.map(|ty| OnDemandInput::Request { name, ty })
                    }
                    Some(source) => {
                        let source = source.table().to_string();
                        let ty = defs
                            .view_features(&source)
                            .and_then(|fs| fs.iter().find(|f| f.name == name))
                            .map(|f| f.ty);
                        ty.map(|ty| OnDemandInput::Feature {
                            view: source,
                            feature: name,
                            ty,
                        })
                    }
                }
                .ok_or_else(|| {
                    one(format!(
                        "on-demand view `{}`: input `{}` has no type",
                        view.name,
                        field.name()
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        let width = schema.fields().len();
        let reads = features
            .iter()
            .map(|(_, expr)| {
                let mut read = vec![false; width];
                for column in datafusion::physical_expr::utils::collect_columns(expr) {
                    if let Some(slot) = read.get_mut(column.index()) {
                        *slot = true;
                    }
                }
                read
            })
            .collect();
        Ok(OnDemandProgram {
            view: view.name.clone(),
            inputs,
            schema: Arc::new(schema.as_arrow().clone()),
            features,
            reads,
        })
    }

    /// The view's feature names, in the order [`Self::evaluate`] returns their columns.
    pub fn feature_names(&self) -> impl Iterator<Item = &str> {
        self.features.iter().map(|(name, _)| name.as_str())
    }

    /// Evaluates every feature over `rows` rows. `column` gives each input's values (any
    /// type that casts to the input's declared type); the results are named by feature.
    pub fn evaluate<E>(
        &self,
        rows: usize,
        column: impl FnMut(&OnDemandInput) -> Result<ArrayRef, E>,
    ) -> Result<Vec<(String, ArrayRef)>, EvalError<E>> {
        let all: Vec<usize> = (0..self.features.len()).collect();
        self.evaluate_some(rows, &all, column)
    }

    /// The inputs that the features at `wanted` (indices, in [`Self::feature_names`] order)
    /// read.
    pub fn inputs_of(&self, wanted: &[usize]) -> impl Iterator<Item = &OnDemandInput> {
        self.inputs
            .iter()
            .enumerate()
            .filter(move |(i, _)| wanted.iter().any(|&f| self.reads.get(f).is_some_and(|r| r[*i])))
            .map(|(_, input)| input)
    }

    /// Evaluates only the features at `wanted`, each exactly as [`Self::evaluate`] would: a
    /// feature's expression reads only its own inputs, so `column` is asked only for those,
    /// and the others are null columns no wanted expression looks at. The results are in
    /// `wanted` order.
    pub fn evaluate_some<E>(
        &self,
        rows: usize,
        wanted: &[usize],
        mut column: impl FnMut(&OnDemandInput) -> Result<ArrayRef, E>,
    ) -> Result<Vec<(String, ArrayRef)>, EvalError<E>> {
        let mut columns = Vec::with_capacity(self.inputs.len());
        for (i, input) in self.inputs.iter().enumerate() {
            let target = input.data_type();
            if !wanted.iter().any(|&f| self.reads.get(f).is_some_and(|r| r[i])) {
                columns.push(datafusion::arrow::array::new_null_array(&target, rows));
                continue;
            }
            let values = column(input).map_err(EvalError::Input)?;
            let target = input.data_type();
            columns.push(if *values.data_type() == target {
                values
            } else {
                cast(&values, &target).map_err(|e| EvalError::Engine(crate::Error::DataFusion(e.into())))?
            });
        }
        let options = datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(rows));
        let batch = RecordBatch::try_new_with_options(Arc::clone(&self.schema), columns, &options)
            .map_err(|e| EvalError::Engine(crate::Error::DataFusion(e.into())))?;
        wanted
            .iter()
            .filter_map(|&f| self.features.get(f))
            .map(|(name, expr)| {
                expr.evaluate(&batch)
                    .and_then(|v| v.into_array(rows))
                    .map(|a| (name.clone(), a))
                    .map_err(|e| EvalError::Engine(crate::Error::DataFusion(e)))
            })
            .collect()
    }
}
