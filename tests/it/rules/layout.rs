//! A minimal test-only reader for images written by other tools: an OCI
//! layout (index.json → manifest → blobs) or skopeo's `dir:` transport. It
//! reads the files directly, the way a user's image reaches `check`, and
//! hands verification to the project's own `assemble_base`.

use std::path::{Path, PathBuf};

use lambda_img::cache::Cache;
use lambda_img::image::{Descriptor, Document, Image, ManifestView, parse_document};
use lambda_img::source::{SourceError, assemble_base};

/// What a reference named.
pub enum Read {
    Image(Box<Image>),
    /// An index or manifest list, with its media type.
    Index(String),
}

fn assemble(
    bytes: Vec<u8>,
    view: &ManifestView,
    blob: impl Fn(&Descriptor) -> PathBuf,
    what: &str,
    cache: &Cache,
) -> Image {
    let config = std::fs::read(blob(&view.config)).unwrap();
    let locate = |d: &Descriptor| -> Result<PathBuf, SourceError> { Ok(blob(d)) };
    assemble_base(bytes, view, config, &locate, what, None, cache).unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Reads `dir:tag` of an OCI layout.
pub fn read_oci(dir: &Path, tag: &str, cache: &Cache) -> Read {
    let blob = |d: &Descriptor| dir.join("blobs/sha256").join(d.digest.hex());
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no tag {tag} in {}", dir.display()));
    let desc: Descriptor = serde_json::from_value(entry.clone()).unwrap();
    let bytes = std::fs::read(blob(&desc)).unwrap();
    let what = format!("oci:{}:{tag}", dir.display());
    match parse_document(&bytes, Some(&desc.media_type), &what).unwrap() {
        Document::Index(i) => Read::Index(i.media_type.unwrap_or(desc.media_type)),
        Document::Manifest(view) => Read::Image(Box::new(assemble(bytes, &view, blob, &what, cache))),
    }
}

/// Reads skopeo's `dir:` transport (manifest.json, blobs named by hex digest).
pub fn read_dir(dir: &Path, cache: &Cache) -> Image {
    let bytes = std::fs::read(dir.join("manifest.json")).unwrap();
    let what = format!("dir:{}", dir.display());
    match parse_document(&bytes, None, &what).unwrap() {
        Document::Manifest(view) => assemble(bytes, &view, |d| dir.join(d.digest.hex()), &what, cache),
        Document::Index(_) => panic!("{what} is an index"),
    }
}

/// Writes `image` as an OCI layout tagged `tag`, for tools to read.
pub fn write_oci(image: &Image, dir: &Path, tag: &str) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    for layer in image.layers() {
        let lambda_img::image::BlobLocation::File(src) = &layer.location;
        std::fs::copy(src, blobs.join(layer.descriptor.digest.hex())).unwrap();
    }
    std::fs::write(blobs.join(image.config_descriptor().digest.hex()), image.config()).unwrap();
    std::fs::write(blobs.join(image.manifest_digest().hex()), image.manifest()).unwrap();
    let mut desc = image.manifest_descriptor();
    desc.annotations = Some([("org.opencontainers.image.ref.name".to_string(), tag.to_string())].into());
    std::fs::write(dir.join("index.json"), lambda_img::image::write_index(&[desc])).unwrap();
}
