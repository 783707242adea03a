//! The cheap rules: sizes, layer count, media types and platform, read from
//! the manifest and config bytes and the layer descriptors only.

use super::catalog::*;
use super::config::ImageConfig;
use super::{Finding, Limits};
use crate::image::{
    Architecture, Compression, Document, Image, MediaFamily, MediaKind, classify, parse_document,
};
use crate::report::human_bytes;

/// The finding for a source that found an index or manifest list where
/// Lambda needs an image manifest.
pub fn index_finding(reference: &str, media_type: &str) -> Finding {
    Finding::new(
        &INDEX_NOT_MANIFEST,
        format!("{reference} is an image index ({media_type}), not a single-platform image manifest"),
    )
}

/// Rules that need no layer bytes. `arch` is the function's architecture, when known.
pub fn check_limits(image: &Image, limits: &Limits, arch: Option<Architecture>) -> Vec<Finding> {
    let mut out = Vec::new();
    check_sizes(image, limits, &mut out);
    check_media_types(image, &mut out);
    match ImageConfig::parse(image.config()) {
        Ok(config) => {
            check_platform(&config, arch, &mut out);
            check_config_fields(&config, &mut out);
        }
        Err(why) => out.push(Finding::new(
            &CONFIG_INVALID,
            format!("image config {} is {why}", image.config_descriptor().digest),
        )),
    }
    out
}

fn check_sizes(image: &Image, limits: &Limits, out: &mut Vec<Finding>) {
    let total = image.uncompressed_size();
    if total > limits.max_uncompressed {
        let mut by_size: Vec<_> = image.layers().iter().enumerate().collect();
        by_size.sort_by_key(|(_, l)| std::cmp::Reverse(l.uncompressed_size));
        let largest: Vec<String> = by_size
            .iter()
            .take(3)
            .map(|(i, l)| {
                format!(
                    "layer {} {} {}",
                    i + 1,
                    l.descriptor.digest.short(),
                    human_bytes(l.uncompressed_size)
                )
            })
            .collect();
        out.push(Finding::new(
            &IMAGE_TOO_LARGE,
            format!(
                "uncompressed layers total {} ({total} bytes), over the limit of {} ({} bytes); largest: {}",
                human_bytes(total),
                human_bytes(limits.max_uncompressed),
                limits.max_uncompressed,
                largest.join(", ")
            ),
        ));
    }
    let manifest_len = image.manifest().len() as u64;
    if manifest_len > limits.max_manifest_bytes {
        out.push(Finding::new(
            &MANIFEST_TOO_LARGE,
            format!(
                "manifest {} is {manifest_len} bytes, over the limit of {} bytes ({} layers)",
                image.manifest_digest(),
                limits.max_manifest_bytes,
                image.layers().len()
            ),
        ));
    }
    let n = image.layers().len();
    if n > limits.layer_error {
        out.push(Finding::new(
            &TOO_MANY_LAYERS,
            format!(
                "the image has {n} layers, over the limit of {}",
                limits.layer_error
            ),
        ));
    } else if n > limits.layer_warning {
        out.push(Finding::new(
            &MANY_LAYERS,
            format!("the image has {n} layers, more than {}", limits.layer_warning),
        ));
    }
}

