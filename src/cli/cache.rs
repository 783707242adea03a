//! `lambda-img cache`.

use std::time::Duration;

use clap::{Args, Subcommand};

use super::{GlobalArgs, print_data};
use crate::cache::prune::{PruneOptions, prune, usage};

#[derive(Debug, Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub action: CacheAction,
    /// Print JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum CacheAction {
    /// Print the cache directory.
    Dir,
    /// Show what the cache holds.
    Size,
    /// Remove blobs, records and root filesystems (and always buckets of old format versions).
    Prune {
        /// Remove everything.
        #[arg(long)]
        all: bool,
        /// Remove blobs and root filesystems not used for this many days.
        #[arg(long, value_name = "DAYS")]
        older_than: Option<u64>,
        /// Then remove the least recently used blobs until blobs take at most this many bytes.
        #[arg(long, value_name = "BYTES")]
        max_size: Option<u64>,
        /// Only report what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn run(global: &GlobalArgs, args: CacheArgs) -> anyhow::Result<()> {
    let cache = global.cache()?;
    match args.action {
        CacheAction::Dir => print_data(&cache.root().display().to_string()),
        CacheAction::Size => {
            let u = usage(&cache)?;
            if args.json {
                print_data(&serde_json::to_string_pretty(&u)?)
            } else {
                print_data(&format!(
                    "{}\n{} blobs, {} bytes\n{} records, {} bytes\n{} temp files, {} bytes\n\
                     {} root filesystems, {} bytes\n{} buckets of old versions, {} bytes\ntotal {} bytes",
                    u.root.display(),
                    u.blobs,
                    u.blob_bytes,
                    u.records,
                    u.record_bytes,
                    u.temp_files,
                    u.temp_bytes,
                    u.rootfs_snapshots,
                    u.rootfs_bytes,
                    u.old_buckets,
                    u.old_bucket_bytes,
                    u.total_bytes
                ))
            }
        }
        CacheAction::Prune {
            all,
            older_than,
            max_size,
            dry_run,
        } => {
            if !all && older_than.is_none() && max_size.is_none() {
                anyhow::bail!("say what to prune: --all, --older-than DAYS or --max-size BYTES");
            }
            let options = PruneOptions {
                all,
                older_than: older_than.map(|d| Duration::from_secs(d * 86_400)),
                max_bytes: max_size,
                dry_run,
            };
            let reporter = global.reporter();
            let report = prune(&cache, &options, &reporter)?;
            if report.kept_rootfs_in_use > 0 {
                crate::report::Reporter::warn(
                    &reporter,
                    &format!(
                        "kept {} root filesystem(s) a running `lambda-img run` uses; prune again when it ends",
                        report.kept_rootfs_in_use
                    ),
                );
            }
            if args.json {
                print_data(&serde_json::to_string_pretty(&report)?)
            } else {
                print_data(&format!(
                    "{}removed {} blobs, {} records, {} temp files, {} root filesystems, {} buckets of old versions: {} bytes",
                    if report.dry_run { "would have " } else { "" },
                    report.removed_blobs,
                    report.removed_records,
                    report.removed_temp_files,
                    report.removed_rootfs,
                    report.removed_old_buckets,
                    report.freed_bytes
                ))
            }
        }
    }
}
