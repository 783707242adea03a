use std::fs;
use std::io::Read;

use flate2::read::GzDecoder;

use super::*;
use crate::cache::Cache;
use crate::image::Digest;

#[test]
fn compress_into_cache_round_trips_and_a_failure_leaves_nothing() {
    let cd = tempfile::tempdir().unwrap();
    let cache = Cache::open(cd.path()).unwrap();
    let data: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
    let summary = compress_into_cache(&data[..], 4, 2, &cache).unwrap();
    assert_eq!(summary.uncompressed_digest, Digest::of(&data));
    assert_eq!(summary.uncompressed_size, data.len() as u64);
    let blob = fs::read(cache.blob_path(&summary.compressed_digest)).unwrap();
    assert_eq!(blob.len() as u64, summary.compressed_size);
    let mut back = Vec::new();
    GzDecoder::new(&blob[..]).read_to_end(&mut back).unwrap();
    assert_eq!(back, data);

    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 > 500_000 {
                return Err(std::io::Error::other("disk on fire"));
            }
            let n = buf.len().min(4096);
            buf[..n].fill(1);
            self.0 += n;
            Ok(n)
        }
    }
    let cd = tempfile::tempdir().unwrap();
    let cache = Cache::open(cd.path()).unwrap();
    let err = compress_into_cache(Failing(0), 4, 2, &cache).unwrap_err();
    assert!(err.to_string().contains("disk on fire"), "{err}");
    for sub in ["blobs-v1/sha256", "tmp"] {
        let left: Vec<_> = fs::read_dir(cd.path().join(sub)).unwrap().collect();
        assert!(left.is_empty(), "{sub} has {left:?}");
    }
}
