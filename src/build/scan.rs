//! Scanning a new layer for Lambda's rules while it is compressed, or while
//! the cache registry inflates it to verify it.

use std::sync::Arc;

use super::findings::CachedScans;
use crate::cache::{Cache, CacheBucket, Inflated, SecondLevel, SharedRecord};
use crate::gzip::Block;
use crate::image::{Layer, LayerOrigin};
use crate::layer::select::Selection;
use crate::layer::{LayerError, LayerSettings, LayerSpec, build_selected};
use crate::report::Reporter;
use crate::rules::ScanPlan;

/// What reads a new layer's tar while it is compressed.
pub(super) struct StreamScans<'a> {
    /// The rules' plan.
    pub plan: &'a Arc<ScanPlan>,
    /// The layer's place in the image.
    pub index: usize,
    /// Whether the SBOM's packages of the layer are listed from the same
    /// stream (only when the build makes an SBOM).
    pub sbom_packages: bool,
}

/// Builds a layer; when it is compressed, the rules' scan of it runs on the
/// uncompressed tar at the same time and is left in the cache, so checking
/// the image does not inflate and read the new layer a second time (on two
/// cores that was a serial 10% of a cold build). A scan that fails here is
/// dropped: the rules then read the layer as they would have anyway. The
/// layer carries `source`, the plan's description of it.
pub(super) fn build_scanned(
    spec: &LayerSpec,
    source: &str,
    entries: Selection,
    settings: &LayerSettings,
    cache: &Cache,
    reporter: &dyn Reporter,
    scan: Option<StreamScans<'_>>,
) -> Result<Layer, LayerError> {
    let Some(StreamScans {
        plan: scan_plan,
        index,
        sbom_packages,
    }) = scan
    else {
        return build_selected(spec, entries, source, settings, cache, reporter, &|_| {});
    };
    let cache = &scanning_shared(cache, Some(scan_plan), index);
    // A few blocks of slack: the scanners only parse headers and skip
    // content, so they keep up; when one stops, sends to it fail and are
    // ignored. Both share the compressor's own buffer of each block (no
    // copy); it goes back to the compressor when both are done with it.
    let (rules_blocks, rules_received) = std::sync::mpsc::sync_channel::<Block>(8);
    std::thread::scope(|s| {
        let scanner = std::thread::Builder::new()
            .name("layer-rules-scan".into())
            .spawn_scoped(s, move || {
                scan_spilled(scan_plan, cache, BlockReader::new(rules_received), index)
            })
            .expect("spawning the layer scan thread");
        // The SBOM's packages of the layer, from the same stream: the SBOM
        // made after the build then does not inflate the layer again.
        let (sbom_blocks, sbom_scanner) = if sbom_packages {
            let (blocks, received) = std::sync::mpsc::sync_channel::<Block>(8);
            let scanner = std::thread::Builder::new()
                .name("layer-sbom-scan".into())
                .spawn_scoped(s, move || {
                    crate::sbom::scan_built_stream(BlockReader::new(received))
                })
                .expect("spawning the layer scan thread");
            (Some(blocks), Some(scanner))
        } else {
            (None, None)
        };
        let observe = |block: &Block| {
            if let Some(sbom_blocks) = &sbom_blocks {
                let _ = sbom_blocks.send(block.clone());
            }
            let _ = rules_blocks.send(block.clone());
        };
        let built = build_selected(spec, entries, source, settings, cache, reporter, &observe);
        drop(rules_blocks);
        drop(sbom_blocks);
        let scan = scanner.join().expect("layer scan thread panicked");
        let packages = sbom_scanner.and_then(|h| h.join().expect("layer SBOM scan thread panicked"));
        let layer = built?;
        // A layer from the cache was not streamed: its scans saw nothing.
        if let LayerOrigin::Built { cached: false, .. } = &layer.origin {
            if let Ok(scan) = scan {
                scan.remember(&layer.descriptor.digest, &CachedScans(cache));
            }
            if let Some(packages) = packages {
                crate::sbom::remember_streamed(&layer.descriptor.digest, packages);
            }
        }
        Ok(layer)
    })
}

