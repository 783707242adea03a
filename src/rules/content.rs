//! The filesystem rules: one streaming pass over every layer checks tar
//! hygiene per layer and builds the flattened view, then the entrypoint,
//! ELF machine, permission and handler rules read that view.

use std::collections::{BTreeSet, HashSet};
use std::io::{self, BufWriter, Read, Seek};

use super::catalog::*;
use super::config::ImageConfig;
use super::flat::{FlatView, LayerDelta, Node};
use super::handler::{HandlerPlan, check_handler};
use super::{CheckContext, CheckError, Finding, LayerReads};
use crate::image::{Architecture, Digest, Image};
use crate::tar_walk::{
    EntryKind, TarEntry, ancestors, normalize, parent, read_head, walk_layer, walk_layer_hashed,
    walk_tar_skipping,
};

/// Bytes kept of executables: enough for the ELF header up to `e_machine`.
const ELF_HEAD: usize = 20;
/// Examples named in one finding before "and N more".
const EXAMPLES: usize = 5;

/// Up to [`EXAMPLES`] items and a count, for one-line messages.
#[derive(Default)]
pub(super) struct Examples {
    pub(super) count: usize,
    items: Vec<String>,
}

impl Examples {
    pub(super) fn push(&mut self, item: impl FnOnce() -> String) {
        self.count += 1;
        if self.items.len() < EXAMPLES {
            self.items.push(item());
        }
    }
    /// `1 file` / `3 files`.
    pub(super) fn counted(&self, one: &str, many: &str) -> String {
        format!("{} {}", self.count, if self.count == 1 { one } else { many })
    }
    pub(super) fn list(&self) -> String {
        let mut s = self.items.join(", ");
        if self.count > self.items.len() {
            s.push_str(&format!(" and {} more", self.count - self.items.len()));
        }
        s
    }
}

/// What one layer's walk yields for the rules: its changes to the flattened
/// view and its own hygiene findings (rule id, message). Serialisable so a
/// caller can keep it (see [`ScanMemo`]) and not read an unchanged layer again.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct LayerScan {
    delta: LayerDelta,
    findings: Vec<(String, String)>,
}

/// Somewhere to keep layer scans between runs (the build keeps them in its
/// cache). The rules stay pure: they only ask and tell through this trait.
pub trait ScanMemo {
    fn get(&self, key: &str) -> Option<LayerScan>;
    fn put(&self, key: &str, scan: &LayerScan);
    /// Keeps the scan `json` reads, the JSON [`put`](Self::put) would have
    /// written (a scan whose entries were spilled to disk as they came, see
    /// [`ScanPlan::scan_tar_spilled`], never is one value in memory).
    fn put_json(&self, key: &str, json: &mut dyn Read) {
        if let Ok(scan) = serde_json::from_reader::<_, LayerScan>(json) {
            self.put(key, &scan);
        }
    }
}

/// Which files' first bytes the content rules need (the handler's candidate
/// sources, the entrypoint program and every runtime `bootstrap`), read off an
/// image config. A build makes one from its config before the layers exist, so
/// it can scan each new layer's tar while it is being compressed
/// ([`ScanPlan::scan_tar`]) and leave the scan in the memo for the rules.
pub struct ScanPlan {
    wanted: HashSet<String>,
    elf_paths: HashSet<String>,
}

impl ScanPlan {
    /// `None` when the config does not parse (the limit rules report that).
    pub fn new(config: &[u8], ctx: &CheckContext) -> Option<ScanPlan> {
        let config = ImageConfig::parse(config).ok()?;
        Some(ScanPlan::of(&config, &HandlerPlan::new(&config, ctx)))
    }

    fn of(config: &ImageConfig, handler: &HandlerPlan) -> ScanPlan {
        let wanted: HashSet<String> = handler.wanted_files().into_iter().collect();
        let mut elf_paths: HashSet<String> = HashSet::new();
        if let Some(p) = config.program() {
            elf_paths.insert(normalize(p));
        }
        for dir in bootstrap_dirs(config) {
            elf_paths.insert(format!("{dir}/bootstrap"));
        }
        ScanPlan { wanted, elf_paths }
    }

