//! Long work off the calling thread: the GIL released, Ctrl-C honoured, progress to a
//! callback or to logging.

use std::sync::mpsc;
use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// How often the waiting thread looks for Ctrl-C and progress.
const TICK: Duration = Duration::from_millis(50);

/// Where the work reports progress: lines for Python's `logging` (logger `skewless`).
#[derive(Clone)]
pub(crate) struct Progress(mpsc::Sender<String>);

impl Progress {
    pub(crate) fn say(&self, line: String) {
        let _ = self.0.send(line);
    }
}

/// Runs `work` (a future built on the work thread, on a runtime of its own) with the GIL
/// released. Ctrl-C in Python cancels it (the future is dropped at its next await) and raises
/// `KeyboardInterrupt` once the thread has stopped. Progress goes to logging.
pub(crate) fn run<T, F, Fut>(py: Python<'_>, work: F) -> PyResult<T>
where
    T: Send + 'static,
    F: FnOnce(Progress) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
{
    run_reporting(py, None, work)
}

/// [`run`], with each progress line given to `callback` (called on the calling thread, the
/// GIL held, so it may touch Python objects) instead of logging when there is one. An
/// exception the callback raises cancels the work and is raised.
pub(crate) fn run_reporting<T, F, Fut>(py: Python<'_>, callback: Option<&Bound<'_, PyAny>>, work: F) -> PyResult<T>
where
    T: Send + 'static,
    F: FnOnce(Progress) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
{
    let (done, answer) = mpsc::channel::<Result<T, String>>();
    // Read with the GIL released, from a closure that must be `Send`.
    let answer = std::sync::Mutex::new(answer);
    let (say, said) = mpsc::channel::<String>();
    let (cancel, cancelled) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("skewless-work".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = done.send(Err(format!("starting a runtime: {e}")));
                    return;
                }
            };
            let outcome = runtime.block_on(async move {
                tokio::select! {
                    finished = work(Progress(say)) => Some(finished),
                    _ = cancelled => None,
                }
            });
            if let Some(finished) = outcome {
                let _ = done.send(Ok(finished));
            }
        })
        .map_err(|e| PyRuntimeError::new_err(format!("starting the work thread: {e}")))?;
    let logger = py.import("logging")?.call_method1("getLogger", ("skewless",))?;
    let report = |line: String| match callback {
        Some(callback) => callback.call1((line,)).map(drop),
        None => logger.call_method1("info", ("%s", line)).map(drop),
    };
    let mut cancel = Some(cancel);
    loop {
        let waited = py.detach(|| {
            answer
                .lock()
                .map_or(Err(mpsc::RecvTimeoutError::Disconnected), |a| a.recv_timeout(TICK))
        });
        let reported = said.try_iter().try_for_each(report);
        let stop = match (&waited, reported) {
            (Ok(_), Err(raised)) => Some(raised),
            (Ok(_), Ok(())) => None,
            (Err(_), Err(raised)) => Some(raised),
            (Err(_), Ok(())) => py.check_signals().err(),
        };
        if let Some(raised) = stop {
            // Ctrl-C or the callback's exception: the work stops, and the thread is waited
            // for, so nothing it writes outlives the call.
            if let Some(cancel) = cancel.take() {
                let _ = cancel.send(());
            }
            let _ = py.detach(|| thread.join());
            return Err(raised);
        }
        match waited {
            Ok(result) => {
                let _ = py.detach(|| thread.join());
                return result.map_err(PyRuntimeError::new_err);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = py.detach(|| thread.join());
                return Err(PyRuntimeError::new_err(
                    "the work thread stopped without an answer (it panicked: a bug, please report it)",
                ));
            }
        }
    }
}
