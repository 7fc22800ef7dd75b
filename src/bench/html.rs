//! The bench report as one self-contained HTML page (`--html FILE`): the numbers of the
//! JSON report in tables, and the plots — the latency percentile curve, latency and
//! throughput over time, failures over time, the production variants side by side, and
//! the direct run beside the endpoint's with `--compare-direct`; for `--find-max`, the
//! latency and throughput against the rate asked. Inline SVG and CSS: no script, nothing
//! fetched.
//!
//! Every figure of the tables carries `data-field`, the name of its JSON member, so a
//! reader (or a test) can tell which is which.

use std::fmt::Write;

use super::find_max::Search;
use super::svg::{number, Chart, Style, XAxis};
use super::Report;
use crate::xml::escape;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:24px auto;max-width:760px;color:#24292f}\
h1{font-size:20px}h2{font-size:16px;margin-top:28px}\
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;border-bottom:1px solid #d0d7de;text-align:right}\
th:first-child,td:first-child{text-align:left}.muted{color:#57606a}.bad{color:#cf222e}.good{color:#1a7f37}\
svg{display:block;margin:12px 0;max-width:100%;height:auto}#steps td:last-child{text-align:left}";

/// The page of one run (and of its direct run, when there was one).
pub fn report_page(report: &Report) -> String {
    let mut out = page_head(&format!("sagedock bench: {}", report.url));
    let _ = write!(
        out,
        "<h1>sagedock bench</h1><p>POST <code>{}</code><br><span class=\"muted\">{}</span></p>",
        escape(&report.url),
        escape(&describe(report))
    );
    summary_table(&mut out, report);
    if !report.failures.is_empty() {
        out.push_str("<h2>Failures</h2><table><tr><th>kind</th><th>requests</th></tr>");
        for (kind, n) in &report.failures {
            let _ = write!(out, "<tr><td>{}</td><td>{n}</td></tr>", escape(kind));
        }
        out.push_str("</table>");
    }
    let direct = report.direct.as_deref();
    // With a direct run, each line says which run it is.
    let name = |label: &str| {
        if direct.is_some() {
            label.to_string()
        } else {
            String::new()
        }
    };

    let mut curve = Chart::new(
        "Latency by percentile",
        "percentile",
        "milliseconds",
        XAxis::Percentile,
    );
    for (label, r, dashed) in runs(report) {
        if let Some(l) = &r.latency_ms {
            let points = l
                .distribution
                .iter()
                .filter(|[p, _]| *p >= 50.0)
                .map(|&[p, ms]| (p, ms))
                .collect();
            curve = curve.line(&or(&name(label), "latency"), points, style(0, dashed));
        }
    }
    out.push_str(&curve.svg());

    let mut latency = Chart::new("Latency over time", "second", "milliseconds", XAxis::Linear);
    let mut throughput = Chart::new(
        "Answers (2xx) per second",
        "second",
        "per second",
        XAxis::Linear,
    );
    let mut failures = Chart::new("Failures per second", "second", "per second", XAxis::Linear);
    for (label, r, dashed) in runs(report) {
        let prefix = if direct.is_some() {
            format!("{label} ")
        } else {
            String::new()
        };
        let at = |s: &super::timeline::Second| f64::from(s.second) + 0.5;
        latency = latency
            .line(
                &format!("{prefix}p50"),
                r.timeline
                    .iter()
                    .filter_map(|s| Some((at(s), s.p50?)))
                    .collect(),
                style(0, dashed),
            )
            .line(
                &format!("{prefix}p99"),
                r.timeline
                    .iter()
                    .filter_map(|s| Some((at(s), s.p99?)))
                    .collect(),
                style(1, dashed),
            );
        throughput = throughput.line(
            &or(&name(label), "2xx"),
            r.timeline.iter().map(|s| (at(s), s.ok as f64)).collect(),
            style(2, dashed),
        );
        failures = failures.line(
            &or(&name(label), "failed"),
            r.timeline
                .iter()
                .map(|s| (at(s), s.failed as f64))
                .collect(),
            style(1, dashed),
        );
    }
    out.push_str(&latency.svg());
    out.push_str(&throughput.svg());
    out.push_str(&failures.svg());

    if report.variants.len() > 1 {
        variants(&mut out, report);
    }
    out.push_str("</body></html>\n");
    out
}

fn style(colour: usize, dashed: bool) -> Style {
    Style { colour, dashed }
}

/// The runs of a report: the endpoint's, and the direct one when there was one.
fn runs(report: &Report) -> Vec<(&'static str, &Report, bool)> {
    let mut runs = vec![("through sagedock", report, false)];
    if let Some(direct) = report.direct.as_deref() {
        runs.push(("direct", direct, true));
    }
    runs
}

fn or(text: &str, default: &str) -> String {
    if text.is_empty() {
        default.to_string()
    } else {
        text.to_string()
    }
}

/// The production variants side by side: their numbers, their latency and answers over
/// time.
fn variants(out: &mut String, report: &Report) {
    out.push_str("<h2>Production variants</h2><table><tr><th>variant</th><th>2xx</th><th>share</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>max ms</th></tr>");
    for (name, v) in &report.variants {
        let _ = write!(
            out,
            "<tr data-variant=\"{n}\"><td>{n}</td><td data-field=\"ok\">{}</td><td data-field=\"share\">{:.1} %</td><td data-field=\"p50\">{}</td><td data-field=\"p90\">{}</td><td data-field=\"p99\">{}</td><td data-field=\"max\">{}</td></tr>",
            v.ok,
            v.share * 100.0,
            number(v.p50),
            number(v.p90),
            number(v.p99),
            number(v.max),
            n = escape(name)
        );
    }
    out.push_str("</table>");
    let at = |s: &super::timeline::Second| f64::from(s.second) + 0.5;
    let mut latency = Chart::new(
        "p99 by variant over time",
        "second",
        "milliseconds",
        XAxis::Linear,
    );
    let mut answers = Chart::new(
        "Answers by variant per second",
        "second",
        "per second",
        XAxis::Linear,
    );
    for (i, name) in report.variants.keys().enumerate() {
        let of = |s: &super::timeline::Second| s.variants.get(name).cloned();
        latency = latency.line(
            name,
            report
                .timeline
                .iter()
                .filter_map(|s| Some((at(s), of(s)?.p99?)))
                .collect(),
            Style::solid(i),
        );
        answers = answers.line(
            name,
            report
                .timeline
                .iter()
                .filter_map(|s| Some((at(s), of(s)?.ok as f64)))
                .collect(),
            Style::solid(i),
        );
    }
    out.push_str(&latency.svg());
    out.push_str(&answers.svg());
}

/// The numbers of the run, and of the direct run beside them.
fn summary_table(out: &mut String, report: &Report) {
    let direct = report.direct.as_deref();
    out.push_str("<table id=\"summary\"><tr><th></th><th>through sagedock</th>");
    if direct.is_some() {
        out.push_str("<th>direct to the container</th><th>sagedock adds</th>");
    }
    out.push_str("</tr>");
    type Pick = fn(&Report) -> Option<f64>;
    let rows: [(&str, &str, Pick); 12] = [
        ("requests", "requests", |r| Some(r.requests as f64)),
        ("ok", "answered 2xx", |r| Some(r.ok as f64)),
        ("failed", "failed", |r| Some(r.failed as f64)),
        ("unsent", "unsent", |r| Some(r.unsent as f64)),
        ("throughput", "2xx per second", |r| Some(r.throughput)),
        ("min", "min ms", |r| r.latency_ms.as_ref().map(|l| l.min)),
        ("p50", "p50 ms", |r| r.latency_ms.as_ref().map(|l| l.p50)),
        ("p90", "p90 ms", |r| r.latency_ms.as_ref().map(|l| l.p90)),
        ("p99", "p99 ms", |r| r.latency_ms.as_ref().map(|l| l.p99)),
        ("p999", "p99.9 ms", |r| {
            r.latency_ms.as_ref().map(|l| l.p999)
        }),
        ("max", "max ms", |r| r.latency_ms.as_ref().map(|l| l.max)),
        ("mean", "mean ms", |r| r.latency_ms.as_ref().map(|l| l.mean)),
    ];
    let cell = |field: &str, value: Option<f64>| match value {
        Some(v) => format!("<td data-field=\"{field}\">{}</td>", number(v)),
        None => format!("<td data-field=\"{field}\" class=\"muted\">-</td>"),
    };
    for (field, label, pick) in rows {
        let _ = write!(out, "<tr><td>{label}</td>{}", cell(field, pick(report)));
        if let Some(d) = direct {
            out.push_str(&cell(field, pick(d)).replace("<td ", "<td data-run=\"direct\" "));
            let added = match (field, pick(report), pick(d)) {
                ("min" | "p50" | "p90" | "p99" | "p999" | "max" | "mean", Some(a), Some(b)) => {
                    let added = ((a - b) * 1000.0).round() / 1000.0;
                    let sign = if added < 0.0 { "−" } else { "+" };
                    format!("{sign}{} ms", number(added.abs()))
                }
                ("throughput", Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
                _ => String::new(),
            };
            let _ = write!(out, "<td class=\"muted\">{added}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

fn describe(report: &Report) -> String {
    let schedule = match report.rate {
        Some(rate) => format!("open loop at {} requests/s", number(rate)),
        None => "closed loop".into(),
    };
    format!(
        "{schedule}, {} connection(s), {} s measured after {} s of warm-up, {} request bod{}",
        report.connections,
        number(report.duration_s),
        number(report.warmup_s),
        report.bodies,
        if report.bodies == 1 { "y" } else { "ies" }
    )
}

/// The page of a `--find-max` search.
pub fn search_page(search: &Search) -> String {
    let mut out = page_head(&format!("sagedock bench --find-max: {}", search.url));
    let verdict = match search.max_rate {
        Some(rate) => format!(
            "<p id=\"max-rate\" class=\"good\">The highest rate that met {}: <b data-field=\"max_rate\">{}</b> requests/s</p>",
            escape(&search.slo),
            number(rate)
        ),
        None => "<p id=\"max-rate\" class=\"bad\">No rate tried met the objective.</p>".into(),
    };
    let _ = write!(
        out,
        "<h1>sagedock bench --find-max</h1><p>POST <code>{}</code><br><span class=\"muted\">objective {}, {} connection(s), {} s a step; the closed-loop probe sustained {} requests/s</span></p>{verdict}",
        escape(&search.url),
        escape(&search.slo),
        search.connections,
        number(search.step_s),
        number(search.probe_throughput)
    );
    let mut sorted = search.steps.clone();
    sorted.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    let mut latency = Chart::new(
        "Latency against the rate asked",
        "requests per second asked",
        "milliseconds",
        XAxis::Linear,
    )
    .line(
        "p50",
        sorted
            .iter()
            .filter_map(|s| Some((s.rate, s.p50?)))
            .collect(),
        Style::solid(0),
    )
    .line(
        "p99",
        sorted
            .iter()
            .filter_map(|s| Some((s.rate, s.p99?)))
            .collect(),
        Style::solid(1),
    );
    for objective in search.slo.split(',') {
        if let Some((name, bound)) = objective.split_once('=') {
            if let Ok(max) = humantime::parse_duration(bound) {
                latency = latency.mark(&format!("{name} objective"), max.as_secs_f64() * 1000.0);
            }
        }
    }
    out.push_str(&latency.svg());
    let throughput = Chart::new(
        "Throughput against the rate asked",
        "requests per second asked",
        "2xx per second",
        XAxis::Linear,
    )
    .line(
        "2xx per second",
        sorted.iter().map(|s| (s.rate, s.throughput)).collect(),
        Style::solid(2),
    )
    .line(
        "asked",
        sorted.iter().map(|s| (s.rate, s.rate)).collect(),
        Style::dashed(5),
    );
    out.push_str(&throughput.svg());
    out.push_str("<h2>Steps, in the order tried</h2><table id=\"steps\"><tr><th>rate asked</th><th>2xx/s</th><th>p50 ms</th><th>p99 ms</th><th>failed</th><th>unsent</th><th>verdict</th></tr>");
    for step in &search.steps {
        let ms = |v: Option<f64>| v.map_or("-".into(), number);
        let verdict = match &step.why {
            None => "<span class=\"good\">met</span>".to_string(),
            Some(why) => format!("<span class=\"bad\">{}</span>", escape(why)),
        };
        let _ = write!(
            out,
            "<tr><td data-field=\"rate\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{verdict}</td></tr>",
            number(step.rate),
            number(step.throughput),
            ms(step.p50),
            ms(step.p99),
            step.failed,
            step.unsent
        );
    }
    out.push_str("</table></body></html>\n");
    out
}

fn page_head(title: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><link rel=\"icon\" href=\"data:,\"><style>{STYLE}</style></head><body>",
        escape(title)
    )
}