/// The rules' scan of the layer tar `tar`, its entries waiting on disk in
/// the cache's temp directory rather than in memory beside the layer's
/// selection (about 100 bytes a file; the build holds the selection until
/// the layer is in the cache). The file has no name once open, so nothing
/// is left behind; without one the scan keeps its entries in memory.
fn scan_spilled<'p>(
    plan: &'p ScanPlan,
    cache: &Cache,
    tar: impl std::io::Read + std::io::Seek,
    index: usize,
) -> std::io::Result<crate::rules::TarScan<'p>> {
    // Dropping the named file removes its name; the clone keeps it open.
    let spill = cache.temp_file().ok().and_then(|t| t.as_file().try_clone().ok());
    match spill {
        Some(file) => plan.scan_tar_spilled(tar, index, file),
        None => plan.scan_tar(tar, index),
    }
}

/// `cache` with its second level (the cache registry), when it has one,
/// handing each blob it inflates to verify it to the rules' scan, as layer
/// `first + n` of the image (`n`: the blob's place in its record). The scan
/// is left in the cache, so checking the image does not inflate a shared
/// layer a second time (on machine 2 of a CI fleet that was most of the
/// work after the downloads).
pub(super) fn scanning_shared(cache: &Cache, scan_plan: Option<&Arc<ScanPlan>>, first: usize) -> Cache {
    match (cache.second_level_handle(), scan_plan) {
        (Some(inner), Some(plan)) => cache.with_second_level(Arc::new(ScanningLevel {
            inner,
            plan: plan.clone(),
            first,
        })),
        _ => cache.clone(),
    }
}

/// A second level whose fetches feed the rules' scans (see [`scanning_shared`]).
struct ScanningLevel {
    inner: Arc<dyn SecondLevel>,
    plan: Arc<ScanPlan>,
    first: usize,
}

impl std::fmt::Debug for ScanningLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanningLevel")
            .field("inner", &self.inner)
            .field("first", &self.first)
            .finish_non_exhaustive()
    }
}

impl SecondLevel for ScanningLevel {
    fn fetch(
        &self,
        cache: &Cache,
        bucket: CacheBucket,
        key: &str,
        accept: &dyn Fn(&SharedRecord) -> bool,
        reporter: &dyn Reporter,
    ) -> Option<SharedRecord> {
        let scan: &Inflated<'_> = &|n, digest, tar| {
            // A tar the scan cannot read is left to the rules, which say why.
            let tar = crate::tar_walk::SkipByReading::new(tar);
            if let Ok(scan) = scan_spilled(&self.plan, cache, tar, self.first + n) {
                scan.remember(digest, &CachedScans(cache));
            }
        };
        self.inner
            .fetch_inflating(cache, bucket, key, accept, reporter, scan)
    }

    fn publish(
        &self,
        cache: &Cache,
        bucket: CacheBucket,
        key: &str,
        record: &SharedRecord,
        reporter: &dyn Reporter,
    ) {
        self.inner.publish(cache, bucket, key, record, reporter);
    }

    fn fetch_document(
        &self,
        cache: &Cache,
        bucket: CacheBucket,
        key: &str,
        reporter: &dyn Reporter,
    ) -> Option<crate::image::Digest> {
        self.inner.fetch_document(cache, bucket, key, reporter)
    }

    fn publish_document(
        &self,
        cache: &Cache,
        bucket: CacheBucket,
        key: &str,
        document: &crate::image::Descriptor,
        reporter: &dyn Reporter,
    ) {
        self.inner
            .publish_document(cache, bucket, key, document, reporter);
    }
}

/// Reads the blocks a channel delivers as one stream; skips forward without
/// copying (the scans read only the head of each file).
struct BlockReader {
    blocks: std::sync::mpsc::Receiver<Block>,
    current: Block,
    at: usize,
    /// Bytes of the stream read or skipped so far.
    pos: u64,
}

impl BlockReader {
    fn new(blocks: std::sync::mpsc::Receiver<Block>) -> BlockReader {
        BlockReader {
            blocks,
            current: Block::from_vec(Vec::new()),
            at: 0,
            pos: 0,
        }
    }

    /// The unread rest of the current block, the next block's when it is
    /// used up; empty at the end of the stream.
    fn rest(&mut self) -> &[u8] {
        while self.at == self.current.len() {
            match self.blocks.recv() {
                Ok(block) => {
                    self.current = block;
                    self.at = 0;
                }
                // The sender is gone: the stream ended.
                Err(_) => return &[],
            }
        }
        &self.current[self.at..]
    }

    fn advance(&mut self, n: usize) {
        self.at += n;
        self.pos += n as u64;
    }
}

impl std::io::Read for BlockReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let rest = self.rest();
        let n = buf.len().min(rest.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.advance(n);
        Ok(n)
    }
}

