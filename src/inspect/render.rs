//! The human views of `inspect`: plain text tables, no colour, stable order.

use std::fmt::Write as _;

use super::{DiffLayer, ImageSummary, LayerDiff};
use crate::report::human_bytes;

fn clip(s: &str, max: usize) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let mut c: String = one_line.chars().take(max.saturating_sub(1)).collect();
        c.push('…');
        c
    }
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "(none)".into()
    } else {
        serde_json::to_string(v).unwrap_or_default()
    }
}

/// Manifest and config essentials, then one row per layer with its largest paths.
pub fn render_table(s: &ImageSummary) -> String {
    let c = &s.config;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "manifest      {} ({}, {} bytes)",
        s.manifest_digest, s.manifest_media_type, s.manifest_size
    );
    let _ = writeln!(out, "config        {}", s.config_digest);
    let platform = match &c.variant {
        Some(v) => format!(
            "{}/{}/{v}",
            c.os.as_deref().unwrap_or("?"),
            c.architecture.as_deref().unwrap_or("?")
        ),
        None => format!(
            "{}/{}",
            c.os.as_deref().unwrap_or("?"),
            c.architecture.as_deref().unwrap_or("?")
        ),
    };
    let _ = writeln!(out, "platform      {platform}");
    if let Some(base) = &s.base {
        let digest = base.digest.as_ref().map(|d| format!("@{d}")).unwrap_or_default();
        let _ = writeln!(out, "base          {}{digest}", base.name);
    }
    if let Some(created) = &c.created {
        let _ = writeln!(out, "created       {created}");
    }
    let _ = writeln!(out, "entrypoint    {}", list(&c.entrypoint));
    let _ = writeln!(out, "cmd           {}", list(&c.cmd));
    let _ = writeln!(out, "workdir       {}", c.workdir.as_deref().unwrap_or("(none)"));
    for (i, e) in c.env.iter().enumerate() {
        let _ = writeln!(out, "{:<14}{e}", if i == 0 { "env" } else { "" });
    }
    let _ = writeln!(
        out,
        "size          {} compressed, {} uncompressed, {} layers",
        human_bytes(s.compressed_size),
        human_bytes(s.uncompressed_size),
        s.layers.len()
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:>3}  {:<19}  {:>10}  {:>12}  {:>7}  created by",
        "#", "digest", "compressed", "uncompressed", "files"
    );
    for (i, l) in s.layers.iter().enumerate() {
        let created_by = l
            .history
            .as_ref()
            .and_then(|h| h.created_by.as_deref().or(h.comment.as_deref()))
            .unwrap_or("-");
        let files = l.files.map(|f| f.to_string()).unwrap_or_else(|| "?".into());
        let _ = writeln!(
            out,
            "{:>3}  sha256:{}  {:>10}  {:>12}  {:>7}  {}",
            i + 1,
            l.digest.short(),
            human_bytes(l.compressed_size),
            human_bytes(l.uncompressed_size),
            files,
            clip(created_by, 60)
        );
        for p in &l.largest {
            let _ = writeln!(out, "{:>5}{:>10}  {}", "", human_bytes(p.size), p.path);
        }
    }
    if let Some(db) = &s.packages {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "packages      {} in {} ({})",
            db.installed.len(),
            db.path,
            db.manager
        );
        for p in &db.installed {
            let _ = writeln!(out, "{:<14}{} {} {}", "", p.name, p.version, p.arch);
        }
    }
    out
}

fn row(out: &mut String, mark: char, l: &DiffLayer) {
    let pos = |p: Option<usize>| p.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
    let _ = writeln!(
        out,
        "  {mark} a:{:>3} b:{:>3}  sha256:{}  {:>10}",
        pos(l.position_a),
        pos(l.position_b),
        l.digest.short(),
        human_bytes(l.compressed_size)
    );
}

/// Shared and changed layers, then config fields that differ.
pub fn render_diff(d: &LayerDiff) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "a  {}", d.a);
    let _ = writeln!(out, "b  {}", d.b);
    let bytes = |v: &[DiffLayer]| human_bytes(v.iter().map(|l| l.compressed_size).sum());
    let _ = writeln!(
        out,
        "{} layers shared ({}), first {} in the same order; {} only in a ({}), {} only in b ({})",
        d.shared.len(),
        bytes(&d.shared),
        d.common_prefix,
        d.only_a.len(),
        bytes(&d.only_a),
        d.only_b.len(),
        bytes(&d.only_b)
    );
    for l in &d.shared {
        row(&mut out, '=', l);
    }
    for l in &d.only_a {
        row(&mut out, '-', l);
    }
    for l in &d.only_b {
        row(&mut out, '+', l);
    }
    if !d.config_changes.is_empty() {
        let _ = writeln!(out, "config changes:");
        for c in &d.config_changes {
            let _ = writeln!(out, "  {}: {} -> {}", c.field, clip(&c.a, 80), clip(&c.b, 80));
        }
    }
    out
}
