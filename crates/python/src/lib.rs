//! The native core of the Python package: `skewless._skewless`, wrapped by the pure-Python
//! `skewless` package (python/skewless), which gives it Feast's conventions.
//!
//! Why native and not a subprocess: a training job gets its training set as Arrow arrays the
//! Rust side built, handed over through the Arrow C Stream interface (no copy, no Parquet round
//! trip), and looks values up through the same compiled serving core as the server.
//!
//! The rules every call here keeps:
//! - Long work (training sets, materialization) runs on a thread of its own with the GIL
//!   released ([`work::run`]); the calling thread wakes every 50 ms to check for Ctrl-C,
//!   which cancels the work and raises `KeyboardInterrupt`, and to hand progress to Python's
//!   `logging` (logger `skewless`). Nothing is printed.
//! - Errors become the exception classes of `skewless.errors`, with their fields as
//!   attributes ([`errors`]).
//! - Reports cross as JSON text the Python side loads: the same documents the CLI's `--json`
//!   prints.

mod errors;
mod project;
mod work;

use pyo3::prelude::*;

#[pymodule]
fn _skewless(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", skewless::VERSION)?;
    m.add_class::<project::PyProject>()?;
    m.add_class::<project::PyTrainingSet>()?;
    Ok(())
}
