//! Prometheus metrics, kept in the server and written as text at `GET /metrics`.
//!
//! Counters and histograms are few and labelled by bounded sets (routes, status codes, error
//! codes, views, statuses), so a mutex-guarded map per family is simple and cheap next to a
//! store round trip.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, count) in BUCKETS.iter().zip(self.counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, count) in BUCKETS.iter().zip(self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Debug, Default)]
struct Families {
    requests: BTreeMap<(&'static str, u16), u64>,
    latency: BTreeMap<&'static str, Histogram>,
    errors: BTreeMap<&'static str, u64>,
    /// By view, then status.
    values: BTreeMap<String, BTreeMap<&'static str, u64>>,
    store: Histogram,
    /// By source: rows pushed (appended), and pushes acknowledged as replays.
    pushed_rows: BTreeMap<String, u64>,
    replayed_pushes: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
pub struct Metrics {
    families: Mutex<Families>,
}

impl Metrics {
    fn with(&self, f: impl FnOnce(&mut Families)) {
        // A poisoned lock only means a panic elsewhere; the counts are still counts.
        f(&mut self.families.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    }

    pub fn request(&self, route: &'static str, status: u16, seconds: f64, error_code: Option<&'static str>) {
        self.with(|m| {
            *m.requests.entry((route, status)).or_default() += 1;
            m.latency.entry(route).or_default().observe(seconds);
            if let Some(code) = error_code {
                *m.errors.entry(code).or_default() += 1;
            }
        });
    }

    /// Values served: counts by view and status (summed here).
    pub fn values<'a>(&self, served: impl Iterator<Item = (&'a str, &'static str, u64)>) {
        self.with(|m| {
            for (view, status, n) in served {
                // Allocates a view's name once, the first time it is served.
                let by_status = match m.values.get_mut(view) {
                    Some(by_status) => by_status,
                    None => m.values.entry(view.to_string()).or_default(),
                };
                *by_status.entry(status).or_default() += n;
            }
        });
    }

    pub fn store_round_trip(&self, seconds: f64) {
        self.with(|m| m.store.observe(seconds));
    }

    /// The Prometheus text exposition, with each view's newest event time (`None`: nothing
    /// written for the served version yet, or the store did not answer) judged at `now` (µs).
    /// A push that succeeded: its rows, appended or replayed.
    pub fn pushed(&self, source: &str, rows: u64, appended: bool) {
        self.with(|m| {
            let family = if appended {
                &mut m.pushed_rows
            } else {
                &mut m.replayed_pushes
            };
            let count = if appended { rows } else { 1 };
            *family.entry(source.to_string()).or_default() += count;
        });
    }

    pub fn render(&self, applied_version: u64, freshness: &[(String, Option<i64>)], now: i64) -> String {
        let mut out = String::new();
        self.with(|m| {
            out.push_str("# HELP skewless_requests_total HTTP requests by route and status.\n# TYPE skewless_requests_total counter\n");
            for ((route, status), n) in &m.requests {
                let _ = writeln!(out, "skewless_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}");
            }
            out.push_str("# HELP skewless_request_duration_seconds Request latency by route.\n# TYPE skewless_request_duration_seconds histogram\n");
            for (route, h) in &m.latency {
                h.write(&mut out, "skewless_request_duration_seconds", &format!("route=\"{route}\""));
            }
            out.push_str("# HELP skewless_errors_total Error answers by code.\n# TYPE skewless_errors_total counter\n");
            for (code, n) in &m.errors {
                let _ = writeln!(out, "skewless_errors_total{{code=\"{code}\"}} {n}");
            }
            out.push_str("# HELP skewless_values_served_total Feature values served by view and status.\n# TYPE skewless_values_served_total counter\n");
            for (view, by_status) in &m.values {
                for (status, n) in by_status {
                    let _ = writeln!(out, "skewless_values_served_total{{view=\"{view}\",status=\"{status}\"}} {n}");
                }
            }
            out.push_str("# HELP skewless_store_round_trip_seconds Online store round trips.\n# TYPE skewless_store_round_trip_seconds histogram\n");
            m.store.write(&mut out, "skewless_store_round_trip_seconds", "");
            out.push_str("# HELP skewless_pushed_rows_total Rows pushed and logged, by source.\n# TYPE skewless_pushed_rows_total counter\n");
            for (source, n) in &m.pushed_rows {
                let _ = writeln!(out, "skewless_pushed_rows_total{{source=\"{source}\"}} {n}");
            }
            out.push_str("# HELP skewless_replayed_pushes_total Pushes whose id was seen before (acknowledged, nothing written), by source.\n# TYPE skewless_replayed_pushes_total counter\n");
            for (source, n) in &m.replayed_pushes {
                let _ = writeln!(out, "skewless_replayed_pushes_total{{source=\"{source}\"}} {n}");
            }
        });
        out.push_str("# HELP skewless_applied_version The applied definitions version served.\n# TYPE skewless_applied_version gauge\n");
        let _ = writeln!(out, "skewless_applied_version {applied_version}");
        // A record ahead of the clock cannot be right (written before pushed times were
        // bounded): it is reported as impossible, not as a negative age that hides staleness.
        let ahead = |newest: i64| newest > now.saturating_add(skewless_defs::instant::PUSH_AHEAD_MICROS);
        let (impossible, freshness): (Vec<_>, Vec<_>) =
            freshness.iter().partition(|(_, newest)| newest.is_some_and(ahead));
        out.push_str("# HELP skewless_view_freshness_impossible Views whose freshness record lies in the future (a row dated ahead of the clock was written): re-materialize them.\n# TYPE skewless_view_freshness_impossible gauge\n");
        for (view, _) in &impossible {
            let _ = writeln!(out, "skewless_view_freshness_impossible{{view=\"{view}\"}} 1");
        }
        out.push_str("# HELP skewless_view_freshness_seconds Seconds from the newest event time in the online store (materialized or pushed) to now, per view.\n# TYPE skewless_view_freshness_seconds gauge\n");
        for (view, newest) in &freshness {
            if let Some(newest) = newest {
                let _ = writeln!(
                    out,
                    "skewless_view_freshness_seconds{{view=\"{view}\"}} {}",
                    (now - newest) as f64 / 1e6
                );
            }
        }
        out.push_str("# HELP skewless_view_newest_event_timestamp_seconds The newest event time in the online store per view, in seconds since the epoch.\n# TYPE skewless_view_newest_event_timestamp_seconds gauge\n");
        for (view, newest) in &freshness {
            if let Some(newest) = newest {
                let _ = writeln!(
                    out,
                    "skewless_view_newest_event_timestamp_seconds{{view=\"{view}\"}} {}",
                    *newest as f64 / 1e6
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_counts_add_up() {
        let m = Metrics::default();
        m.request("/v1/features", 200, 0.0003, None);
        m.request("/v1/features", 200, 0.02, None);
        m.request("/v1/features", 404, 0.0001, Some("UNKNOWN_FEATURE"));
        m.values([("v", "PRESENT", 1), ("v", "PRESENT", 1), ("v", "NOT_FOUND", 1)].into_iter());
        let freshness = [
            ("v".to_string(), Some(1_000_000)),
            ("w".to_string(), None),
            ("x".to_string(), Some(91_500_000 + 3_600_000_000)),
        ];
        let text = m.render(3, &freshness, 91_500_000);
        assert!(
            text.contains("skewless_requests_total{route=\"/v1/features\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("skewless_request_duration_seconds_bucket{route=\"/v1/features\",le=\"0.0005\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("skewless_request_duration_seconds_bucket{route=\"/v1/features\",le=\"+Inf\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("skewless_errors_total{code=\"UNKNOWN_FEATURE\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("skewless_values_served_total{view=\"v\",status=\"PRESENT\"} 2"),
            "{text}"
        );
        assert!(text.contains("skewless_applied_version 3"), "{text}");
        assert!(
            text.contains("skewless_view_freshness_seconds{view=\"v\"} 90.5\n"),
            "{text}"
        );
        assert!(
            text.contains("skewless_view_newest_event_timestamp_seconds{view=\"v\"} 1\n"),
            "{text}"
        );
        assert!(!text.contains("view=\"w\""), "{text}");
        // A record an hour ahead of the clock: impossible, never a negative age.
        assert!(
            text.contains("skewless_view_freshness_impossible{view=\"x\"} 1\n"),
            "{text}"
        );
        assert!(!text.contains("skewless_view_freshness_seconds{view=\"x\"}"), "{text}");
    }
}
