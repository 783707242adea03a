//! `docker-archive:PATH[@sha256:<image id>]`: a base image from a `docker save` tar.
//!
//! Both layouts are read through `manifest.json` ([{Config, RepoTags, Layers}]):
//! the classic one (`<id>/layer.tar`, `<id>.json`) and Docker 25's, which embeds
//! an OCI layout and names `blobs/sha256/<hex>` paths. Layer tars are usually
//! uncompressed; registries need compressed layers, so they are gzipped into the
//! cache once (keyed by diff_id) and the image points at the cached blobs.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ImageSource, LayerVerification, SourceError, assemble_base_with};
use crate::cache::{Cache, CacheBucket, CacheEntry};
use crate::image::{
    Architecture, DOCKER_CONFIG, DOCKER_LAYER_GZIP, Descriptor, Digest, HashingWriter, Image, ManifestView,
    MediaFamily, write_manifest,
};
use crate::reference::{ImageRef, ImageTarget};
use crate::report::Reporter;

/// Configs are small; refuse to load anything bigger into memory.
const MAX_CONFIG: u64 = 32 << 20;

/// The record key of a gzipped docker-archive layer: its diff_id plus what
/// decides the compressed bytes, so a lambda-img that compresses differently
/// does not reuse another's blob (the image digest would then depend on the
/// cache's history).
fn gzip_key(diff_id: &Digest) -> String {
    format!(
        "{}-f{}-l{}",
        diff_id.hex(),
        crate::gzip::GZIP_FORMAT_VERSION,
        crate::gzip::DEFAULT_GZIP_LEVEL
    )
}

/// An image inside a docker-archive tar file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerArchiveSource {
    reference: String,
    pub path: PathBuf,
    /// The config digest (image ID) the chosen image must have.
    pub digest: Option<Digest>,
}

/// One image in `manifest.json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveItem {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

/// Where each member of the tar is: byte ranges of files, targets of links.
#[derive(Debug, Clone)]
enum Member {
    File { offset: u64, size: u64 },
    Link(String),
}

#[derive(Debug, Serialize, Deserialize)]
struct GzipRecord {
    digest: Digest,
    size: u64,
}

/// A record of `archive-gzip-v2`: an uncompressed layer's diff_id → its gzipped blob.
impl CacheEntry for GzipRecord {
    fn blobs(&self) -> Vec<(&Digest, u64)> {
        vec![(&self.digest, self.size)]
    }
}

/// A config read once: its digest and bytes, shared by every entry naming it.
type SharedConfig = (Digest, std::rc::Rc<Vec<u8>>);

impl DockerArchiveSource {
    /// Parses what follows `docker-archive:`: `PATH[@sha256:<config digest>]`.
    pub fn parse(s: &str) -> Result<DockerArchiveSource, SourceError> {
        let reference = ImageRef::docker_archive(s)?;
        match reference.target() {
            ImageTarget::DockerArchive { path, digest } => {
                Ok(DockerArchiveSource::new(&reference, path, digest))
            }
            other => unreachable!("a docker-archive: reference parses as an archive, not {other:?}"),
        }
    }

    /// The source of a parsed `docker-archive:` reference.
    pub(super) fn new(reference: &ImageRef, path: &Path, digest: &Option<Digest>) -> Self {
        DockerArchiveSource {
            reference: reference.to_string(),
            path: path.to_path_buf(),
            digest: digest.clone(),
        }
    }

    fn io_err(&self) -> impl Fn(io::Error) -> SourceError + '_ {
        |source| SourceError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn not_archive(&self, reason: String) -> SourceError {
        SourceError::NotAnImage {
            path: self.path.clone(),
            expected: "a docker-archive (docker save) tar",
            reason,
        }
    }

