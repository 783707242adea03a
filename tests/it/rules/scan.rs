//! The build scans each new layer's tar while compressing it
//! (`ScanPlan::scan_tar`) and leaves the scan where the rules look first. That
//! scan must be the very scan the rules make of the blob, or a build would
//! judge an image differently from `lambda-img check`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use lambda_img::image::Architecture;
use lambda_img::rules::{CheckContext, LayerScan, Limits, ScanMemo, ScanPlan, check_image_with};

use super::fixture::{APP_PY, TarLayer, aws_like, elf};

/// Scans kept as JSON, counting the lookups that found nothing.
#[derive(Default)]
struct MapMemo {
    scans: Mutex<BTreeMap<String, String>>,
    misses: Mutex<usize>,
}

impl ScanMemo for MapMemo {
    fn get(&self, key: &str) -> Option<LayerScan> {
        let found = self
            .scans
            .lock()
            .unwrap()
            .get(key)
            .map(|j| serde_json::from_str(j).unwrap());
        if found.is_none() {
            *self.misses.lock().unwrap() += 1;
        }
        found
    }
    fn put(&self, key: &str, scan: &LayerScan) {
        let json = serde_json::to_string(scan).unwrap();
        self.scans.lock().unwrap().insert(key.to_string(), json);
    }
    // Kept as read, byte for byte: a spilled scan must be the JSON `put` writes.
    fn put_json(&self, key: &str, json: &mut dyn std::io::Read) {
        let mut text = String::new();
        json.read_to_string(&mut text).unwrap();
        self.scans.lock().unwrap().insert(key.to_string(), text);
    }
}

#[test]
fn a_scan_of_the_tar_stream_is_the_scan_of_the_blob() {
    let ctx = CheckContext {
        arch: Some(Architecture::X86_64),
        runtime: Some("python3.12".into()),
        handler: None,
        limits: Limits::default(),
    };
    // A layer that gives findings of its own (a hard link, an entry without
    // its parent directory) and files whose first bytes the rules keep (the
    // handler's module, an executable).
    let mut builder = aws_like().layer(
        TarLayer::new()
            .file("var/task/app.py", 0o644, APP_PY)
            .hardlink("var/task/copy.py", "var/task/app.py")
            .raw_file("opt/tools/bin/tool", 0o755, &elf(62)),
    );
    let image = builder.build();

    let from_blobs = MapMemo::default();
    let expected = check_image_with(&image, &ctx, Some(&from_blobs)).unwrap();
    let ids: Vec<&str> = expected.iter().map(|f| f.rule_id).collect();
    assert!(ids.contains(&"LI040") && ids.contains(&"LI041"), "{expected:#?}");

    let plan = ScanPlan::new(image.config(), &ctx).unwrap();
    let from_streams = MapMemo::default();
    for (index, ((tar, _), layer)) in builder.layers.iter().zip(image.layers()).enumerate() {
        let scan = plan.scan_tar(std::io::Cursor::new(&tar[..]), index).unwrap();
        scan.remember(&layer.descriptor.digest, &from_streams);
    }
    assert_eq!(
        *from_streams.scans.lock().unwrap(),
        *from_blobs.scans.lock().unwrap(),
        "same keys, same scans"
    );
    // Scanned with the entries spilled to a file (as a build does): the
    // record read back is the same bytes.
    let from_spills = MapMemo::default();
    for (index, ((tar, _), layer)) in builder.layers.iter().zip(image.layers()).enumerate() {
        let spill = tempfile::tempfile().unwrap();
        let scan = plan
            .scan_tar_spilled(std::io::Cursor::new(&tar[..]), index, spill)
            .unwrap();
        scan.remember(&layer.descriptor.digest, &from_spills);
    }
    assert_eq!(
        *from_spills.scans.lock().unwrap(),
        *from_blobs.scans.lock().unwrap(),
        "a spilled scan is written as the scan kept in memory"
    );
    let got = check_image_with(&image, &ctx, Some(&from_streams)).unwrap();
    let pairs = |f: &[lambda_img::rules::Finding]| -> Vec<(String, String)> {
        f.iter()
            .map(|f| (f.rule_id.to_string(), f.message.clone()))
            .collect()
    };
    assert_eq!(pairs(&got), pairs(&expected));
    assert_eq!(
        *from_streams.misses.lock().unwrap(),
        0,
        "the rules read a layer again"
    );
}