    /// The memo key of the scan of layer `digest` at position `index`: what a
    /// scan yields depends on the layer's bytes, its place and which files
    /// the rules want the first bytes of.
    fn key(&self, digest: &Digest, index: usize) -> String {
        let mut wanted: Vec<&String> = self.wanted.iter().collect();
        wanted.sort();
        let mut elf: Vec<&String> = self.elf_paths.iter().collect();
        elf.sort();
        let text = serde_json::json!({
            "layer": digest,
            "index": index,
            "wanted": wanted,
            "elf": elf,
            "rules": catalog_key(),
        })
        .to_string();
        Digest::of(text.as_bytes()).hex().to_string()
    }

    /// Scans an uncompressed layer tar read from `reader`, for the layer that
    /// will sit at position `index`. Finish it with [`TarScan::remember`] once
    /// the layer's digest is known.
    pub fn scan_tar(&self, reader: impl Read + Seek, index: usize) -> io::Result<TarScan<'_>> {
        let mut scanner = Scanner::new(self, index);
        walk_tar_skipping(reader, |entry, content| scanner.visit(entry, content))?;
        Ok(TarScan { scanner })
    }

    /// [`scan_tar`](Self::scan_tar), writing the delta's entries to `spill`
    /// (an empty file) as they come rather than keeping them: at a few
    /// hundred thousand files they were half of a build's memory while
    /// their layer was compressed, beside the layer's selection. Only
    /// [`TarScan::remember`] reads them back, streaming them to the memo.
    pub fn scan_tar_spilled(
        &self,
        reader: impl Read + Seek,
        index: usize,
        spill: std::fs::File,
    ) -> io::Result<TarScan<'_>> {
        let mut scanner = Scanner::new(self, index);
        scanner.spill = Some(Spill {
            out: BufWriter::with_capacity(1 << 16, spill),
            first: true,
        });
        walk_tar_skipping(reader, |entry, content| scanner.visit(entry, content))?;
        Ok(TarScan { scanner })
    }
}

/// The opening of a [`LayerScan`]'s JSON up to its first entry: `entries`
/// is the first field of the first field, so spilled entries go right after it.
const ENTRIES_OPEN: &[u8] = br#"{"delta":{"entries":["#;

/// Where a scan writes its delta's entries (see [`ScanPlan::scan_tar_spilled`]).
struct Spill {
    out: BufWriter<std::fs::File>,
    /// No entry written yet (the next needs no comma before it).
    first: bool,
}

impl Spill {
    /// The JSON of `scan` (whose entries are all spilled) with the spilled
    /// entries in place: the very bytes `serde_json` makes of the whole scan.
    fn record(self, scan: &LayerScan) -> io::Result<impl Read> {
        let mut file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.rewind()?;
        let rest = serde_json::to_vec(scan)?;
        let tail = rest
            .strip_prefix(ENTRIES_OPEN)
            .ok_or_else(|| io::Error::other("a layer scan's JSON does not start with its entries"))?
            .to_vec();
        Ok(ENTRIES_OPEN
            .chain(io::BufReader::with_capacity(1 << 16, file))
            .chain(io::Cursor::new(tail)))
    }
}

/// A finished scan of a layer's tar, waiting for the layer's digest.
pub struct TarScan<'p> {
    scanner: Scanner<'p>,
}

impl TarScan<'_> {
    /// Puts the scan in `memo` as the scan of the layer with this compressed
    /// `digest`, where the rules will find it instead of reading the layer.
    pub fn remember(mut self, digest: &Digest, memo: &dyn ScanMemo) {
        let key = self.scanner.plan.key(digest, self.scanner.index);
        let what = layer_label(self.scanner.index, digest);
        let spill = self.scanner.spill.take();
        let scan = self.scanner.finish(&what);
        match spill {
            None => memo.put(&key, &scan),
            // A spill that cannot be read back only costs the rules a re-read.
            Some(spill) => {
                if let Ok(mut json) = spill.record(&scan) {
                    memo.put_json(&key, &mut json);
                }
            }
        }
    }
}

