//! Container logs: the last lines (for error reports) and a live stream with a prefix.

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::Engine;

/// The last `lines` lines of stdout and stderr, as text ("(no output)" when empty),
/// leaving out the lines that log sagedock's own `GET /ping` polling (an nginx in front
/// of a server that never started writes one or two per poll, and they would bury the
/// lines that say why).
pub async fn tail(engine: &Engine, id: &str, lines: usize) -> String {
    let options = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .tail(&(lines * 4).to_string())
        .build();
    let mut stream = engine.logs(id, options);
    let mut text = String::new();
    while let Some(Ok(item)) = stream.next().await {
        text.push_str(&String::from_utf8_lossy(item.as_ref()));
    }
    last_lines(&text, lines)
}

/// The last `lines` lines of `text` but the health-check polling's, indented.
fn last_lines(text: &str, lines: usize) -> String {
    let kept: Vec<&str> = text
        .trim_end()
        .lines()
        .filter(|l| !l.contains("GET /ping "))
        .collect();
    if kept.iter().all(|l| l.trim().is_empty()) {
        return "  (no output)".to_string();
    }
    kept[kept.len().saturating_sub(lines)..]
        .iter()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Copies a container's output to stdout, each line prefixed (unless `prefix` is empty),
/// until the container stops (or, without `follow`, until the output so far is shown).
/// `tail` is how many earlier lines to show first ("all" or a number).
pub async fn follow(engine: Engine, id: String, prefix: String, tail: String, follow: bool) {
    let options = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .follow(follow)
        .tail(&tail)
        .build();
    let mut stream = engine.logs(&id, options);
    let mut out = tokio::io::stdout();
    let mut pending = String::new();
    while let Some(Ok(item)) = stream.next().await {
        let text = match &item {
            LogOutput::StdOut { message }
            | LogOutput::StdErr { message }
            | LogOutput::Console { message } => String::from_utf8_lossy(message).into_owned(),
            LogOutput::StdIn { .. } => continue,
        };
        pending.push_str(&text);
        while let Some(end) = pending.find('\n') {
            let line = if prefix.is_empty() {
                format!("{}\n", &pending[..end])
            } else {
                format!("{prefix} | {}\n", &pending[..end])
            };
            pending.drain(..=end);
            if out.write_all(line.as_bytes()).await.is_err() {
                return;
            }
        }
    }
    if !pending.is_empty() {
        let _ = out
            .write_all(format!("{prefix} | {pending}\n").as_bytes())
            .await;
    }
    let _ = out.flush().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_leaves_out_the_health_polling() {
        let log = "ERROR: No matching distribution found for tabulate\n\
            2026/11/30 [crit] connect() to unix:/tmp/gunicorn.sock failed, request: \"GET /ping HTTP/1.1\"\n\
            172.20.0.1 - - \"GET /ping HTTP/1.1\" 502 157\n\
            exiting 1\n";
        assert_eq!(
            last_lines(log, 50),
            "  ERROR: No matching distribution found for tabulate\n  exiting 1"
        );
        assert_eq!(last_lines(log, 1), "  exiting 1");
        assert_eq!(last_lines("", 5), "  (no output)");
    }
}
