//! Check outcomes and their JUnit XML (the dialect Jenkins, GitLab, GitHub Actions
//! reporters and pytest's `--junitxml` share: `testsuites` > `testsuite` > `testcase`
//! with `failure`, `skipped` and `system-out`).

use crate::xml::escape;
use std::fmt::Write;
use std::time::Duration;

/// The checks of one endpoint.
#[derive(Debug, Clone)]
pub struct Suite {
    pub name: String,
    pub cases: Vec<Case>,
}

/// One check.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub time: Duration,
    pub outcome: Outcome,
    /// What the check saw (an answer, findings, a latency report), kept in `system-out`.
    pub output: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Passed,
    /// `message` is one line; `detail` may be long (a log tail, every finding).
    Failed {
        message: String,
        detail: String,
    },
    /// The check could not run because an earlier one failed.
    Skipped(String),
}

impl Suite {
    pub fn failures(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Failed { .. }))
    }

    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Skipped(_)))
    }

    fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.cases.iter().filter(|c| f(&c.outcome)).count()
    }

    fn time(&self) -> Duration {
        self.cases.iter().map(|c| c.time).sum()
    }
}

/// The JUnit XML document for `suites`.
pub fn render(suites: &[Suite]) -> String {
    let tests: usize = suites.iter().map(|s| s.cases.len()).sum();
    let failures: usize = suites.iter().map(Suite::failures).sum();
    let skipped: usize = suites.iter().map(Suite::skipped).sum();
    let time: Duration = suites.iter().map(Suite::time).sum();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"sagedock ci\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{:.3}\">",
        time.as_secs_f64()
    );
    for suite in suites {
        let _ = writeln!(
            xml,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{:.3}\">",
            escape(&suite.name),
            suite.cases.len(),
            suite.failures(),
            suite.skipped(),
            suite.time().as_secs_f64()
        );
        for case in &suite.cases {
            let _ = write!(
                xml,
                "    <testcase classname=\"sagedock.ci.{}\" name=\"{}\" time=\"{:.3}\">",
                escape(&suite.name),
                escape(&case.name),
                case.time.as_secs_f64()
            );
            match &case.outcome {
                Outcome::Passed => {}
                Outcome::Failed { message, detail } => {
                    let _ = write!(
                        xml,
                        "\n      <failure message=\"{}\">{}</failure>",
                        escape(message),
                        escape(detail)
                    );
                }
                Outcome::Skipped(why) => {
                    let _ = write!(xml, "\n      <skipped message=\"{}\"/>", escape(why));
                }
            }
            if !case.output.is_empty() {
                let _ = write!(
                    xml,
                    "\n      <system-out>{}</system-out>",
                    escape(&case.output)
                );
            }
            if case.outcome != Outcome::Passed || !case.output.is_empty() {
                xml.push_str("\n    ");
            }
            xml.push_str("</testcase>\n");
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(name: &str, outcome: Outcome) -> Case {
        Case {
            name: name.into(),
            time: Duration::from_millis(1500),
            outcome,
            output: String::new(),
        }
    }

    #[test]
    fn counts_and_escapes() {
        let suites = [Suite {
            name: "sentiment".into(),
            cases: vec![
                case("start", Outcome::Passed),
                case(
                    "request <a & \"b\">",
                    Outcome::Failed {
                        message: "status 424, expected 200".into(),
                        detail: "body: {\"x\": \u{1}}".into(),
                    },
                ),
                case(
                    "load",
                    Outcome::Skipped("the endpoint did not start".into()),
                ),
            ],
        }];
        let xml = render(&suites);
        assert!(xml.contains("<testsuites name=\"sagedock ci\" tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\" time=\"4.500\">"), "{xml}");
        assert!(
            xml.contains("name=\"request &lt;a &amp; &quot;b&quot;&gt;\""),
            "{xml}"
        );
        assert!(xml.contains("<failure message=\"status 424, expected 200\">body: {&quot;x&quot;: \u{fffd}}</failure>"), "{xml}");
        assert!(
            xml.contains("<skipped message=\"the endpoint did not start\"/>"),
            "{xml}"
        );
        assert!(xml.contains("<testcase classname=\"sagedock.ci.sentiment\" name=\"start\" time=\"1.500\"></testcase>"), "{xml}");
    }
}