/// `layer 3 sha256:1234abcd…`, as findings name a layer.
fn layer_label(index: usize, digest: &Digest) -> String {
    format!("layer {} {}", index + 1, digest.short())
}

/// The state of one layer's scan: fed entry by entry, finished into a [`LayerScan`].
struct Scanner<'p> {
    plan: &'p ScanPlan,
    index: usize,
    delta: LayerDelta,
    dirs_seen: HashSet<String>,
    hard_links: Examples,
    orphans: Examples,
    escaping: Examples,
    spill: Option<Spill>,
}

impl<'p> Scanner<'p> {
    fn new(plan: &'p ScanPlan, index: usize) -> Scanner<'p> {
        Scanner {
            plan,
            index,
            delta: LayerDelta::default(),
            dirs_seen: HashSet::new(),
            hard_links: Examples::default(),
            orphans: Examples::default(),
            escaping: Examples::default(),
            spill: None,
        }
    }

    fn visit(&mut self, entry: &TarEntry, content: &mut dyn Read) -> io::Result<()> {
        if entry.kind == EntryKind::Meta || entry.path.is_empty() {
            return Ok(());
        }
        if entry.escapes_root {
            self.escaping.push(|| format!("/{}", entry.path));
        }
        if entry.kind == EntryKind::HardLink {
            self.hard_links
                .push(|| format!("/{} -> {}", entry.path, entry.link.as_deref().unwrap_or("")));
        }
        let dir = parent(&entry.path);
        if !dir.is_empty() && !self.dirs_seen.contains(dir) {
            self.orphans
                .push(|| format!("/{} (no /{dir}/ before it)", entry.path));
        }
        if entry.kind == EntryKind::Dir {
            self.dirs_seen.insert(entry.path.clone());
        }
        let head = if entry.kind != EntryKind::File {
            None
        } else if self.plan.wanted.contains(&entry.path) {
            Some(read_head(content, super::handler::MAX_SOURCE)?.into_boxed_slice())
        } else if self.plan.elf_paths.contains(&entry.path) {
            // Entrypoint and bootstraps: enough for a #! line or PT_INTERP.
            Some(read_head(content, crate::elf::PROGRAM_HEAD)?.into_boxed_slice())
        } else if entry.mode & 0o111 != 0 {
            Some(read_head(content, ELF_HEAD)?.into_boxed_slice())
        } else {
            None
        };
        self.delta.add(entry, head, self.index);
        if let Some(spill) = &mut self.spill {
            self.delta.spill_entries(&mut spill.out, &mut spill.first)?;
        }
        Ok(())
    }

    /// The layer's delta and hygiene findings, naming the layer as `what`.
    fn finish(self, what: &str) -> LayerScan {
        let mut findings = Vec::new();
        if self.escaping.count > 0 {
            findings.push((
                UNSAFE_ENTRY_NAME.id.to_string(),
                format!(
                    "{what} has {} named with an absolute path or a `..` component: {}",
                    self.escaping.counted("entry", "entries"),
                    self.escaping.list()
                ),
            ));
        }
        if self.hard_links.count > 0 {
            findings.push((
                HARD_LINK.id.to_string(),
                format!(
                    "{what} has {}: {}",
                    self.hard_links.counted("hard-link entry", "hard-link entries"),
                    self.hard_links.list()
                ),
            ));
        }
        if self.orphans.count > 0 {
            findings.push((
                MISSING_PARENT.id.to_string(),
                format!(
                    "{what} has {} whose parent directory has no earlier entry: {}",
                    self.orphans.counted("entry", "entries"),
                    self.orphans.list()
                ),
            ));
        }
        LayerScan {
            delta: self.delta,
            findings,
        }
    }
}

/// Streams one layer blob: hygiene findings and the layer's delta.
fn scan_layer(
    layer: &crate::image::Layer,
    index: usize,
    what: &str,
    plan: &ScanPlan,
    reads: Option<&LayerReads>,
) -> Result<LayerScan, CheckError> {
    let mut scanner = Scanner::new(plan, index);
    match reads.filter(|r| r.wants(index)) {
        Some(reads) => {
            let (_, digests) = walk_layer_hashed(layer, |entry, content| scanner.visit(entry, content))?;
            reads.found(index, digests);
        }
        None => {
            walk_layer(layer, |entry, content| scanner.visit(entry, content))?;
        }
    }
    Ok(scanner.finish(what))
}

/// The layers' scans, in order, from the memo or read two layers at a time
/// on two threads (inflating is most of a check's work, and a base image
/// has several layers). At most two scans wait to be applied, so memory
/// stays that of the flattened view.
struct LayerScans<'a> {
    image: &'a Image,
    plan: &'a ScanPlan,
    memo: Option<&'a dyn ScanMemo>,
    reads: Option<&'a LayerReads>,
    ready: Option<(usize, Result<LayerScan, CheckError>)>,
}

