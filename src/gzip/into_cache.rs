//! Running the parallel gzip into the cache: a temp file committed as a blob
//! under its digest, or nothing at all.

use std::io::{BufWriter, Read};
use std::path::Path;

use super::GzipError;
use super::pgzip::{Block, BlockSink, GzipSummary, parallel_gzip};
use crate::cache::{BlobFile, Cache};

/// Runs the parallel gzip into a cache temp file and commits it as a blob;
/// `produce` writes the uncompressed stream and `on_block` sees it block by
/// block, in order. On any failure the temp file is dropped (deleted): no blob.
pub fn compress_to_blob<E: From<GzipError>>(
    level: u32,
    threads: usize,
    cache: &Cache,
    on_block: &(dyn Fn(&Block) + Sync),
    produce: impl FnOnce(&mut BlockSink) -> Result<(), E>,
) -> Result<GzipSummary, E> {
    let cache_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| GzipError::Cache { path, source }
    };
    let tmp = cache.temp_file().map_err(cache_err(&cache.root().join("tmp")))?;
    let tmp_path = tmp.path().to_path_buf();
    let out = BufWriter::with_capacity(1 << 20, BlobFile::new(tmp));
    let (out, summary) = parallel_gzip(level, threads, out, &tmp_path, on_block, produce)?;
    let tmp = out
        .into_inner()
        .map_err(|e| cache_err(&tmp_path)(e.into_error()))?
        .into_temp();
    cache
        .commit_blob(tmp, &summary.compressed_digest)
        .map_err(cache_err(&tmp_path))?;
    Ok(summary)
}

/// Gzips any tar stream (a docker-archive base's uncompressed layer, say) into
/// the cache. The summary's uncompressed digest is the stream's diff_id.
pub fn compress_into_cache(
    mut reader: impl Read,
    level: u32,
    threads: usize,
    cache: &Cache,
) -> Result<GzipSummary, GzipError> {
    compress_to_blob(level, threads, cache, &|_| {}, |sink| {
        sink.fill_from(&mut reader, u64::MAX)
            .map(|_| ())
            .map_err(|source| GzipError::Read {
                what: "<tar stream>".into(),
                source,
            })
    })
}

#[cfg(test)]
#[path = "into_cache_tests.rs"]
mod tests;
