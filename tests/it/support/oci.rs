//! Reading what the tool wrote, independently of the library: OCI layouts and
//! layer tars are opened here with plain serde_json, flate2 and tar.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The manifest descriptor of `tag` in the OCI layout at `dir`.
pub fn index_entry(dir: &Path, tag: &str) -> Value {
    let index: Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no tag {tag} in {}", dir.display()))
        .clone()
}

pub fn blob_path(dir: &Path, digest: &str) -> PathBuf {
    dir.join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap())
}

pub fn read_blob(dir: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(blob_path(dir, digest)).unwrap()
}

/// The manifest of `tag` as JSON and as exact bytes.
pub fn manifest(dir: &Path, tag: &str) -> (Value, Vec<u8>) {
    let entry = index_entry(dir, tag);
    let bytes = read_blob(dir, entry["digest"].as_str().unwrap());
    (serde_json::from_slice(&bytes).unwrap(), bytes)
}

pub fn config(dir: &Path, tag: &str) -> Value {
    let (m, _) = manifest(dir, tag);
    serde_json::from_slice(&read_blob(dir, m["config"]["digest"].as_str().unwrap())).unwrap()
}

/// One entry of a layer tar, as the hygiene tests look at it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: String,
    pub kind: tar::EntryType,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub uname: Vec<u8>,
    pub gname: Vec<u8>,
    pub mtime: u64,
    pub link: Option<String>,
    pub data: Vec<u8>,
}

/// Every entry of a gzip layer blob, in tar order.
pub fn layer_entries(blob: &Path) -> Vec<Entry> {
    let file = std::fs::File::open(blob).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header().clone();
        let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        let link = entry
            .link_name_bytes()
            .map(|b| String::from_utf8(b.into_owned()).unwrap());
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        out.push(Entry {
            path,
            kind: header.entry_type(),
            mode: header.mode().unwrap(),
            uid: header.uid().unwrap(),
            gid: header.gid().unwrap(),
            uname: header.username_bytes().unwrap_or_default().to_vec(),
            gname: header.groupname_bytes().unwrap_or_default().to_vec(),
            mtime: header.mtime().unwrap(),
            link,
            data,
        });
    }
    out
}