impl<'a> LayerScans<'a> {
    fn new(
        image: &'a Image,
        plan: &'a ScanPlan,
        memo: Option<&'a dyn ScanMemo>,
        reads: Option<&'a LayerReads>,
    ) -> Self {
        LayerScans {
            image,
            plan,
            memo,
            reads,
            ready: None,
        }
    }

    /// The scan of layer `index`; calls come in layer order.
    fn take(&mut self, index: usize) -> Result<LayerScan, CheckError> {
        if let Some((i, scan)) = self.ready.take()
            && i == index
        {
            return scan;
        }
        if let Some(scan) = self.remembered(index) {
            return Ok(scan);
        }
        let next = index + 1;
        let remembered_next = (next < self.image.layers().len())
            .then(|| self.remembered(next))
            .flatten();
        let read_next = next < self.image.layers().len() && remembered_next.is_none();
        // Read the next unremembered layer beside this one.
        let (image, plan, reads) = (self.image, self.plan, self.reads);
        let (scan, later) = std::thread::scope(|s| {
            let later = read_next.then(|| s.spawn(move || scan_at(image, plan, next, reads)));
            let scan = scan_at(image, plan, index, reads);
            (scan, later.map(|h| h.join().expect("layer scan thread panicked")))
        });
        self.remember(index, &scan);
        if let Some(later) = &later {
            self.remember(next, later);
        }
        self.ready = later.or(remembered_next.map(Ok)).map(|scan| (next, scan));
        scan
    }

    fn key(&self, index: usize) -> String {
        self.plan
            .key(&self.image.layers()[index].descriptor.digest, index)
    }

    fn remembered(&self, index: usize) -> Option<LayerScan> {
        self.memo?.get(&self.key(index))
    }

    fn remember(&self, index: usize, scan: &Result<LayerScan, CheckError>) {
        if let (Some(memo), Ok(scan)) = (self.memo, scan) {
            memo.put(&self.key(index), scan);
        }
    }
}

fn scan_at(
    image: &Image,
    plan: &ScanPlan,
    index: usize,
    reads: Option<&LayerReads>,
) -> Result<LayerScan, CheckError> {
    let layer = &image.layers()[index];
    scan_layer(
        layer,
        index,
        &layer_label(index, &layer.descriptor.digest),
        plan,
        reads,
    )
}

