//! `/ping` as SageMaker asks it once the container is healthy: at rest and while the
//! sample request is sent under load, each answer and how long it took, judged by the
//! platform's limits (a connection within 250 ms, an answer within 2 s, 200 every time).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{millis, Rule};
use crate::runtime::launch::{self, PingFailure, PING_TIMEOUT};

/// One `/ping` and how long it took.
#[derive(Debug, Clone)]
pub(super) struct PingSample {
    pub(super) took: Duration,
    pub(super) answer: Result<u16, PingFailure>,
}

pub(super) async fn ping(addr: SocketAddr) -> PingSample {
    let t0 = Instant::now();
    let answer = launch::ping(addr).await;
    PingSample {
        took: t0.elapsed(),
        answer,
    }
}

pub(super) fn stable_rule(at_rest: &[PingSample], under_load: &[PingSample]) -> Rule {
    const CODE: &str = "ping.stable";
    let ok = |s: &[PingSample]| s.iter().filter(|p| p.answer == Ok(200)).count();
    let measured = format!(
        "{} of {} at rest and {} of {} under load answered 200",
        ok(at_rest),
        at_rest.len(),
        ok(under_load),
        under_load.len()
    );
    let bad: Vec<String> = at_rest
        .iter()
        .chain(under_load)
        .filter(|p| p.answer != Ok(200))
        .map(|p| match &p.answer {
            Ok(status) => format!("HTTP {status}"),
            Err(e) => e.to_string(),
        })
        .take(3)
        .collect();
    if bad.is_empty() {
        return Rule::pass(CODE, measured);
    }
    Rule::fail(
        CODE,
        format!("{measured}; first failures: {}", bad.join("; ")),
        "once healthy, keep /ping 200 while the server can answer: SageMaker replaces an instance whose health checks fail",
    )
}

pub(super) fn connect_rule(at_rest: &[PingSample], under_load: &[PingSample]) -> Rule {
    const CODE: &str = "ping.connect";
    let all: Vec<&PingSample> = at_rest.iter().chain(under_load).collect();
    let refused = all
        .iter()
        .filter(|p| matches!(p.answer, Err(PingFailure::Connect(_))))
        .count();
    if refused == 0 {
        return Rule::pass(
            CODE,
            format!(
                "all {} health-check connections accepted within 250 ms",
                all.len()
            ),
        );
    }
    Rule::fail(
        CODE,
        format!("{refused} of {} health-check connections were not accepted within 250 ms", all.len()),
        "accept connections promptly even when busy: a larger listen backlog, or an acceptor that does not wait on the workers",
    )
}

pub(super) fn latency_rule(at_rest: &[PingSample], under_load: &[PingSample]) -> Rule {
    const CODE: &str = "ping.latency";
    let slowest = |s: &[PingSample]| s.iter().map(|p| p.took).max().unwrap_or_default();
    let too_slow =
        |p: &&PingSample| matches!(p.answer, Err(PingFailure::Answer(_))) || p.took >= PING_TIMEOUT;
    let slow = at_rest.iter().chain(under_load).filter(too_slow).count();
    let measured = format!(
        "slowest /ping {} at rest, {} under load ({} asked)",
        millis(slowest(at_rest)),
        if under_load.is_empty() {
            "none sent".to_string()
        } else {
            millis(slowest(under_load))
        },
        at_rest.len() + under_load.len()
    );
    let fix = "answer /ping from a thread or event loop the invocations do not hold (a separate worker, or the server's own health route), in well under 2 s";
    if slow > 0 {
        return Rule::fail(
            CODE,
            format!("{measured}; {slow} got no answer within 2 s, SageMaker's limit: the instance would be marked unhealthy and replaced"),
            fix,
        );
    }
    if slowest(at_rest).max(slowest(under_load)) > PING_TIMEOUT / 2 {
        return Rule::warn(
            CODE,
            format!("{measured}: over half of SageMaker's 2 s limit"),
            fix,
        );
    }
    Rule::pass(CODE, measured)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::Verdict;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn pinged(took: u64, answer: Result<u16, PingFailure>) -> PingSample {
        PingSample {
            took: ms(took),
            answer,
        }
    }

    #[test]
    fn pings_are_judged_by_sagemakers_limits() {
        let fine = [pinged(3, Ok(200)), pinged(5, Ok(200))];
        assert_eq!(latency_rule(&fine, &[]).verdict, Verdict::Pass);
        assert_eq!(stable_rule(&fine, &fine).verdict, Verdict::Pass);
        assert_eq!(connect_rule(&fine, &[]).verdict, Verdict::Pass);
        let slow = [pinged(1200, Ok(200))];
        assert_eq!(latency_rule(&fine, &slow).verdict, Verdict::Warn);
        let timed_out = [pinged(
            2000,
            Err(PingFailure::Answer(
                "GET /ping: no answer within 2 s".into(),
            )),
        )];
        let rule = latency_rule(&fine, &timed_out);
        assert_eq!(rule.verdict, Verdict::Fail);
        assert!(
            rule.measured.contains("1 got no answer within 2 s"),
            "{}",
            rule.measured
        );
        assert_eq!(stable_rule(&fine, &timed_out).verdict, Verdict::Fail);
        let sick = [pinged(1, Ok(503))];
        let rule = stable_rule(&sick, &[]);
        assert_eq!(rule.verdict, Verdict::Fail);
        assert!(rule.measured.contains("HTTP 503"), "{}", rule.measured);
        let refused = [pinged(
            250,
            Err(PingFailure::Connect(
                "connect: no answer within 250 ms".into(),
            )),
        )];
        assert_eq!(connect_rule(&fine, &refused).verdict, Verdict::Fail);
    }
}
