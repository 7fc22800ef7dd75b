//! A report said in words (what `sagedock bench` prints and `sagedock ci` keeps), and the
//! verdicts: the latency budgets it breaks, whether it passed.

use std::io::Write;
use std::time::Duration;

use super::Report;

impl Report {
    /// Every request answered 2xx, on schedule, within the budgets.
    pub fn passed(&self, broken: &[String]) -> bool {
        self.failed == 0 && self.unsent == 0 && self.ok > 0 && broken.is_empty()
    }

    /// The latency budgets the report breaks, said as such.
    pub fn broken_budgets(
        &self,
        max_p50: Option<Duration>,
        max_p99: Option<Duration>,
    ) -> Vec<String> {
        let Some(latency) = &self.latency_ms else {
            return Vec::new();
        };
        let budgets = [
            ("p50", latency.p50, max_p50, "max p50"),
            ("p99", latency.p99, max_p99, "max p99"),
        ];
        budgets
            .into_iter()
            .filter_map(|(name, ms, budget, flag)| {
                let budget = budget?;
                (Duration::from_secs_f64(ms / 1000.0) > budget).then(|| {
                    format!(
                        "{name} {} exceeds {flag} {}",
                        millis(ms),
                        humantime::format_duration(budget)
                    )
                })
            })
            .collect()
    }

    /// The report in words, with the budgets it broke.
    pub fn render(&self, out: &mut impl Write, broken: &[String]) -> std::io::Result<()> {
        let report = self;
        writeln!(
            out,
            "requests  {} answered 2xx, {} failed: {:.1} per second",
            report.ok, report.failed, report.throughput
        )?;
        match &report.latency_ms {
            Some(l) => writeln!(
                out,
                "latency   min {}  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (mean {})",
                millis(l.min),
                millis(l.p50),
                millis(l.p90),
                millis(l.p99),
                millis(l.p999),
                millis(l.max),
                millis(l.mean)
            )?,
            None => writeln!(out, "latency   none: no request was answered 2xx")?,
        }
        if report.variants.len() > 1 {
            for (i, (name, v)) in report.variants.iter().enumerate() {
                let label = if i == 0 { "variants" } else { "" };
                writeln!(
                    out,
                    "{label:9} {name}: {} ({:.1}%)  p50 {}  p90 {}  p99 {}  max {}",
                    v.ok,
                    v.share * 100.0,
                    millis(v.p50),
                    millis(v.p90),
                    millis(v.p99),
                    millis(v.max)
                )?;
            }
        }
        for (i, (kind, n)) in report.failures.iter().enumerate() {
            let label = if i == 0 { "failures" } else { "" };
            writeln!(out, "{label:9} {kind}: {n}")?;
        }
        if report.unsent > 0 {
            let asked = report.rate.unwrap_or_default();
            writeln!(
                out,
                "behind    {} requests fell due in the window and were never sent: the target kept up with {:.1}/s of the {asked}/s asked (more --concurrency, or a lower --rate)",
                report.unsent, report.throughput
            )?;
        }
        for b in broken {
            writeln!(out, "budget    {b}")?;
        }
        Ok(())
    }
}

fn millis(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.2} ms")
    }
}
