//! Long work on a terminal: one line on stderr drawn from a [`Meter`] — a bar with bytes
//! when the work knows its total, else a spinner with what it is doing and for how long.
//! Nothing is drawn when stderr is not a terminal, or with `--quiet`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::progress::Meter;

/// `--quiet`, for the whole run.
static QUIET: AtomicBool = AtomicBool::new(false);

pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether progress may be drawn: stderr is a terminal, and no `--quiet`.
pub fn on_terminal() -> bool {
    !QUIET.load(Ordering::Relaxed) && std::io::stderr().is_terminal()
}

/// A meter for work whose progress is drawn, or `None` when none would be.
pub fn meter() -> Option<Arc<Meter>> {
    on_terminal().then(Meter::new)
}

/// The line, drawn while this lives; cleared when dropped.
pub struct Line {
    bar: ProgressBar,
    stop: Arc<AtomicBool>,
    drawer: Option<JoinHandle<()>>,
}

/// Draws `meter` (when there is one) until the returned line is dropped.
pub fn show(meter: &Option<Arc<Meter>>) -> Option<Line> {
    let meter = meter.clone()?;
    let bar = ProgressBar::new_spinner();
    let stop = Arc::new(AtomicBool::new(false));
    let drawer = {
        let (bar, stop) = (bar.clone(), stop.clone());
        std::thread::Builder::new()
            .name("sagedock-progress".into())
            .spawn(move || draw(&meter, &bar, &stop))
            .ok()
    };
    Some(Line { bar, stop, drawer })
}

impl Line {
    /// Prints a line above the progress line.
    pub fn println(&self, text: impl AsRef<str>) {
        self.bar.println(text);
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(drawer) = self.drawer.take() {
            let _ = drawer.join();
        }
        self.bar.finish_and_clear();
    }
}

fn draw(meter: &Meter, bar: &ProgressBar, stop: &AtomicBool) {
    let style = |template: &str| {
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner())
    };
    let counted = style("{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {eta}");
    let waiting = style("{spinner} {msg} ({elapsed})");
    let mut with_total = None;
    while !stop.load(Ordering::Relaxed) {
        let reading = meter.read();
        let has_total = reading.total.is_some();
        if with_total != Some(has_total) {
            bar.set_style(if has_total {
                counted.clone()
            } else {
                waiting.clone()
            });
            with_total = Some(has_total);
        }
        if let Some(total) = reading.total {
            bar.set_length(total);
            bar.set_position(reading.done.min(total));
        }
        bar.set_message(reading.note);
        bar.tick();
        std::thread::sleep(Duration::from_millis(120));
    }
}
