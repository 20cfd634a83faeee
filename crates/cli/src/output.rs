//! Printing: aligned tables, JSON, plans.

use serde::Serialize;
use skewless::defs::plan::{Action, Plan};

pub fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A left-aligned text table; the last column is never padded.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<const N: usize>(header: [&str; N]) -> Self {
        Table {
            rows: vec![header.iter().map(|h| h.to_string()).collect()],
        }
    }

    pub fn row<const N: usize>(&mut self, cells: [String; N]) {
        self.rows.push(cells.to_vec());
    }

    pub fn print(&self) {
        let columns = self.rows[0].len();
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 == columns {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<width$}  ", width = widths[c]));
                }
            }
            println!("{}", line.trim_end());
        }
    }
}

pub fn print_plan(plan: &Plan) {
    if plan.is_empty() {
        println!("  no changes");
        return;
    }
    for c in &plan.changes {
        let (mark, versions) = match c.action {
            Action::Add => (
                "+",
                format!("(new, version {})", c.new_version.as_deref().unwrap_or("?")),
            ),
            Action::Change => (
                "~",
                format!(
                    "{} → {}",
                    c.old_version.as_deref().unwrap_or("?"),
                    c.new_version.as_deref().unwrap_or("?")
                ),
            ),
            Action::Remove => (
                "-",
                format!("(removed, was {})", c.old_version.as_deref().unwrap_or("?")),
            ),
        };
        println!("  {mark} {} `{}` {versions}", c.kind.name(), c.name);
        for why in &c.breaking {
            println!("      BREAKING: {why}");
        }
    }
    let count = |a: Action| plan.changes.iter().filter(|c| c.action == a).count();
    println!(
        "{} to add, {} to change, {} to remove; {} breaking.",
        count(Action::Add),
        count(Action::Change),
        count(Action::Remove),
        plan.breaking().count()
    );
}

/// Progress of a long run on stderr: one redrawn line on a terminal, plain lines otherwise
/// (logs and CI keep every step).
pub fn progress_printer() -> impl Fn(skewless::training::Progress) {
    use std::io::{IsTerminal, Write};

    use skewless::training::Progress;
    let terminal = std::io::stderr().is_terminal();
    move |event: Progress| {
        let line = event.to_string();
        let mut err = std::io::stderr().lock();
        if terminal {
            let _ = write!(err, "\r\x1b[2K{line}");
            if matches!(event, Progress::OnDemand { .. }) {
                let _ = writeln!(err);
            }
        } else {
            let _ = writeln!(err, "{line}");
        }
    }
}

/// Materialization progress on stderr, like [`progress_printer`]: a redrawn line on a
/// terminal; otherwise a line per view and about every tenth of its writes.
pub fn materialize_progress_printer() -> impl Fn(skewless::online::MaterializeProgress) {
    use std::io::{IsTerminal, Write};

    use skewless::online::MaterializeProgress;
    let terminal = std::io::stderr().is_terminal();
    let printed_steps = std::cell::Cell::new(0usize);
    move |event: MaterializeProgress| {
        let line = match &event {
            MaterializeProgress::Computing { view, index, views } => {
                printed_steps.set(0);
                format!("[{}/{views}] {view}: computing values …", index + 1)
            }
            MaterializeProgress::Writing { view, done } => {
                // Off a terminal, a line per 100,000 keys.
                let step = done / 100_000;
                if !terminal && step <= printed_steps.get() {
                    return;
                }
                printed_steps.set(step);
                format!("{view}: wrote {done} keys")
            }
            MaterializeProgress::Done(r) => match &r.error {
                Some(error) => format!("{}: FAILED: {error}", r.view),
                None => format!(
                    "{}: {} keys written, {} not newer, {} rows read in {:.2}s{}",
                    r.view,
                    r.keys_written,
                    r.writes_skipped_not_newer,
                    r.rows_read,
                    r.seconds,
                    r.note.as_ref().map(|n| format!(" ({n})")).unwrap_or_default()
                ),
            },
            MaterializeProgress::Warning(warning) => format!("warning: {warning}"),
        };
        let mut err = std::io::stderr().lock();
        if terminal {
            let _ = write!(err, "\r\x1b[2K{line}");
            if matches!(event, MaterializeProgress::Done(_) | MaterializeProgress::Warning(_)) {
                let _ = writeln!(err);
            }
        } else {
            let _ = writeln!(err, "{line}");
        }
    }
}
