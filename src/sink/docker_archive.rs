//! `docker-archive:FILE[:REPO:TAG]`: writes the image as a `docker load`-able tar.
//!
//! Layout (Docker 25 style, without the OCI index): `manifest.json` naming
//! `blobs/sha256/<hex>` paths for the config and each layer. Layers are stored
//! as their compressed blobs, unchanged: `docker load`, `podman load` and
//! skopeo all detect gzip layers in an archive, so nothing is decompressed.
//! No `index.json`/`oci-layout` are written: with them podman 4.3 loads the
//! file as an oci-archive and names the image from index.json annotations
//! instead of `RepoTags` (tried: `docker.io/x:v1` rather than `localhost/x:v1`).
//!
//! The tar is deterministic: fixed entry order, mtime 0, owner 0/0, mode 0644.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use serde::Serialize;

use super::oci_layout::{check_layer_files, copy_verified, persist, temp_beside};
use super::{ImageSink, SinkError, SinkReport};
use crate::image::{Digest, Image};
use crate::reference::{OutputKind, OutputRef, OutputTarget};
use crate::report::Reporter;

/// A docker-archive file and the `REPO:TAG` it names the image with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerArchiveSink {
    pub file: PathBuf,
    /// `REPO:TAG` written in `RepoTags`; none leaves the loaded image unnamed.
    pub repo_tag: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveItem<'a> {
    config: String,
    repo_tags: &'a [String],
    layers: Vec<String>,
}

impl DockerArchiveSink {
    /// Parses what follows `docker-archive:`: `FILE[:REPO[:TAG]]`, split at the
    /// first `:` like skopeo; a reference without a tag gets `:latest`.
    pub fn parse(s: &str) -> Result<DockerArchiveSink, SinkError> {
        match OutputRef::of_kind(OutputKind::DockerArchive, s)?.target() {
            OutputTarget::DockerArchive { file, repo_tag } => Ok(DockerArchiveSink {
                file: file.clone(),
                repo_tag: repo_tag.clone(),
            }),
            other => unreachable!("a docker-archive: output parses as an archive, not {other:?}"),
        }
    }

    fn io_err(&self) -> impl Fn(io::Error) -> SinkError + '_ {
        |source| SinkError::Io {
            path: self.file.clone(),
            source,
        }
    }

    /// Writes the archive's tar stream into `out`.
    fn write_tar(&self, image: &Image, out: impl Write) -> Result<(), SinkError> {
        let blob = |d: &Digest| format!("blobs/sha256/{}", d.hex());
        let repo_tags: Vec<String> = self.repo_tag.iter().cloned().collect();
        let manifest = serde_json::to_vec(&[ArchiveItem {
            config: blob(&image.config_descriptor().digest),
            repo_tags: &repo_tags,
            layers: image
                .layers()
                .iter()
                .map(|l| blob(&l.descriptor.digest))
                .collect(),
        }])
        .expect("manifest.json always serialises");

        let mut tar = tar::Builder::new(out);
        let io_err = self.io_err();
        append(&mut tar, "manifest.json", &manifest).map_err(&io_err)?;
        append_dir(&mut tar, "blobs/").map_err(&io_err)?;
        append_dir(&mut tar, "blobs/sha256/").map_err(&io_err)?;
        append(&mut tar, &blob(&image.config_descriptor().digest), image.config()).map_err(&io_err)?;
        let mut written = BTreeSet::from([image.config_descriptor().digest.clone()]);
        for layer in image.layers() {
            // A layer listed twice is stored once; manifest.json names it twice.
            if !written.insert(layer.descriptor.digest.clone()) {
                continue;
            }
            let mut header = file_header(layer.descriptor.size);
            tar.append_data(&mut header, blob(&layer.descriptor.digest), io::empty())
                .map_err(&io_err)?;
            // append_data wrote the header only (empty body); the body follows
            // here, checked while it streams, then the padding to 512 bytes.
            let out = tar.get_mut();
            copy_verified(layer, out)?;
            let pad = (512 - layer.descriptor.size % 512) % 512;
            out.write_all(&[0u8; 512][..pad as usize]).map_err(&io_err)?;
        }
        tar.into_inner().map_err(&io_err)?.flush().map_err(&io_err)
    }
}

fn file_header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

fn append(tar: &mut tar::Builder<impl Write>, name: &str, bytes: &[u8]) -> io::Result<()> {
    let mut h = file_header(bytes.len() as u64);
    tar.append_data(&mut h, name, bytes)
}

fn append_dir(tar: &mut tar::Builder<impl Write>, name: &str) -> io::Result<()> {
    let mut h = file_header(0);
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    tar.append_data(&mut h, name, io::empty())
}

impl ImageSink for DockerArchiveSink {
    fn output(&self) -> OutputRef {
        OutputRef::docker_archive(&self.file, self.repo_tag.as_deref())
    }

    fn local_path(&self) -> Option<PathBuf> {
        Some(self.file.clone())
    }

    fn write(&self, image: &Image, reporter: &dyn Reporter) -> Result<SinkReport, SinkError> {
        reporter.step(&format!("writing {}", self.describe()));
        check_layer_files(image)?;
        if self.file.is_dir() {
            return Err(SinkError::InvalidOutput {
                output: self.describe(),
                message: format!("{} is a directory; name a file to write", self.file.display()),
            });
        }
        if let Some(parent) = self.file.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|source| SinkError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let mut tmp = temp_beside(&self.file).map_err(self.io_err())?;
        self.write_tar(image, BufWriter::with_capacity(1 << 20, tmp.as_file_mut()))?;
        persist(tmp, &self.file).map_err(self.io_err())?;
        Ok(SinkReport {
            output: self.output(),
            reference: self.repo_tag.clone(),
            blobs: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_splits_at_the_first_colon() {
        let s = DockerArchiveSink::parse("out/img.tar").unwrap();
        assert_eq!((s.file.to_str().unwrap(), s.repo_tag), ("out/img.tar", None));
        let s = DockerArchiveSink::parse("img.tar:localhost:5000/fn/app:v1").unwrap();
        assert_eq!(s.repo_tag.as_deref(), Some("localhost:5000/fn/app:v1"));
        let s = DockerArchiveSink::parse("img.tar:localhost:5000/app").unwrap();
        assert_eq!(s.repo_tag.as_deref(), Some("localhost:5000/app:latest"));
        let s = DockerArchiveSink::parse("img.tar:app").unwrap();
        assert_eq!(s.repo_tag.as_deref(), Some("app:latest"));
        assert!(DockerArchiveSink::parse("img.tar:App:v1").is_err());
        assert!(DockerArchiveSink::parse("img.tar:").is_err());
        assert!(DockerArchiveSink::parse(":app:v1").is_err());
    }
}
