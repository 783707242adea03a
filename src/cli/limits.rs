//! `--max-uncompressed-size` and `--max-manifest-size`, shared by `build`,
//! `check` and `deploy` (a module of its own, so those commands' modules do
//! not use each other for it).

use clap::Args;

use crate::rules::Limits;

/// Limits that default to Lambda's and may be changed for other targets.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Largest total uncompressed layer size, in bytes (Lambda: 10 GiB).
    #[arg(long, value_name = "BYTES", env = "LAMBDA_IMG_MAX_UNCOMPRESSED")]
    pub max_uncompressed_size: Option<u64>,
    /// Largest serialized manifest, in bytes (default 25,400).
    #[arg(long, value_name = "BYTES", env = "LAMBDA_IMG_MAX_MANIFEST")]
    pub max_manifest_size: Option<u64>,
}

impl LimitArgs {
    pub fn limits(&self) -> Limits {
        let mut limits = Limits::default();
        if let Some(v) = self.max_uncompressed_size {
            limits.max_uncompressed = v;
        }
        if let Some(v) = self.max_manifest_size {
            limits.max_manifest_bytes = v;
        }
        limits
    }
}
