//! Container logs: the last lines (for error reports) and a live stream with a prefix.

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::Engine;

/// The last `lines` lines of stdout and stderr, as text ("(no output)" when empty).
pub async fn tail(engine: &Engine, id: &str, lines: usize) -> String {
    let options = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .tail(&lines.to_string())
        .build();
    let mut stream = engine.docker.logs(id, Some(options));
    let mut text = String::new();
    while let Some(Ok(item)) = stream.next().await {
        text.push_str(&String::from_utf8_lossy(item.as_ref()));
    }
    let text = text.trim_end();
    if text.is_empty() {
        "  (no output)".to_string()
    } else {
        text.lines()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
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
    let mut stream = engine.docker.logs(&id, Some(options));
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
