//! `lambda-img run --serve` (filled in below).

use std::sync::Arc;

pub fn serve(
    _spec: crate::run::EnvironmentSpec,
    _listen: &str,
    _concurrency: usize,
    _logs: Arc<dyn crate::run::LogSink>,
) -> anyhow::Result<()> {
    anyhow::bail!("--serve is not available yet")
}
