//! What features look like, and whether that moved: `profile` (one training set's
//! profiles), `drift` (a training set against a reference one) and `monitor` (a service's
//! reference, and the drift of what a running server serves against it).

use std::path::Path;
use std::process::ExitCode;

use skewless::manifest::{Manifest, read_manifest};
use skewless::profile::Values;
use skewless::profile::drift::{Drift, drift as drift_of};

use crate::args::MonitorCommand;
use crate::output::print_json;

/// `profile MANIFEST`: each feature's profile, a line each (numbers, then categories).
pub(crate) fn profile(manifest: &Path, features: &[String], json: bool) -> anyhow::Result<ExitCode> {
    let recorded = profiled(manifest)?;
    let unknown: Vec<&String> = features
        .iter()
        .filter(|f| !recorded.profiles.contains_key(*f))
        .collect();
    if !unknown.is_empty() {
        anyhow::bail!(
            "{} has no profile of {}; it profiles {}",
            manifest.display(),
            unknown.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", "),
            recorded.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    let shown: Vec<(&String, &skewless::profile::Profile)> = recorded
        .profiles
        .iter()
        .filter(|(name, _)| features.is_empty() || features.contains(name))
        .collect();
    if json {
        print_json(&shown.into_iter().collect::<std::collections::BTreeMap<_, _>>())?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{}: {} rows (the training set {})",
        manifest.display(),
        recorded.rows.output,
        recorded.output.path.display()
    );
    let width = shown
        .iter()
        .map(|(name, _)| name.len())
        .max()
        .unwrap_or(0)
        .max("feature".len());
    let numbers: Vec<_> = shown
        .iter()
        .filter_map(|(name, p)| match &p.values {
            Values::Numeric(n) => Some((name, p, n)),
            _ => None,
        })
        .collect();
    if !numbers.is_empty() {
        println!(
            "\n{:width$}  {:>9} {:>7} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "feature", "count", "null%", "NaN/inf", "min", "p05", "p50", "p95", "max", "mean", "stddev"
        );
        for (name, p, n) in numbers {
            let q = |k: &str| n.quantiles.get(k).copied();
            println!(
                "{name:width$}  {:>9} {:>7} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
                p.count,
                percent(p.nulls, p.count),
                n.nan + n.infinite,
                number(n.min),
                number(q("p05")),
                number(q("p50")),
                number(q("p95")),
                number(n.max),
                number(n.mean),
                number(n.stddev),
            );
        }
    }
    let categories: Vec<_> = shown
        .iter()
        .filter_map(|(name, p)| match &p.values {
            Values::Categorical(c) => Some((name, p, c)),
            _ => None,
        })
        .collect();
    if !categories.is_empty() {
        println!(
            "\n{:width$}  {:>9} {:>7} {:>9}  most frequent",
            "feature", "count", "null%", "distinct"
        );
        for (name, p, c) in categories {
            let top: Vec<String> = c
                .top
                .iter()
                .take(5)
                .map(|(value, count)| format!("{value:?} {}", percent(*count, p.count)))
                .collect();
            println!(
                "{name:width$}  {:>9} {:>7} {:>9}  {}",
                p.count,
                percent(p.nulls, p.count),
                c.distinct.map_or_else(|| "many".to_string(), |d| d.to_string()),
                top.join(", ")
            );
        }
    }
    for (name, p) in &shown {
        if let Values::Other { data_type } = &p.values {
            println!("\n{name}: {data_type}, {} rows, {} null", p.count, p.nulls);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".into();
    }
    format!("{:.1}%", 100.0 * part as f64 / whole as f64)
}

/// Four significant digits, in a column's width.
fn number(x: Option<f64>) -> String {
    match x {
        None => "-".into(),
        Some(0.0) => "0".into(),
        Some(x) if (1e-3..1e7).contains(&x.abs()) => {
            let decimals = (3 - x.abs().log10().floor() as i32).clamp(0, 6) as usize;
            format!("{x:.decimals$}")
        }
        Some(x) => format!("{x:.3e}"),
    }
}

/// A manifest that has profiles, or an error saying why it has none.
fn profiled(path: &Path) -> anyhow::Result<Manifest> {
    let recorded = read_manifest(path)?;
    if recorded.profiles.is_empty() {
        anyhow::bail!(
            "{} has no profiles: its training set was written with --no-profile, or by a skewless before profiles",
            path.display()
        );
    }
    Ok(recorded)
}

/// Where a feature's drift passes a threshold.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Thresholds {
    pub psi: f64,
    pub null_rate: f64,
}

/// `drift --manifest REFERENCE --manifest CURRENT`: each feature both profile, PSI and
/// Jensen–Shannon on the reference's bins and the null-rate change; exit 1 past a threshold.
pub(crate) fn drift(reference: &Path, current: &Path, limits: Thresholds, json: bool) -> anyhow::Result<ExitCode> {
    let (r, c) = (profiled(reference)?, profiled(current)?);
    let mut rows: Vec<(String, Drift, Vec<String>)> = Vec::new();
    let mut missing: Vec<String> = Vec::new();
    for (feature, rp) in &r.profiles {
        let Some(cp) = c.profiles.get(feature) else {
            missing.push(feature.clone());
            continue;
        };
        let d = drift_of(rp, cp).map_err(|e| anyhow::anyhow!("{feature}: {e}"))?;
        let mut breaches = Vec::new();
        if d.psi > limits.psi {
            breaches.push(format!("psi {:.3} > {}", d.psi, limits.psi));
        }
        if d.null_rate_change().abs() > limits.null_rate {
            breaches.push(format!(
                "null rate {:.1}% → {:.1}%",
                100.0 * d.null_rate.0,
                100.0 * d.null_rate.1
            ));
        }
        rows.push((feature.clone(), d, breaches));
    }
    let breached = rows.iter().filter(|(_, _, b)| !b.is_empty()).count();
    if json {
        let features: std::collections::BTreeMap<&String, serde_json::Value> = rows
            .iter()
            .map(|(f, d, b)| {
                let mut v = serde_json::to_value(d).unwrap_or_default();
                v["breaches"] = serde_json::json!(b);
                (f, v)
            })
            .collect();
        print_json(&serde_json::json!({
            "reference": reference,
            "current": current,
            "thresholds": { "psi": limits.psi, "null_rate": limits.null_rate },
            "features": features,
            "only_in_reference": missing,
            "only_in_current": c.profiles.keys().filter(|f| !r.profiles.contains_key(*f)).collect::<Vec<_>>(),
            "breaches": breached,
        }))?;
    } else {
        let width = rows
            .iter()
            .map(|(f, _, _)| f.len())
            .max()
            .unwrap_or(0)
            .max("feature".len());
        println!("drift of {} from {}", current.display(), reference.display());
        println!("{:width$}  {:>7} {:>7} {:>15}", "feature", "psi", "js", "null rate");
        for (feature, d, breaches) in &rows {
            let line = format!(
                "{feature:width$}  {:>7.3} {:>7.3} {:>15}  {}",
                d.psi,
                d.js,
                format!("{:.1}% → {:.1}%", 100.0 * d.null_rate.0, 100.0 * d.null_rate.1),
                if breaches.is_empty() {
                    String::new()
                } else {
                    format!("BREACH: {}", breaches.join(", "))
                }
            );
            println!("{}", line.trim_end());
        }
        for feature in &missing {
            println!("{feature:width$}  not in {}", current.display());
        }
        println!(
            "{breached} of {} features past the thresholds (psi > {}, null rate change > {})",
            rows.len(),
            limits.psi,
            limits.null_rate
        );
    }
    Ok(if breached > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

pub(crate) fn monitor(project: &skewless::Project, command: MonitorCommand) -> anyhow::Result<ExitCode> {
    match command {
        MonitorCommand::SetReference {
            service,
            manifest,
            psi,
            null_rate,
            min_values,
        } => {
            let given = skewless::defs::Monitoring {
                psi,
                null_rate,
                min_values,
            };
            let (path, named) = project.set_reference(&service, &manifest, &given)?;
            let t = named.thresholds;
            println!(
                "`{service}` now measures drift against {} ({} features; psi > {}, null rate change > {}, from {} values): {}",
                named.manifest.display(),
                named.profiles.len(),
                t.psi,
                t.null_rate,
                t.min_values,
                path.display()
            );
            println!("a running `skewless serve` picks it up within seconds");
            Ok(ExitCode::SUCCESS)
        }
        MonitorCommand::References { json } => {
            let all = project.references()?;
            if json {
                print_json(&all)?;
            } else if all.is_empty() {
                println!("no references (name one with `skewless monitor set-reference --service S MANIFEST`)");
            }
            for (service, r) in all.iter().filter(|_| !json) {
                println!(
                    "{service}: {} ({} features, set {}; psi > {}, null rate change > {})",
                    r.manifest.display(),
                    r.profiles.len(),
                    r.set_at,
                    r.thresholds.psi,
                    r.thresholds.null_rate
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        MonitorCommand::Check {
            server,
            service,
            window,
            api_key,
            json,
        } => check(&server, service.as_deref(), &window, api_key.as_deref(), json),
    }
}

/// `monitor check`: the server's `/v1/monitor`, narrowed to a window (and a service).
fn check(
    server: &str,
    service: Option<&str>,
    window: &str,
    api_key: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if !["5m", "1h", "1d"].contains(&window) {
        anyhow::bail!("--window: expected 5m, 1h or 1d, found `{window}`");
    }
    let report = http_get_json(server, "/v1/monitor", api_key)?;
    if report["monitored"] != serde_json::Value::Bool(true) {
        anyhow::bail!(
            "{server} measures no drift: no service has a reference (name one with `skewless monitor set-reference`)"
        );
    }
    let features: Vec<&serde_json::Value> = report["features"]
        .as_array()
        .map(|a| a.iter().collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|d| d["window"] == window && service.is_none_or(|s| d["service"] == s))
        .collect();
    if let Some(s) = service
        && features.is_empty()
    {
        anyhow::bail!("{server} measures no feature of service `{s}`");
    }
    let breached: Vec<&&serde_json::Value> = features
        .iter()
        .filter(|d| d["breaches"].as_array().is_some_and(|b| !b.is_empty()))
        .collect();
    if json {
        print_json(&serde_json::json!({ "window": window, "features": features, "breaches": breached.len() }))?;
    } else {
        for d in &features {
            let breaches: Vec<&str> = d["breaches"]
                .as_array()
                .map(|b| b.iter().filter_map(|x| x.as_str()).collect())
                .unwrap_or_default();
            let verdict = if !breaches.is_empty() {
                format!("BREACH: {}", breaches.join(", "))
            } else if d["judged"] == true {
                "ok".to_string()
            } else {
                "too few values to judge".to_string()
            };
            println!(
                "{} ({}): {} values in {window}, psi {:.3}, js {:.3}, null rate {:.1}%: {verdict}",
                d["feature"].as_str().unwrap_or_default(),
                d["service"].as_str().unwrap_or_default(),
                d["values"],
                d["psi"].as_f64().unwrap_or_default(),
                d["js"].as_f64().unwrap_or_default(),
                100.0 * d["null_rate"].as_f64().unwrap_or_default(),
            );
        }
        println!(
            "{} of {} features past a threshold over {window}",
            breached.len(),
            features.len()
        );
    }
    Ok(if breached.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A GET over plain HTTP/1.1 (one request, the connection closed after it), its body as JSON.
fn http_get_json(server: &str, path: &str, api_key: Option<&str>) -> anyhow::Result<serde_json::Value> {
    use std::io::{Read, Write};
    use std::time::Duration;

    let authority = server
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("--server {server}: expected http://host:port"))?
        .trim_end_matches('/');
    let address = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let mut stream = std::net::TcpStream::connect(&address)
        .map_err(|e| anyhow::anyhow!("cannot reach the server at {server}: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let auth = api_key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\n{auth}Accept: application/json\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|e| anyhow::anyhow!("reading {server}{path}: {e}"))?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("{server}{path}: not an HTTP answer"))?;
    let status = head.split_whitespace().nth(1).unwrap_or_default();
    if status != "200" {
        anyhow::bail!("{server}{path} answered {status}: {}", body.trim());
    }
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        unchunk(body)?
    } else {
        body.to_string()
    };
    serde_json::from_str(&body).map_err(|e| anyhow::anyhow!("{server}{path}: not JSON: {e}"))
}

/// The body of a chunked HTTP/1.1 answer.
fn unchunk(mut body: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body
            .split_once("\r\n")
            .ok_or_else(|| anyhow::anyhow!("a damaged chunked answer"))?;
        let size = usize::from_str_radix(size.trim(), 16).map_err(|_| anyhow::anyhow!("a damaged chunked answer"))?;
        if size == 0 {
            return Ok(out);
        }
        let chunk = rest
            .get(..size)
            .ok_or_else(|| anyhow::anyhow!("a truncated chunked answer"))?;
        out.push_str(chunk);
        body = rest.get(size..).unwrap_or_default().trim_start_matches("\r\n");
    }
}
