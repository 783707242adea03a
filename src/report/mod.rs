//! How library code tells the user what is happening, without printing.
//!
//! Library operations take a `&dyn Reporter`; only the binary decides whether
//! that becomes progress bars, plain lines or nothing.

mod bytes;
pub mod progress;

pub use bytes::human_bytes;

/// Progress and messages from library operations.
pub trait Reporter: Send + Sync {
    /// A step starts (`resolving base oci:./base:latest`).
    fn step(&self, message: &str);
    /// A long task with a known or unknown size begins; `id` names it in later calls.
    fn task_start(&self, id: &str, label: &str, total_bytes: Option<u64>);
    /// `bytes` more were done for task `id`.
    fn task_progress(&self, id: &str, bytes: u64);
    /// Task `id` ended with a one-line summary.
    fn task_done(&self, id: &str, summary: &str);
    /// Something the user should know that does not stop the work.
    fn warn(&self, message: &str);
    /// Detail shown only in verbose mode (installer output, cache decisions).
    fn detail(&self, _message: &str) {}
    /// A rule finding, already rendered with its severity (`warning[LI044 ...]: ...`)
    /// exactly as `check` prints it; shown even with `--quiet`.
    fn finding(&self, rendered: &str) {
        self.warn(rendered)
    }
}

/// A reporter that drops everything (tests, `--quiet`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Reporter for Silent {
    fn step(&self, _: &str) {}
    fn task_start(&self, _: &str, _: &str, _: Option<u64>) {}
    fn task_progress(&self, _: &str, _: u64) {}
    fn task_done(&self, _: &str, _: &str) {}
    fn warn(&self, _: &str) {}
}
