//! Progress of long commands: a bar with total and rate on a terminal, redrawn on its own
//! clock (so a pause between batches never shows the previous batch); plain log lines with
//! the total and rate otherwise (cron, CI).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    total: Option<u64>,
    done: u64,
    started: Instant,
    last_line: Instant,
}

impl Progress {
    /// `total` when known, for a bar with an end.
    pub fn new(label: &str, total: Option<u64>) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = total.map_or_else(ProgressBar::new_spinner, ProgressBar::new);
            let template = if total.is_some() {
                "{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta})"
            } else {
                "{msg} {spinner} {pos}"
            };
            bar.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
            bar.set_message(label.to_owned());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            label: label.to_owned(),
            total,
            done: 0,
            started: Instant::now(),
            last_line: Instant::now(),
        }
    }

    pub fn advance(&mut self, n: u64) {
        self.done += n;
        match &self.bar {
            Some(bar) => bar.inc(n),
            None if self.last_line.elapsed() >= Duration::from_secs(5) => {
                eprintln!("{}", self.line());
                self.last_line = Instant::now();
            }
            None => {}
        }
    }

    /// `purging: 1200 of 5000 (24%), 240/s` for log lines.
    pub fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = (self.done as f64 / secs).round();
        match self.total {
            Some(total) if total > 0 => format!(
                "{}: {} of {total} ({}%), {rate}/s",
                self.label,
                self.done,
                self.done * 100 / total
            ),
            _ => format!("{}: {} so far, {rate}/s", self.label, self.done),
        }
    }

    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