pub(super) fn check_content(
    image: &Image,
    ctx: &CheckContext,
    memo: Option<&dyn ScanMemo>,
    reads: Option<&LayerReads>,
) -> Result<Vec<Finding>, CheckError> {
    let mut out = Vec::new();
    let Ok(config) = ImageConfig::parse(image.config()) else {
        return Ok(out); // check_limits reported it
    };
    let handler = HandlerPlan::new(&config, ctx);
    let plan = ScanPlan::of(&config, &handler);

    let mut view = FlatView::default();
    let mut unreadable = Vec::new();
    let mut scans = LayerScans::new(image, &plan, memo, reads);
    for (index, layer) in image.layers().iter().enumerate() {
        let what = layer_label(index, &layer.descriptor.digest);
        let scan = match scans.take(index) {
            Ok(scan) => scan,
            Err(CheckError::Unreadable { media_type, .. }) => {
                unreadable.push(format!("{what} ({media_type})"));
                continue;
            }
            Err(e) => return Err(e),
        };
        let from_base = matches!(layer.origin, crate::image::LayerOrigin::Base { .. });
        for (rule_id, message) in scan.findings {
            if let Some(rule) = super::catalog::rule(&rule_id) {
                // A base image's layer cannot be fixed at its source by the user.
                let repairable = rule.id == HARD_LINK.id || rule.id == MISSING_PARENT.id;
                let message = if from_base && repairable {
                    format!(
                        "{message}; it is a base image layer: `[base] repair = true` (or `build --repair-base`) rewrites it"
                    )
                } else {
                    message
                };
                out.push(Finding::new(rule, message));
            }
        }
        let mut replaced = Examples::default();
        for path in view.apply(scan.delta) {
            replaced.push(|| format!("/{path}"));
        }
        if replaced.count > 0 {
            out.push(Finding::new(
                &DIRECTORY_REPLACED,
                format!(
                    "{what} replaces {} of a lower layer with a non-directory: {}",
                    replaced.counted("directory", "directories"),
                    replaced.list()
                ),
            ));
        }
    }
    if !unreadable.is_empty() {
        out.push(Finding::new(
            &CONTENT_NOT_CHECKED,
            format!(
                "could not read {}; entrypoint, permission and handler rules skipped",
                unreadable.join(", ")
            ),
        ));
        return Ok(out);
    }

    let arch = ctx.arch.or(match config.architecture.as_deref() {
        Some("amd64") => Some(Architecture::X86_64),
        Some("arm64") => Some(Architecture::Arm64),
        _ => None,
    });
    check_entrypoint(&view, &config, arch, &mut out);
    for dir in bootstrap_dirs(&config) {
        if let Some((path, node)) = view.resolve_file(&format!("{dir}/bootstrap")) {
            if let Some(arch) = arch {
                check_elf(&format!("/{path}"), node, arch, "bootstrap", &mut out);
            }
            super::programs::check_program(&view, &format!("bootstrap /{path}"), node, &mut out);
        }
    }
    check_permissions(&view, &config, &mut out);
    out.extend(super::links::check_dangling(&view));
    out.extend(check_handler(&handler, &view));
    Ok(out)
}

/// Where a provided runtime may find a `bootstrap` to start: the runtime
/// directories, the task root (`/var/task/bootstrap`) and `/opt`.
fn bootstrap_dirs(config: &ImageConfig) -> BTreeSet<String> {
    let mut dirs = runtime_dirs(config);
    dirs.insert("opt".to_string());
    dirs.insert(
        config
            .env_var("LAMBDA_TASK_ROOT")
            .map(normalize)
            .unwrap_or_else(|| "var/task".to_string()),
    );
    dirs
}

/// The runtime directories whose `bootstrap` Lambda may run.
fn runtime_dirs(config: &ImageConfig) -> BTreeSet<String> {
    let mut dirs = BTreeSet::from(["var/runtime".to_string()]);
    if let Some(d) = config.env_var("LAMBDA_RUNTIME_DIR") {
        dirs.insert(normalize(d));
    }
    dirs
}