    /// Lists the members of the tar without reading their contents.
    fn index(&self) -> Result<HashMap<String, Member>, SourceError> {
        let file = crate::bounded_read::open_regular(&self.path).map_err(self.io_err())?;
        let mut archive = tar::Archive::new(BufReader::new(file));
        let mut members = HashMap::new();
        let bad = |e: io::Error| self.not_archive(format!("it is not a readable tar ({e})"));
        for entry in archive.entries_with_seek().map_err(bad)? {
            let entry = entry.map_err(bad)?;
            let name = normalize(&entry.path().map_err(bad)?);
            let kind = entry.header().entry_type();
            let member = if kind.is_symlink() || kind.is_hard_link() {
                let target = entry.link_name().map_err(bad)?.unwrap_or_default();
                let base = if kind.is_symlink() {
                    Path::new(&name).parent().unwrap_or(Path::new("")).join(target)
                } else {
                    target.into_owned()
                };
                Member::Link(normalize(&base))
            } else if kind.is_file() {
                Member::File {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                }
            } else {
                continue;
            };
            members.insert(name, member);
        }
        Ok(members)
    }

    /// The byte range of member `name`, following links.
    fn locate(&self, members: &HashMap<String, Member>, name: &str) -> Result<(u64, u64), SourceError> {
        let mut current = normalize(Path::new(name));
        for _ in 0..16 {
            match members.get(&current) {
                Some(Member::File { offset, size }) => return Ok((*offset, *size)),
                Some(Member::Link(target)) => current = target.clone(),
                None => break,
            }
        }
        Err(self.not_archive(format!(
            "its manifest.json names `{name}`, which is not a file in the archive"
        )))
    }

    fn open_member(&self, range: (u64, u64)) -> Result<io::Take<BufReader<File>>, SourceError> {
        let mut file = crate::bounded_read::open_regular(&self.path).map_err(self.io_err())?;
        file.seek(SeekFrom::Start(range.0)).map_err(self.io_err())?;
        Ok(BufReader::with_capacity(1 << 20, file).take(range.1))
    }

    fn read_member(&self, range: (u64, u64), what: &str) -> Result<Vec<u8>, SourceError> {
        if range.1 > MAX_CONFIG {
            return Err(self.not_archive(format!("its {what} is {} bytes, too big for a config", range.1)));
        }
        let mut bytes = Vec::with_capacity(range.1 as usize);
        self.open_member(range)?
            .read_to_end(&mut bytes)
            .map_err(self.io_err())?;
        Ok(bytes)
    }

    /// Picks the image to read and returns it with its exact config bytes.
    fn choose(
        &self,
        members: &HashMap<String, Member>,
        items: Vec<ArchiveItem>,
    ) -> Result<(ArchiveItem, Vec<u8>), SourceError> {
        // manifest.json may name one config many times: each is read once.
        let mut configs: HashMap<(u64, u64), SharedConfig> = HashMap::new();
        let mut found = Vec::with_capacity(items.len());
        for item in items {
            let range = self.locate(members, &item.config)?;
            let (digest, config) = match configs.get(&range) {
                Some(known) => known.clone(),
                None => {
                    let bytes = self.read_member(range, "config")?;
                    let known = (Digest::of(&bytes), std::rc::Rc::new(bytes));
                    configs.insert(range, known.clone());
                    known
                }
            };
            found.push((digest, item, config));
        }
        drop(configs);
        let (item, config) = self.pick(found)?;
        // The other entries sharing these bytes are gone: no copy is made.
        let config = std::rc::Rc::try_unwrap(config).unwrap_or_else(|shared| (*shared).clone());
        Ok((item, config))
    }

    /// The item the reference asks for (its image ID) among `found`.
    fn pick<C>(&self, mut found: Vec<(Digest, ArchiveItem, C)>) -> Result<(ArchiveItem, C), SourceError> {
        let describe = |found: &[(Digest, ArchiveItem, C)]| {
            let names: Vec<String> = found
                .iter()
                .map(|(d, item, _)| match item.repo_tags.as_deref() {
                    Some(tags) if !tags.is_empty() => format!("{} ({d})", tags.join(" ")),
                    _ => d.to_string(),
                })
                .collect();
            names.join(", ")
        };
        match &self.digest {
            Some(wanted) => {
                if let Some(i) = found.iter().position(|(d, _, _)| d == wanted) {
                    let (_, item, config) = found.swap_remove(i);
                    return Ok((item, config));
                }
                if found.len() == 1 {
                    return Err(SourceError::DigestMismatch {
                        what: format!("the image in {}", self.reference),
                        expected: wanted.clone(),
                        actual: found.swap_remove(0).0,
                    });
                }
                Err(SourceError::Invalid {
                    source_ref: self.reference.clone(),
                    message: format!("no image has ID {wanted}; it holds {}", describe(&found)),
                })
            }
            None if found.len() == 1 => {
                let (_, item, config) = found.swap_remove(0);
                Ok((item, config))
            }
            None => Err(SourceError::AmbiguousImage {
                source_ref: self.reference.clone(),
                count: found.len(),
                available: describe(&found),
                hint: format!(
                    "pin one with docker-archive:{}@sha256:<image ID>",
                    self.path.display()
                ),
            }),
        }
    }

