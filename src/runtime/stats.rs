//! A container's CPU and memory as the engine reports them, read the way `docker stats`
//! reads them: memory without the page cache the kernel can drop (`inactive_file`), CPU
//! as the total time the container's processes have run, which becomes a share of CPUs
//! between two figures.

use std::time::Instant;

use bollard::models::ContainerStatsResponse;
use bollard::query_parameters::StatsOptionsBuilder;
use futures_util::StreamExt;

use super::Engine;

/// One figure of a container's use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// When it was read.
    pub at: Instant,
    /// Memory in use, less the page cache the kernel can drop.
    pub memory_bytes: Option<u64>,
    /// The container's memory limit (the machine's memory when it has none).
    pub memory_limit_bytes: Option<u64>,
    /// CPU time the container's processes have run, in nanoseconds since it started.
    pub cpu_total_ns: Option<u64>,
}

impl Usage {
    /// The figure in one of the engine's stats answers, read at `at`.
    pub fn of(stats: &ContainerStatsResponse, at: Instant) -> Usage {
        let memory = stats.memory_stats.as_ref();
        let memory_bytes = memory.and_then(|m| {
            let usage = m.usage?;
            let inactive = m.stats.as_ref().and_then(|s| {
                s.get("inactive_file")
                    .or_else(|| s.get("total_inactive_file"))
                    .copied()
            });
            Some(usage.saturating_sub(inactive.unwrap_or(0)))
        });
        Usage {
            at,
            memory_bytes,
            memory_limit_bytes: memory.and_then(|m| m.limit),
            cpu_total_ns: stats
                .cpu_stats
                .as_ref()
                .and_then(|c| c.cpu_usage.as_ref()?.total_usage),
        }
    }

    /// CPUs in use between `earlier` and this figure (1.0: one CPU's worth).
    pub fn cpus_since(&self, earlier: &Usage) -> Option<f64> {
        let wall = self.at.checked_duration_since(earlier.at)?.as_nanos() as f64;
        let ran = self.cpu_total_ns?.checked_sub(earlier.cpu_total_ns?)?;
        (wall > 0.0).then(|| ran as f64 / wall)
    }
}

/// One figure of the container `id` now, without waiting for the engine's second sample
/// (`one-shot`); `None` when the container is gone or the engine gives none.
pub async fn sample(engine: &Engine, id: &str) -> Option<Usage> {
    let options = StatsOptionsBuilder::default()
        .stream(false)
        .one_shot(true)
        .build();
    let mut answers = engine.docker.stats(id, Some(options));
    let stats = answers.next().await?.ok()?;
    Some(Usage::of(&stats, Instant::now()))
}

/// The container's figures as the engine streams them (one a second) until it stops.
pub fn follow(
    engine: &Engine,
    id: &str,
) -> impl futures_util::Stream<Item = Usage> + Send + 'static {
    let options = StatsOptionsBuilder::default().stream(true).build();
    engine
        .docker
        .stats(id, Some(options))
        .take_while(|answer| std::future::ready(answer.is_ok()))
        .filter_map(|answer| std::future::ready(answer.ok()))
        .map(|stats| Usage::of(&stats, Instant::now()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn cpu_share_is_run_time_over_wall_time() {
        let start = Instant::now();
        let earlier = Usage {
            at: start,
            memory_bytes: None,
            memory_limit_bytes: None,
            cpu_total_ns: Some(1_000_000_000),
        };
        let later = Usage {
            at: start + Duration::from_secs(2),
            cpu_total_ns: Some(4_000_000_000),
            ..earlier
        };
        assert_eq!(later.cpus_since(&earlier), Some(1.5));
        // Backwards in time or a counter that went down (a restart): no figure.
        assert_eq!(earlier.cpus_since(&later), None);
        let restarted = Usage {
            cpu_total_ns: Some(10),
            ..later
        };
        assert_eq!(restarted.cpus_since(&earlier), None);
    }
}
