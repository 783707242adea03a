//! The binary's reporter: indicatif bars when stderr is a terminal, plain
//! lines otherwise (CI logs), nothing with `--quiet`.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Reporter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

/// Progress on stderr, never stdout.
pub struct StderrReporter {
    verbosity: Verbosity,
    bars: Option<MultiProgress>,
    tasks: Mutex<HashMap<String, ProgressBar>>,
}

impl StderrReporter {
    pub fn new(verbosity: Verbosity) -> Self {
        let bars = (verbosity != Verbosity::Quiet && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        StderrReporter {
            verbosity,
            bars,
            tasks: Mutex::new(HashMap::new()),
        }
    }

    fn line(&self, text: &str) {
        if self.verbosity == Verbosity::Quiet {
            return;
        }
        match &self.bars {
            Some(bars) => {
                let _ = bars.println(text);
            }
            None => {
                let _ = writeln!(std::io::stderr().lock(), "{text}");
            }
        }
    }
}

impl Drop for StderrReporter {
    /// A task that never finished (the command failed midway) leaves no bar
    /// behind on the terminal.
    fn drop(&mut self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            for (_, bar) in tasks.drain() {
                bar.finish_and_clear();
            }
        }
    }
}

impl Reporter for StderrReporter {
    fn step(&self, message: &str) {
        self.line(&format!("==> {message}"));
    }

    fn task_start(&self, id: &str, label: &str, total_bytes: Option<u64>) {
        let Some(bars) = &self.bars else {
            if self.verbosity == Verbosity::Verbose {
                self.line(&format!("    {label} ..."));
            }
            return;
        };
        let bar = match total_bytes {
            // Hidden until the MultiProgress adopts it: a bar made with
            // `ProgressBar::new` draws its first frame straight to stderr
            // (on `set_message`), outside the MultiProgress, and that frame
            // stays on the screen as a stale `0 B/… 0 B/s` line.
            Some(total) => {
                let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
                bar.set_style(
                    ProgressStyle::with_template(
                        "    {msg:30!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                    )
                    .expect("static template")
                    .progress_chars("=> "),
                );
                bar
            }
            None => {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
                bar.set_style(
                    // No byte counts: a task of unknown size (an installer) would
                    // sit at "0 B 0 B/s" however far along it is.
                    ProgressStyle::with_template("    {spinner} {msg:30!} {elapsed}")
                        .expect("static template"),
                );
                bar
            }
        };
        let bar = bars.add(bar);
        bar.set_message(label.to_string());
        if total_bytes.is_none() {
            bar.enable_steady_tick(Duration::from_millis(120));
        }
        self.tasks
            .lock()
            .expect("reporter lock")
            .insert(id.to_string(), bar);
    }

    fn task_progress(&self, id: &str, bytes: u64) {
        if let Some(bar) = self.tasks.lock().expect("reporter lock").get(id) {
            bar.inc(bytes);
        }
    }

    fn task_done(&self, id: &str, summary: &str) {
        if let Some(bar) = self.tasks.lock().expect("reporter lock").remove(id) {
            bar.finish_and_clear();
        }
        self.line(&format!("    {summary}"));
    }

    fn warn(&self, message: &str) {
        // Warnings show even with --quiet: they are about the image.
        match &self.bars {
            Some(bars) => {
                let _ = bars.println(format!("warning: {message}"));
            }
            None => {
                let _ = writeln!(std::io::stderr().lock(), "warning: {message}");
            }
        }
    }

    fn finding(&self, rendered: &str) {
        match &self.bars {
            Some(bars) => {
                let _ = bars.println(rendered);
            }
            None => {
                let _ = writeln!(std::io::stderr().lock(), "{rendered}");
            }
        }
    }

    fn detail(&self, message: &str) {
        if self.verbosity == Verbosity::Verbose {
            self.line(&format!("    {message}"));
        }
    }
}