    /// Puts one layer into the cache as a gzip blob and returns its descriptor.
    fn cache_layer(
        &self,
        members: &HashMap<String, Member>,
        name: &str,
        diff_id: &Digest,
        cache: &Cache,
        reporter: &dyn Reporter,
    ) -> Result<Descriptor, SourceError> {
        let key = gzip_key(diff_id);
        // Looked up before the layer's own bytes: a layer this archive holds
        // gzipped but another held uncompressed keeps the blob made then.
        if let Some(hit) = cache.entry::<GzipRecord>(CacheBucket::ArchiveGzip, &key) {
            return Ok(Descriptor::new(DOCKER_LAYER_GZIP, hit.digest, hit.size));
        }
        let range = self.locate(members, name)?;
        let mut magic = [0u8; 4];
        let n = read_up_to(&mut self.open_member(range)?, &mut magic).map_err(self.io_err())?;
        let io_err = |source| SourceError::Io {
            path: cache.root().to_path_buf(),
            source,
        };
        if n >= 2 && magic[..2] == [0x1f, 0x8b] {
            // Already gzip: keep the archive's bytes as the blob (assemble_base checks its diff_id).
            let mut tmp = cache.temp_file().map_err(io_err)?;
            let mut writer = HashingWriter::new(BufWriter::new(tmp.as_file_mut()));
            io::copy(&mut self.open_member(range)?, &mut writer).map_err(self.io_err())?;
            let (mut buffered, (digest, size)) = writer.finish();
            buffered.flush().map_err(io_err)?;
            drop(buffered);
            cache.commit_blob(tmp, &digest).map_err(io_err)?;
            return Ok(Descriptor::new(DOCKER_LAYER_GZIP, digest, size));
        }
        if n == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
            return Err(SourceError::Invalid {
                source_ref: self.reference.clone(),
                message: format!("layer `{name}` is zstd-compressed, which lambda-img cannot read"),
            });
        }
        let id = format!("gzip {diff_id}");
        // Another build sharing the cache may be compressing the same layer.
        let record = cache
            .get_or_build(CacheBucket::ArchiveGzip, &key, || {
                reporter.task_start(
                    &id,
                    &format!("compressing layer {} of {}", diff_id.short(), self.reference),
                    Some(range.1),
                );
                let input = Progress {
                    inner: self.open_member(range)?,
                    reporter,
                    id: &id,
                };
                let record = gzip_layer_into_cache(input, diff_id, cache, &self.reference)?;
                reporter.task_done(
                    &id,
                    &format!("layer {} compressed to {} bytes", diff_id.short(), record.size),
                );
                Ok::<_, SourceError>(record)
            })?
            .into_inner();
        Ok(Descriptor::new(DOCKER_LAYER_GZIP, record.digest, record.size))
    }
}

/// Reports the bytes read through it as progress of task `id`.
struct Progress<'a, R> {
    inner: R,
    reporter: &'a dyn Reporter,
    id: &'a str,
}

impl<R: Read> Read for Progress<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.reporter.task_progress(self.id, n as u64);
        Ok(n)
    }
}