fn check_entrypoint(
    view: &FlatView,
    config: &ImageConfig,
    arch: Option<Architecture>,
    out: &mut Vec<Finding>,
) {
    let Some(program) = config.program() else { return };
    if !program.starts_with('/') {
        return; // check_limits reported it
    }
    let field = if config.entrypoint.is_empty() {
        "cmd"
    } else {
        "entrypoint"
    };
    let Some((found, node)) = view.lookup(program, false) else {
        out.push(Finding::new(
            &ENTRYPOINT_MISSING,
            format!("{field} {program} does not exist in the image"),
        ));
        return;
    };
    let (found, node) = match node.kind {
        EntryKind::Symlink => {
            out.push(Finding::new(
                &ENTRYPOINT_SYMLINK,
                format!(
                    "{field} {program} is a symbolic link to {}",
                    node.link().unwrap_or("")
                ),
            ));
            return;
        }
        EntryKind::HardLink => match view.resolve_file(program) {
            Some(target) => target,
            None => {
                out.push(Finding::new(
                    &ENTRYPOINT_MISSING,
                    format!("{field} {program} is a hard link to a missing file"),
                ));
                return;
            }
        },
        _ => (found, node),
    };
    if node.kind != EntryKind::File {
        let kind = match node.kind {
            EntryKind::Dir => "directory",
            _ => "special file",
        };
        out.push(Finding::new(
            &ENTRYPOINT_NOT_EXECUTABLE,
            format!("{field} {program} (/{found}) is a {kind}, not a regular file"),
        ));
        return;
    }
    if node.mode & 0o001 == 0 {
        out.push(Finding::new(
            &ENTRYPOINT_NOT_EXECUTABLE,
            format!(
                "{field} {program} has mode {:04o}: other users cannot execute it",
                node.mode & 0o7777
            ),
        ));
    }
    if let Some(arch) = arch {
        check_elf(program, node, arch, field, out);
    }
    super::programs::check_program(view, &format!("{field} {program}"), node, out);
}

/// The ELF `e_machine` of a file's first bytes, if it is an ELF file (of a
/// known byte order: see [`crate::elf`], the one reader).
pub fn elf_machine(head: &[u8]) -> Option<u16> {
    crate::elf::machine(head)
}

fn check_elf(path: &str, node: &Node, arch: Architecture, what: &str, out: &mut Vec<Finding>) {
    let Some(machine) = node.head().and_then(elf_machine) else {
        return; // a script or unknown: the kernel decides, nothing to compare
    };
    if machine != arch.elf_machine() {
        out.push(Finding::new(
            &ARCH_MISMATCH,
            format!(
                "{what} {path} is an ELF binary for {} but the function is {arch}, which runs {}",
                crate::elf::machine_name(machine),
                crate::elf::machine_name(arch.elf_machine())
            ),
        ));
    }
}

fn check_permissions(view: &FlatView, config: &ImageConfig, out: &mut Vec<Finding>) {
    let mut roots = BTreeSet::from(["var/task".to_string(), "opt".to_string()]);
    roots.extend(runtime_dirs(config));
    if let Some(t) = config.env_var("LAMBDA_TASK_ROOT") {
        roots.insert(normalize(t));
    }
    // A root inside another is walked with it: the walks below stay
    // disjoint, so no path is met twice (a set of the paths met was, at half
    // a million files, the check's peak).
    let outer: Vec<&String> = roots
        .iter()
        .filter(|r| !ancestors(r).any(|a| roots.contains(a)))
        .collect();
    let inside_a_root = |p: &str| roots.contains(p) || ancestors(p).any(|a| roots.contains(a));
    // The ancestors of each root must be enterable too.
    let mut dirs_to_enter: BTreeSet<String> = BTreeSet::new();
    for root in &roots {
        for a in ancestors(root).filter(|a| !inside_a_root(a)) {
            dirs_to_enter.insert(a.to_string());
        }
    }
    let mut files = Examples::default();
    let mut dirs = Examples::default();
    let above = dirs_to_enter
        .iter()
        .filter_map(|d| view.get(d).map(|n| (d.as_str(), n)));
    let under = outer.into_iter().flat_map(|r| view.under(r));
    for (path, node) in above.chain(under) {
        let mode = node.mode & 0o7777;
        match node.kind {
            EntryKind::File if mode & 0o004 == 0 => files.push(|| format!("/{path} ({mode:04o})")),
            EntryKind::Dir if mode & 0o005 != 0o005 => dirs.push(|| format!("/{path} ({mode:04o})")),
            _ => {}
        }
    }
    if files.count > 0 {
        out.push(Finding::new(
            &UNREADABLE_FILE,
            format!(
                "{} not readable by other users: {}",
                files.counted("file is", "files are"),
                files.list()
            ),
        ));
    }
    if dirs.count > 0 {
        out.push(Finding::new(
            &UNENTERABLE_DIR,
            format!(
                "{} cannot be listed or entered by other users (need o+rx): {}",
                dirs.counted("directory", "directories"),
                dirs.list()
            ),
        ));
    }
}
