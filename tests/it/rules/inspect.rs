//! `inspect`: summaries per layer, history matched past empty layers, and
//! the diff of two images.

use std::process::Command;

use lambda_img::cache::Cache;
use lambda_img::image::MediaFamily;
use lambda_img::inspect::{diff, render_diff, render_table, summarize};
use serde_json::json;

use super::fixture::{ImageBuilder, TarLayer, aws_like};
use super::layout::{Read, read_oci};
use crate::support::{require_tool, run_ok};

#[test]
fn summary_has_config_essentials_and_per_layer_facts() {
    let mut builder = aws_like(); // keeps the blobs' temp dir alive
    let image = builder.build();
    let s = summarize(&image).unwrap();
    assert_eq!(&s.manifest_digest, image.manifest_digest());
    assert_eq!(s.manifest_size, image.manifest().len() as u64);
    assert_eq!(s.config.entrypoint, ["/lambda-entrypoint.sh"]);
    assert_eq!(s.config.cmd, ["app.lambda_handler"]);
    assert_eq!(s.config.workdir.as_deref(), Some("/var/task"));
    assert_eq!(s.config.architecture.as_deref(), Some("amd64"));
    assert_eq!(s.layers.len(), 4);
    // Layer 1: ./, usr/, usr/bin/, python3.12, sh, bin ->, etc/, os-release, motd, entrypoint, tmp/.
    assert_eq!(s.layers[0].entries, Some(11));
    assert_eq!(s.layers[0].files, Some(5));
    let largest: Vec<_> = s.layers[0]
        .largest
        .iter()
        .map(|p| (p.path.as_str(), p.size))
        .collect();
    assert_eq!(largest[0], ("/usr/bin/python3.12", 64));
    assert!(largest.windows(2).all(|w| w[0].1 >= w[1].1), "{largest:?}");
    for (l, sl) in image.layers().iter().zip(&s.layers) {
        assert_eq!(sl.digest, l.descriptor.digest);
        assert_eq!(sl.uncompressed_size, l.uncompressed_size);
        assert_eq!(sl.compressed_size, l.descriptor.size);
        // `"history": null` in the config: no entry to match.
        assert!(sl.history.is_none());
    }
    // Layer 3 only deletes /etc/motd.
    assert_eq!((s.layers[2].files, s.layers[2].whiteouts), (Some(0), Some(1)));
    assert!(s.layers[2].largest.is_empty());
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["layers"][0]["files"], 5);
    assert_eq!(json["config"]["entrypoint"][0], "/lambda-entrypoint.sh");
    let table = render_table(&s);
    assert!(table.contains(&s.manifest_digest.to_string()), "{table}");
    assert!(
        table.contains(s.layers[3].digest.short()) && table.contains("/var/task/app.py"),
        "{table}"
    );
}

#[test]
fn history_skips_empty_layer_entries() {
    let mut b: ImageBuilder = aws_like().set(
        "/history",
        json!([
            {"created_by": "ADD rootfs.tar /"},
            {"created_by": "ENV LANG=en_US.UTF-8", "empty_layer": true},
            {"created_by": "COPY runtime /var"},
            {"created_by": "RUN rm /etc/motd"},
            {"created_by": "WORKDIR /var/task", "empty_layer": true},
            {"created_by": "COPY app.py /var/task"},
        ]),
    );
    let s = summarize(&b.build()).unwrap();
    let by: Vec<_> = s
        .layers
        .iter()
        .map(|l| l.history.as_ref().unwrap().created_by.clone().unwrap())
        .collect();
    assert_eq!(
        by,
        [
            "ADD rootfs.tar /",
            "COPY runtime /var",
            "RUN rm /etc/motd",
            "COPY app.py /var/task"
        ]
    );
}

#[test]
fn diff_shows_shared_and_changed_layers_and_config_changes() {
    let a = summarize(&aws_like().build()).unwrap();
    let mut changed = aws_like()
        .layer(TarLayer::new().file("var/task/extra.py", 0o644, b"x = 1\n"))
        .set("/config/Cmd", json!(["app.other"]));
    // Replace the code layer: same base, new code.
    changed.layers.remove(3);
    let b = summarize(&changed.build()).unwrap();
    let d = diff(&a, &b);
    assert_eq!(d.common_prefix, 3);
    assert_eq!(d.shared.len(), 3);
    assert_eq!(d.only_a.len(), 1);
    assert_eq!(d.only_a[0].digest, a.layers[3].digest);
    assert_eq!(d.only_b.len(), 1);
    assert_eq!((d.only_b[0].position_a, d.only_b[0].position_b), (None, Some(4)));
    assert_eq!(d.config_changes.len(), 1);
    assert_eq!(d.config_changes[0].field, "cmd");
    let text = render_diff(&d);
    assert!(
        text.contains("3 layers shared") && text.contains("1 only in a") && text.contains("1 only in b"),
        "{text}"
    );
    assert!(
        text.contains("cmd: [\"app.lambda_handler\"] -> [\"app.other\"]"),
        "{text}"
    );
    // An image against itself: everything shared.
    let same = diff(&a, &a);
    assert!(same.only_a.is_empty() && same.only_b.is_empty() && same.config_changes.is_empty());
    assert_eq!(same.common_prefix, 4);
}

#[test]
fn diff_of_oci_and_docker_copies_shares_every_layer() {
    let mut oci = aws_like();
    let mut docker = aws_like();
    docker.family = MediaFamily::Docker;
    let (a, b) = (
        summarize(&oci.build()).unwrap(),
        summarize(&docker.build()).unwrap(),
    );
    let d = diff(&a, &b);
    assert_ne!(d.a, d.b);
    assert_eq!(d.shared.len(), 4);
}

#[test]
fn umoci_history_is_matched_to_layers() {
    if !require_tool("umoci") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let cache = Cache::open(work.path().join("cache")).unwrap();
    let layout = work.path().join("l");
    let root = work.path().join("root");
    std::fs::create_dir_all(root.join("var/task")).unwrap();
    std::fs::write(root.join("var/task/a.txt"), vec![b'a'; 3000]).unwrap();
    std::fs::write(root.join("var/task/b.txt"), b"b").unwrap();
    let image = format!("{}:x", layout.display());
    run_ok(Command::new("umoci").arg("init").arg("--layout").arg(&layout));
    run_ok(Command::new("umoci").args(["new", "--image", &image]));
    run_ok(Command::new("umoci").args(["config", "--image", &image, "--config.cmd", "/x"]));
    run_ok(
        Command::new("umoci")
            .args(["insert", "--history.created_by", "insert app", "--image", &image])
            .arg(&root)
            .arg("/"),
    );
    let Read::Image(img) = read_oci(&layout, "x", &cache) else {
        panic!("index")
    };
    let s = summarize(&img).unwrap();
    assert_eq!(s.layers.len(), 1);
    let l = &s.layers[0];
    assert_eq!(
        l.history.as_ref().unwrap().created_by.as_deref(),
        Some("insert app")
    );
    assert_eq!(l.files, Some(2));
    assert_eq!(l.largest[0].path, "/var/task/a.txt");
    assert_eq!(l.largest[0].size, 3000);
}