fn check_media_types(image: &Image, out: &mut Vec<Finding>) {
    let view = match parse_document(image.manifest(), Some(image.family().manifest()), "manifest") {
        Ok(Document::Manifest(m)) => m,
        Ok(Document::Index(_)) => {
            out.push(index_finding(
                &image.manifest_digest().to_string(),
                image.family().index(),
            ));
            return;
        }
        Err(e) => {
            out.push(Finding::new(
                &MANIFEST_MEDIA_TYPE,
                format!("manifest {}: {e}", image.manifest_digest()),
            ));
            return;
        }
    };
    let mut families: Vec<(MediaFamily, String)> = Vec::new();
    let bad = |what: String, mt: &str, out: &mut Vec<Finding>| {
        out.push(Finding::new(
            &MANIFEST_MEDIA_TYPE,
            format!("{what} has media type {mt:?}, which Lambda does not accept"),
        ))
    };
    if let Some(mt) = view.media_type.as_deref() {
        match classify(mt) {
            MediaKind::Manifest(f) => families.push((f, "the manifest".into())),
            MediaKind::Index(_) => {
                out.push(index_finding(&image.manifest_digest().to_string(), mt));
                return;
            }
            _ => bad(format!("manifest {}", image.manifest_digest()), mt, out),
        }
    }
    match classify(&view.config.media_type) {
        MediaKind::Config(f) => families.push((f, "the config".into())),
        _ => bad(
            format!("config {}", view.config.digest.short()),
            &view.config.media_type,
            out,
        ),
    }
    let mut not_gzip = Vec::new();
    for (i, layer) in view.layers.iter().enumerate() {
        let what = format!("layer {} {}", i + 1, layer.digest.short());
        match classify(&layer.media_type) {
            MediaKind::Layer { family, compression } => {
                families.push((family, what.clone()));
                match compression {
                    Compression::Gzip => {}
                    Compression::None => {
                        not_gzip.push(format!("{what} is uncompressed ({})", layer.media_type))
                    }
                    Compression::Zstd => not_gzip.push(format!("{what} is zstd ({})", layer.media_type)),
                }
            }
            _ => bad(what, &layer.media_type, out),
        }
    }
    if !not_gzip.is_empty() {
        out.push(Finding::new(&LAYER_NOT_GZIP, not_gzip.join("; ")));
    }
    let first = families.first().map(|f| f.0);
    if let Some(first) = first
        && let Some((other, what)) = families.iter().find(|(f, _)| *f != first)
    {
        out.push(Finding::new(
            &MEDIA_TYPE_MIX,
            format!(
                "{} uses {} media types but {what} uses {} media types",
                families[0].1,
                first.name(),
                other.name()
            ),
        ));
    }
}

fn check_platform(config: &ImageConfig, arch: Option<Architecture>, out: &mut Vec<Finding>) {
    let os = config.os.as_deref().unwrap_or("");
    if os != "linux" {
        out.push(Finding::new(
            &OS_NOT_LINUX,
            format!("image config os is {:?}, not \"linux\"", os),
        ));
    }
    let config_arch = config.architecture.as_deref().unwrap_or("");
    let parsed = match config_arch {
        "amd64" => Some(Architecture::X86_64),
        "arm64" => Some(Architecture::Arm64),
        _ => None,
    };
    match (parsed, arch) {
        (None, _) => out.push(Finding::new(
            &ARCH_UNSUPPORTED,
            format!("image config architecture is {config_arch:?}, not \"amd64\" or \"arm64\""),
        )),
        (Some(found), Some(wanted)) if found != wanted => out.push(Finding::new(
            &ARCH_MISMATCH,
            format!(
                "image config architecture is {config_arch} ({found}) but the function is {wanted} ({})",
                wanted.oci_name()
            ),
        )),
        _ => {}
    }
}

fn check_config_fields(config: &ImageConfig, out: &mut Vec<Finding>) {
    if config.entrypoint.is_empty() && config.cmd.is_empty() {
        out.push(Finding::new(
            &NO_ENTRYPOINT,
            "image config has neither Entrypoint nor Cmd",
        ));
    } else if let Some(program) = config.program()
        && !program.starts_with('/')
    {
        let field = if config.entrypoint.is_empty() {
            "Cmd[0]"
        } else {
            "Entrypoint[0]"
        };
        out.push(Finding::new(
            &ENTRYPOINT_NOT_ABSOLUTE,
            format!("{field} is {program:?}, not an absolute path"),
        ));
    }
    if !config.ignored.is_empty() {
        out.push(Finding::new(
            &IGNORED_CONFIG,
            format!(
                "image config sets {}, which Lambda ignores",
                config.ignored.join(", ")
            ),
        ));
    }
}