impl std::io::Seek for BlockReader {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        let unsupported = || {
            std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "a block stream only skips forward",
            )
        };
        let std::io::SeekFrom::Current(n) = to else {
            return Err(unsupported());
        };
        let mut left = u64::try_from(n).map_err(|_| unsupported())?;
        while left > 0 {
            // Short at the end of the stream: the next read says so.
            let available = self.rest().len();
            if available == 0 {
                break;
            }
            let n = available.min(usize::try_from(left).unwrap_or(usize::MAX));
            self.advance(n);
            left -= n as u64;
        }
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::build::findings::SCANS_BUCKET;
    use crate::image::Architecture;
    use crate::layer::LayerInput;
    use crate::rules::{CheckContext, Limits};

    fn remembered_scans(cache: &Cache) -> usize {
        fs::read_dir(cache.root().join(SCANS_BUCKET)).map_or(0, |d| d.count())
    }

    #[test]
    fn a_compressed_layer_is_scanned_on_the_way_and_a_cached_one_is_not() {
        let src = tempfile::tempdir().unwrap();
        fs::write(
            src.path().join("app.py"),
            "def handler(event, context):\n    return 1\n",
        )
        .unwrap();
        let bootstrap = src.path().join("bootstrap");
        fs::write(&bootstrap, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&bootstrap, fs::Permissions::from_mode(0o755)).unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(cache_dir.path()).unwrap();
        let spec = LayerSpec {
            name: "code".into(),
            inputs: vec![LayerInput::all(src.path(), "/var/task")],
        };
        let context = CheckContext {
            arch: Some(Architecture::X86_64),
            runtime: Some("python3.12".into()),
            handler: Some("app.handler".into()),
            limits: Limits::default(),
        };
        let config = br#"{"architecture":"amd64","os":"linux","config":{"Cmd":["app.handler"]}}"#;
        let plan = Arc::new(ScanPlan::new(config, &context).unwrap());
        let settings = LayerSettings::default();
        let silent = crate::report::Silent;

        let entries = crate::layer::select::select(&spec).unwrap();
        let built = build_scanned(
            &spec,
            "code",
            entries,
            &settings,
            &cache,
            &silent,
            Some(StreamScans {
                plan: &plan,
                index: 0,
                sbom_packages: true,
            }),
        )
        .unwrap();
        assert!(matches!(built.origin, LayerOrigin::Built { cached: false, .. }));
        assert_eq!(remembered_scans(&cache), 1, "the compressed layer's scan is kept");

        // From the cache, the layer is not streamed: the empty stream's
        // "scan" must not be remembered in place of the real one.
        fs::remove_dir_all(cache.root().join(SCANS_BUCKET)).unwrap();
        let entries = crate::layer::select::select(&spec).unwrap();
        let again = build_scanned(
            &spec,
            "code",
            entries,
            &settings,
            &cache,
            &silent,
            Some(StreamScans {
                plan: &plan,
                index: 0,
                sbom_packages: true,
            }),
        )
        .unwrap();
        assert!(matches!(again.origin, LayerOrigin::Built { cached: true, .. }));
        assert_eq!(again.descriptor, built.descriptor);
        assert_eq!(remembered_scans(&cache), 0);
    }

    #[test]
    fn the_block_stream_skips_across_blocks_as_reading_would() {
        let tar = crate::tar_walk::tests::sample_tar();
        fn heads(
            walked: &mut Vec<(String, Vec<u8>)>,
        ) -> impl FnMut(&crate::tar_walk::TarEntry, &mut dyn std::io::Read) -> std::io::Result<()> + '_
        {
            move |e, content| {
                walked.push((e.path.clone(), crate::tar_walk::read_head(content, 10)?));
                Ok(())
            }
        }
        let mut expected = Vec::new();
        let stats = crate::tar_walk::walk_tar(&tar[..], heads(&mut expected)).unwrap();
        // Blocks of odd sizes, so skips start and end inside them.
        let (tx, rx) = std::sync::mpsc::channel();
        for chunk in tar.chunks(12_345) {
            tx.send(Block::from_vec(chunk.to_vec())).unwrap();
        }
        drop(tx);
        let mut got = Vec::new();
        let skipped = crate::tar_walk::walk_tar_skipping(BlockReader::new(rx), heads(&mut got)).unwrap();
        assert_eq!(got, expected);
        assert_eq!(skipped, stats);
        assert_eq!(expected.len(), 8);
    }
}