/// Gzips an uncompressed layer tar into the cache with the `gzip` module's
/// deterministic parallel gzip, checking that the tar's sha256 is `diff_id`.
/// Cached by diff_id (by the caller), so a second build of the same base does
/// not compress again.
fn gzip_layer_into_cache(
    reader: impl Read,
    diff_id: &Digest,
    cache: &Cache,
    source_ref: &str,
) -> Result<GzipRecord, SourceError> {
    let summary = crate::gzip::compress_into_cache(
        reader,
        crate::gzip::DEFAULT_GZIP_LEVEL,
        crate::gzip::default_threads(),
        cache,
    )
    .map_err(|e| SourceError::Invalid {
        source_ref: source_ref.to_string(),
        message: format!("cannot compress a layer: {e}"),
    })?;
    let actual = summary.uncompressed_digest;
    if &actual != diff_id {
        return Err(SourceError::DigestMismatch {
            what: format!("a layer tar of {source_ref}"),
            expected: diff_id.clone(),
            actual,
        });
    }
    Ok(GzipRecord {
        digest: summary.compressed_digest,
        size: summary.compressed_size,
    })
}

fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// A tar member name without `./`, `..` resolved, and no trailing `/`.
fn normalize(path: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    parts.join("/")
}

impl ImageSource for DockerArchiveSource {
    fn describe(&self) -> String {
        self.reference.clone()
    }

    fn resolve_with(
        &self,
        _arch: Architecture,
        cache: &Cache,
        reporter: &dyn Reporter,
        verification: LayerVerification,
    ) -> Result<Image, SourceError> {
        reporter.step(&format!("reading {}", self.reference));
        if !self.path.is_file() {
            return Err(self.not_archive("no such file; write one with `docker save -o FILE IMAGE`".into()));
        }
        let members = self.index()?;
        let manifest_range = self.locate(&members, "manifest.json").map_err(|_| {
            self.not_archive(
                "it has no manifest.json; write archives with `docker save -o FILE IMAGE`".into(),
            )
        })?;
        let items: Vec<ArchiveItem> =
            serde_json::from_slice(&self.read_member(manifest_range, "manifest.json")?)
                .map_err(|e| self.not_archive(format!("its manifest.json is malformed: {e}")))?;
        let (item, config) = self.choose(&members, items)?;
        let diff_ids: Vec<Digest> = serde_json::from_slice::<serde_json::Value>(&config)
            .ok()
            .and_then(|c| serde_json::from_value(c.pointer("/rootfs/diff_ids")?.clone()).ok())
            .ok_or_else(|| SourceError::Invalid {
                source_ref: self.reference.clone(),
                message: format!("config `{}` has no readable rootfs.diff_ids", item.config),
            })?;
        if diff_ids.len() != item.layers.len() {
            return Err(SourceError::Invalid {
                source_ref: self.reference.clone(),
                message: format!(
                    "manifest.json lists {} layers but the config has {} diff_ids",
                    item.layers.len(),
                    diff_ids.len()
                ),
            });
        }
        let mut layers = Vec::with_capacity(diff_ids.len());
        for (name, diff_id) in item.layers.iter().zip(&diff_ids) {
            layers.push(self.cache_layer(&members, name, diff_id, cache, reporter)?);
        }
        let config_descriptor = Descriptor::new(DOCKER_CONFIG, Digest::of(&config), config.len() as u64);
        let manifest_bytes = write_manifest(MediaFamily::Docker, &config_descriptor, &layers, None);
        let manifest = ManifestView {
            schema_version: 2,
            media_type: Some(MediaFamily::Docker.manifest().to_string()),
            config: config_descriptor,
            layers,
            annotations: None,
        };
        let locate = |d: &Descriptor| Ok(cache.blob_path(&d.digest));
        assemble_base_with(
            manifest_bytes,
            &manifest,
            config,
            &locate,
            &self.reference,
            None,
            cache,
            verification,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_takes_an_optional_image_id() {
        let s = DockerArchiveSource::parse("./a:b.tar").unwrap();
        assert_eq!((s.path.to_str().unwrap(), s.digest), ("./a:b.tar", None));
        let d = Digest::of(b"x");
        let s = DockerArchiveSource::parse(&format!("img.tar@{d}")).unwrap();
        assert_eq!(s.digest, Some(d));
        assert!(DockerArchiveSource::parse("").is_err());
    }

    #[test]
    fn member_names_are_normalized() {
        assert_eq!(normalize(Path::new("./abc/layer.tar")), "abc/layer.tar");
        assert_eq!(normalize(Path::new("abc/../def/layer.tar")), "def/layer.tar");
        assert_eq!(normalize(Path::new("blobs/sha256/")), "blobs/sha256");
    }
}
