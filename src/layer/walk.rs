//! Walking a directory input in image-path order, its stats on every core.
//!
//! A layer lists its entries sorted by image path (byte order). Walking
//! depth-first with each directory's names sorted once, where a
//! directory's subtree sorts as its name followed by `/`, yields exactly
//! that order, so the selection needs no sort of the whole tree (string
//! compares of long shared prefixes, scattered in memory: most of a no-op
//! rebuild's own CPU time at 100,000 files). `requests` (the directory's own
//! entry) < `requests-2.31.dist-info/…` < `requests/…`.
//!
//! A no-op rebuild only stats, and at 100,000 files that is the kernel's
//! work: a listing of every directory and a stat of every file, about two
//! microseconds a call. So directories are listed, and their files stat'ed,
//! on every core (git's `core.preloadIndex` idea): the visitor still sees
//! one thread's walk in order, but whichever thread lists a directory
//! queues its subdirectories at once, and helper threads list them (oldest
//! first: far from where the walk is) before the walk gets there; the walk
//! lists what it reaches first itself. Which subdirectories are queued is
//! asked of a hint (`may_enter`: the input's excludes and ignores, from the
//! path alone), so an excluded `node_modules` is not listed ahead; the
//! visitor still decides. A listing's error (or a stat's) surfaces only
//! where the one-thread walk meets it. Listed-ahead entries are capped
//! ([`AHEAD_LIMIT`]), so memory stays bounded however wide the tree.
//!
//! A directory is read with `getdents64` on an fd of its own (libc's
//! `opendir` adds an `fstat` per directory), and each entry is stat'ed
//! relative to that fd (a one-name lookup rather than the whole path again).
//! No owned path is made per entry: only per directory walked, and for links
//! and errors.

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Condvar, Mutex};

use rustix::fd::AsFd;
use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, RawDir, StatxFlags};

use super::LayerError;

/// Listed-ahead entries (in listings the walk has not reached yet) at which
/// the helpers pause: about 100 bytes each, so a few MB however wide the tree.
const AHEAD_LIMIT: usize = 50_000;
/// Threads that list beside the walk's own at most: the kernel's stat path
/// gains little past that.
const MAX_HELPERS: usize = 3;
/// Bytes of directory entries one `getdents64` reads (glibc's size too):
/// a typical directory in one call, plus the one that says it ended.
const DIRENTS_SIZE: usize = 32 * 1024;

/// Pauses an idle helper spins for before it sleeps: about 100 µs, a few
/// directories' worth of the walk.
const SPIN: usize = 2_000;

/// What kind of entry a directory listed (a symlink is not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EntryType {
    Dir,
    File,
    Symlink,
    /// A socket, FIFO or device, named for error messages.
    Special(&'static str),
}

impl EntryType {
    fn of(ft: FileType) -> EntryType {
        match ft {
            FileType::Directory => EntryType::Dir,
            FileType::RegularFile => EntryType::File,
            FileType::Symlink => EntryType::Symlink,
            FileType::Socket => EntryType::Special("socket"),
            FileType::Fifo => EntryType::Special("named pipe (FIFO)"),
            FileType::BlockDevice => EntryType::Special("block device"),
            FileType::CharacterDevice => EntryType::Special("character device"),
            FileType::Unknown => EntryType::Special("special file"),
        }
    }

    /// The kind of a `st_mode`'s file type bits.
    pub fn of_mode(mode: u32) -> EntryType {
        EntryType::of(FileType::from_raw_mode(mode as _))
    }

    pub fn is_dir(self) -> bool {
        self == EntryType::Dir
    }
}

/// An entry's own stat (a symlink's, not its target's): the facts a layer
/// keeps, as `std::fs::Metadata` would give them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stat {
    pub mode: u32,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
    pub dev: u64,
}

/// One entry met by [`walk_sorted`].
pub(super) struct WalkEntry<'a> {
    /// Path below the walk's root, `/`-separated.
    pub rel: &'a str,
    /// The entry's kind, as its directory listed it.
    pub kind: EntryType,
    dir: &'a Path,
    name: &'a str,
    stat: &'a Option<io::Result<Stat>>,
}

impl WalkEntry<'_> {
    /// The entry's path on disk (for links and errors).
    pub fn path(&self) -> PathBuf {
        self.dir.join(self.name)
    }

    /// The entry's own stat, taken relative to its directory when it was
    /// listed. Not taken for a directory (the walk never needs one).
    pub fn metadata(&self) -> Result<Stat, LayerError> {
        match self.stat {
            Some(Ok(stat)) => Ok(*stat),
            Some(Err(e)) => Err(LayerError::from_io(self.path(), clone_error(e))),
            None => Err(LayerError::from_io(
                self.path(),
                io::Error::other("a directory's stat is not taken by the walk; this is a bug"),
            )),
        }
    }
}

fn clone_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

/// Calls `visit` for every entry below `root` (not `root` itself), in byte
/// order of their paths below it. For a directory, `visit` returns whether
/// to walk into it; its answer for anything else is ignored.
///
/// `may_enter` tells, from a directory's path below the root alone, whether
/// the visitor could walk into it: helpers list ahead only what it allows.
/// It is a hint (a wrong answer costs time, never a different walk), so it
/// may allow more than `visit` will take.
pub(super) fn walk_sorted<F>(
    root: &Path,
    may_enter: &(dyn Fn(&str) -> bool + Sync),
    visit: F,
) -> Result<(), LayerError>
where
    F: FnMut(&WalkEntry<'_>) -> Result<bool, LayerError>,
{
    let helpers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .saturating_sub(1)
        .min(MAX_HELPERS);
    walk_limited(root, helpers, AHEAD_LIMIT, may_enter, visit)
}

fn walk_limited<F>(
    root: &Path,
    helpers: usize,
    limit: usize,
    may_enter: &(dyn Fn(&str) -> bool + Sync),
    mut visit: F,
) -> Result<(), LayerError>
where
    F: FnMut(&WalkEntry<'_>) -> Result<bool, LayerError>,
{
    let ahead = Ahead::new(limit, helpers > 0, may_enter);
    std::thread::scope(|s| {
        for _ in 0..helpers {
            s.spawn(|| ahead.help());
        }
        // Whatever the walk's outcome, the helpers stop with it.
        let _stop = StopOnDrop(&ahead);
        let listing = ahead.list(root, "", None)?;
        let mut rel = String::new();
        walk_level(listing, &mut rel, &mut visit, &ahead)
    })
}

/// The directories queued for listing ahead of the walk, shared with the helpers.
///
/// Synchronisation is kept to what a listing needs: a directory's
/// subdirectories are queued in one go, and a condition variable is
/// signalled only when someone sleeps on it (each signal is a system call,
/// as dear as the stat it would save).
struct Ahead<'a> {
    /// Listed-ahead entries at which the helpers pause.
    limit: usize,
    /// False when there are no helpers: nothing is queued.
    queue_ahead: bool,
    may_enter: &'a (dyn Fn(&str) -> bool + Sync),
    queue: Mutex<Queue>,
    /// Woken when jobs are queued, when the helpers may go on, or at the end.
    wake: Condvar,
    /// Entries in finished listings the walk has not taken yet.
    listed: AtomicUsize,
    /// `queue.jobs.len()`, readable without the lock (for spinning).
    queued: AtomicUsize,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Arc<Pending>>,
    /// Helpers waiting on `wake`.
    sleeping: usize,
    stopped: bool,
}

/// One directory's listing, made by whichever thread gets to it first.
struct Pending {
    state: Mutex<State>,
    done: Condvar,
    /// Set when the walk chose not to go in: a helper listing it stops early
    /// (a huge excluded directory is not stat'ed through).
    unwanted: AtomicBool,
}

/// A directory to list: its path on disk and below the walk's root.
struct Job {
    dir: PathBuf,
    rel: String,
}

enum State {
    Waiting(Job),
    /// A helper lists it; `waited` when the walk sleeps on `done` for it.
    Running {
        waited: bool,
    },
    Done(Result<Listing, LayerError>),
    /// Taken by the walk, or not wanted after all.
    Gone,
}

impl Pending {
    fn new(job: Job) -> Arc<Pending> {
        Arc::new(Pending {
            state: Mutex::new(State::Waiting(job)),
            done: Condvar::new(),
            unwanted: AtomicBool::new(false),
        })
    }
}

impl<'a> Ahead<'a> {
    fn new(limit: usize, queue_ahead: bool, may_enter: &'a (dyn Fn(&str) -> bool + Sync)) -> Ahead<'a> {
        Ahead {
            limit,
            queue_ahead,
            may_enter,
            queue: Mutex::default(),
            wake: Condvar::new(),
            listed: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
        }
    }

    /// Lists `dir` (`rel` below the root) and, with helpers, queues those
    /// of its subdirectories `may_enter` allows, in walk order, each linked
    /// from its item for the walk to find.
    fn list(&self, dir: &Path, rel: &str, unwanted: Option<&AtomicBool>) -> Result<Listing, LayerError> {
        let mut listing = list(dir, unwanted)?;
        if !self.queue_ahead {
            return Ok(listing);
        }
        let mut queued = Vec::new();
        for &(i, subtree) in &listing.steps {
            if !subtree {
                continue;
            }
            let item = &mut listing.items[i as usize];
            let name = &listing.names[item.start as usize..(item.start + item.len) as usize];
            let child = if rel.is_empty() {
                name.to_string()
            } else {
                format!("{rel}/{name}")
            };
            if (self.may_enter)(&child) {
                let pending = Pending::new(Job {
                    dir: dir.join(name),
                    rel: child,
                });
                queued.push(pending.clone());
                item.below = Some(pending);
            }
        }
        self.queue(queued.into_iter());
        Ok(listing)
    }

    fn queue(&self, jobs: impl Iterator<Item = Arc<Pending>>) {
        let mut q = self.queue.lock().unwrap();
        let before = q.jobs.len();
        q.jobs.extend(jobs);
        self.queued.store(q.jobs.len(), AtomicOrdering::Relaxed);
        if q.sleeping > 0 && q.jobs.len() > before {
            self.wake.notify_all();
        }
    }

    /// A helper's loop: list queued directories, newest first (the last
    /// subdirectories of the directory the walk entered last: needed soon,
    /// but not next), until the walk ends. The walk lists what it needs
    /// itself when no helper has started it.
    fn help(&self) {
        loop {
            let job = {
                let mut q = self.queue.lock().unwrap();
                loop {
                    if q.stopped {
                        return;
                    }
                    if self.has_work(&q)
                        && let Some(job) = q.jobs.pop_front()
                    {
                        self.queued.store(q.jobs.len(), AtomicOrdering::Relaxed);
                        break job;
                    }
                    // Spin a little first: the walk queues more every few
                    // tens of microseconds, and a sleep costs two system calls.
                    drop(q);
                    self.spin_for_work();
                    q = self.queue.lock().unwrap();
                    if q.stopped || (self.has_work(&q)) {
                        continue;
                    }
                    q.sleeping += 1;
                    q = self.wake.wait(q).unwrap();
                    q.sleeping -= 1;
                }
            };
            let dir = {
                let mut state = job.state.lock().unwrap();
                match std::mem::replace(&mut *state, State::Running { waited: false }) {
                    State::Waiting(job) => job,
                    other => {
                        *state = other;
                        continue;
                    }
                }
            };
            let listing = self.list(&dir.dir, &dir.rel, Some(&job.unwanted));
            let mut state = job.state.lock().unwrap();
            // Not wanted any more (the walk chose not to go in): dropped here.
            let State::Running { waited } = *state else {
                continue;
            };
            if let Ok(l) = &listing {
                self.listed.fetch_add(l.items.len(), AtomicOrdering::SeqCst);
            }
            *state = State::Done(listing);
            if waited {
                job.done.notify_one();
            }
        }
    }

    fn has_work(&self, q: &Queue) -> bool {
        !q.jobs.is_empty() && self.listed.load(AtomicOrdering::SeqCst) < self.limit
    }

    /// Waits up to [`SPIN`] pauses for jobs, without the lock.
    fn spin_for_work(&self) {
        for _ in 0..SPIN {
            if self.queued.load(AtomicOrdering::Relaxed) > 0
                && self.listed.load(AtomicOrdering::Relaxed) < self.limit
            {
                return;
            }
            std::hint::spin_loop();
        }
    }

    /// The listing of a queued directory: made here if no helper started
    /// it, else waited for.
    fn take(&self, pending: &Pending) -> Result<Listing, LayerError> {
        let mut state = pending.state.lock().unwrap();
        loop {
            match std::mem::replace(&mut *state, State::Gone) {
                State::Waiting(job) => {
                    drop(state);
                    return self.list(&job.dir, &job.rel, None);
                }
                State::Running { .. } => {
                    *state = State::Running { waited: true };
                    state = pending.done.wait(state).unwrap();
                }
                State::Done(listing) => {
                    drop(state);
                    let listing = listing?;
                    self.taken(listing.items.len());
                    return Ok(listing);
                }
                State::Gone => unreachable!("a directory's listing is taken once"),
            }
        }
    }

    /// Drops a queued directory the walk chose not to go into.
    fn forget(&self, pending: &Pending) {
        pending.unwanted.store(true, AtomicOrdering::Relaxed);
        let was = std::mem::replace(&mut *pending.state.lock().unwrap(), State::Gone);
        if let State::Done(Ok(listing)) = was {
            self.taken(listing.items.len());
        }
    }

    /// `n` listed-ahead entries left the helpers' count; paused helpers go
    /// on once it is below the limit again.
    fn taken(&self, n: usize) {
        let before = self.listed.fetch_sub(n, AtomicOrdering::SeqCst);
        if before >= self.limit && before - n < self.limit {
            let _q = self.queue.lock().unwrap();
            self.wake.notify_all();
        }
    }

    fn stop(&self) {
        self.queue.lock().unwrap().stopped = true;
        self.wake.notify_all();
    }
}

struct StopOnDrop<'a, 'b>(&'a Ahead<'b>);

impl Drop for StopOnDrop<'_, '_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// One directory's entries, each non-directory with its stat, and the order
/// to visit them in.
struct Listing {
    dir: PathBuf,
    /// Every name, end to end.
    names: Box<str>,
    items: Box<[Item]>,
    /// (item, subtree): two steps per directory, its own entry (sorted by its
    /// name) and its subtree (sorted by its name and `/`); one per other entry.
    steps: Box<[(u32, bool)]>,
}

/// A name of one directory, in its listing's `names` text.
struct Item {
    start: u32,
    len: u32,
    kind: EntryType,
    /// Taken for everything but a directory.
    stat: Option<io::Result<Stat>>,
    /// Set when the directory's own entry was visited and asked to be walked.
    below: Option<Arc<Pending>>,
}

/// Reads `dir`, stats its non-directories, and sorts its steps. Stops early,
/// with a partial listing nobody will use, once `unwanted` is set.
fn list(dir: &Path, unwanted: Option<&AtomicBool>) -> Result<Listing, LayerError> {
    let fail = |e: rustix::io::Errno| LayerError::from_io(dir.to_path_buf(), e.into());
    let fd = rustix::fs::openat(
        CWD,
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(fail)?;
    SCRATCH.with_borrow_mut(|scratch| list_into(dir, &fd, unwanted, scratch))
}

/// One listing thread's reused buffers: each listing is gathered here and
/// then copied out at its exact size, so a listing costs three allocations
/// however many entries it has. (A listing made on one thread is freed on
/// another, and glibc frees a block under the lock of the arena that made
/// it: fewer, larger blocks are fewer turns on the other thread's lock.)
#[derive(Default)]
struct Scratch {
    dirents: Vec<u8>,
    names: String,
    items: Vec<Item>,
    steps: Vec<(u32, bool)>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch {
        dirents: Vec::with_capacity(DIRENTS_SIZE),
        ..Scratch::default()
    });
}

fn list_into(
    dir: &Path,
    fd: &rustix::fd::OwnedFd,
    unwanted: Option<&AtomicBool>,
    scratch: &mut Scratch,
) -> Result<Listing, LayerError> {
    let fail = |e: rustix::io::Errno| LayerError::from_io(dir.to_path_buf(), e.into());
    let Scratch {
        dirents,
        names,
        items,
        steps,
    } = scratch;
    names.clear();
    items.clear();
    steps.clear();
    {
        let mut entries = RawDir::new(fd, dirents.spare_capacity_mut());
        while let Some(entry) = entries.next() {
            if items.len() % 256 == 255 && unwanted.is_some_and(|u| u.load(AtomicOrdering::Relaxed)) {
                break;
            }
            let entry = entry.map_err(fail)?;
            let raw = entry.file_name().to_bytes();
            if raw == b"." || raw == b".." {
                continue;
            }
            let name = std::str::from_utf8(raw).map_err(|_| LayerError::NonUtf8Path {
                path: dir.join(OsStr::from_bytes(raw)),
            })?;
            let mut kind = EntryType::of(entry.file_type());
            let mut stat = None;
            if !kind.is_dir() {
                let taken = stat_at(fd.as_fd(), entry.file_name());
                // A file system that does not fill in `d_type` lists "unknown".
                if entry.file_type() == FileType::Unknown
                    && let Ok(s) = &taken
                {
                    kind = EntryType::of_mode(s.mode);
                }
                if !kind.is_dir() {
                    stat = Some(taken);
                }
            }
            let (Ok(start), Ok(len)) = (u32::try_from(names.len()), u32::try_from(name.len())) else {
                return Err(LayerError::TooManyNames);
            };
            names.push_str(name);
            items.push(Item {
                start,
                len,
                kind,
                stat,
                below: None,
            });
        }
    }
    let name_of = |item: &Item| &names[item.start as usize..(item.start + item.len) as usize];
    for (i, item) in items.iter().enumerate() {
        steps.push((i as u32, false));
        if item.kind.is_dir() {
            steps.push((i as u32, true));
        }
    }
    steps.sort_unstable_by(|&(a, a_sub), &(b, b_sub)| {
        step_order(
            name_of(&items[a as usize]).as_bytes(),
            a_sub,
            name_of(&items[b as usize]).as_bytes(),
            b_sub,
        )
    });
    Ok(Listing {
        dir: dir.to_path_buf(),
        names: names.as_str().into(),
        items: items.drain(..).collect(),
        steps: steps.as_slice().into(),
    })
}

/// `lstat` of `name` in the directory open as `fd`, the fields a layer keeps.
fn stat_at(fd: rustix::fd::BorrowedFd<'_>, name: &std::ffi::CStr) -> io::Result<Stat> {
    let want = StatxFlags::TYPE
        | StatxFlags::MODE
        | StatxFlags::SIZE
        | StatxFlags::MTIME
        | StatxFlags::CTIME
        | StatxFlags::INO;
    let s = rustix::fs::statx(fd, name, AtFlags::SYMLINK_NOFOLLOW, want)?;
    let ns = |t: rustix::fs::StatxTimestamp| t.tv_sec * 1_000_000_000 + i64::from(t.tv_nsec);
    Ok(Stat {
        mode: u32::from(s.stx_mode),
        size: s.stx_size,
        mtime_ns: ns(s.stx_mtime),
        ctime_ns: ns(s.stx_ctime),
        ino: s.stx_ino,
        dev: rustix::fs::makedev(s.stx_dev_major, s.stx_dev_minor),
    })
}

/// Visits the entries of `listing` (of a directory whose path below the
/// root is `rel`) and walks its subdirectories, in order. A subdirectory
/// the helpers were not asked to list (`may_enter` said no, or there are no
/// helpers) is listed here when the visitor walks into it.
fn walk_level<F>(
    listing: Listing,
    rel: &mut String,
    visit: &mut F,
    ahead: &Ahead<'_>,
) -> Result<(), LayerError>
where
    F: FnMut(&WalkEntry<'_>) -> Result<bool, LayerError>,
{
    let mut listing = listing;
    let Listing {
        dir,
        names,
        items,
        steps,
        ..
    } = &mut listing;
    let name_of = |item: &Item| &names[item.start as usize..(item.start + item.len) as usize];
    for &(i, subtree) in steps.iter() {
        let i = i as usize;
        let item = &items[i];
        let name = name_of(item);
        let at = rel.len();
        if !rel.is_empty() {
            rel.push('/');
        }
        rel.push_str(name);
        if !subtree {
            let walk_in = visit(&WalkEntry {
                rel,
                kind: item.kind,
                dir,
                name,
                stat: &item.stat,
            })?;
            if item.kind.is_dir() {
                if !walk_in {
                    if let Some(pending) = items[i].below.take() {
                        ahead.forget(&pending);
                    }
                } else if items[i].below.is_none() {
                    items[i].below = Some(Pending::new(Job {
                        dir: dir.join(name),
                        rel: rel.clone(),
                    }));
                }
            }
        } else if let Some(pending) = items[i].below.take() {
            walk_level(ahead.take(&pending)?, rel, visit, ahead)?;
        }
        rel.truncate(at);
    }
    Ok(())
}

/// The order of two steps of one directory: names compared as bytes, a
/// subtree's name with a `/` after it (sibling names hold no `/`, so that
/// decides before anything below).
fn step_order(a: &[u8], a_subtree: bool, b: &[u8], b_subtree: bool) -> Ordering {
    let n = a.len().min(b.len());
    match a[..n].cmp(&b[..n]) {
        Ordering::Equal => {}
        other => return other,
    }
    let next = |s: &[u8], subtree: bool| s.get(n).copied().or(subtree.then_some(b'/'));
    next(a, a_subtree).cmp(&next(b, b_subtree))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn the_walk_lists_paths_in_byte_order() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        for d in ["a", "a/b", "a-c", "a.d", "a0", "z", "a/b/c"] {
            fs::create_dir(r.join(d)).unwrap();
        }
        for f in [
            "a/x", "a/b/c/y", "a-c/q", "a.py", "a/!", "a0/k", "A", "z/ä", "z/~",
        ] {
            fs::write(r.join(f), b"").unwrap();
        }
        let mut seen = Vec::new();
        walk_sorted(r, &|_| true, |e| {
            seen.push(e.rel.to_string());
            Ok(true)
        })
        .unwrap();
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(seen, sorted);
        assert_eq!(seen.len(), 16);
        assert!(seen.iter().position(|p| p == "a").unwrap() < seen.iter().position(|p| p == "a-c").unwrap());
        assert!(
            seen.iter().position(|p| p == "a-c/q").unwrap() < seen.iter().position(|p| p == "a/!").unwrap()
        );
    }

    #[test]
    fn a_directory_not_walked_into_lists_nothing_below_it() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::create_dir_all(r.join("keep/skip/deep")).unwrap();
        fs::write(r.join("keep/skip/deep/f"), b"").unwrap();
        fs::write(r.join("keep/f"), b"").unwrap();
        let mut seen = Vec::new();
        walk_sorted(r, &|_| true, |e| {
            seen.push(e.rel.to_string());
            Ok(e.rel != "keep/skip")
        })
        .unwrap();
        assert_eq!(seen, ["keep", "keep/f", "keep/skip"]);
    }

    #[test]
    fn a_missing_root_names_it() {
        let root = tempfile::tempdir().unwrap();
        let gone = root.path().join("gone");
        let err = walk_sorted(&gone, &|_| true, |_| Ok(true)).unwrap_err();
        assert!(err.to_string().contains("gone"), "{err}");
    }

    /// A tree of `dirs` directories spread over three levels, a few files in
    /// each, links and an empty directory among them.
    fn wide_tree(r: &Path, dirs: usize) {
        for d in 0..dirs {
            let dir = r.join(format!("p{}/q{}/r{d}", d % 7, d % 3));
            fs::create_dir_all(&dir).unwrap();
            for f in 0..(d % 5) {
                fs::write(dir.join(format!("f{f}.js")), format!("{d}/{f}")).unwrap();
            }
            if d % 11 == 0 {
                std::os::unix::fs::symlink("f0.js", dir.join("link")).unwrap();
                fs::create_dir(dir.join("empty")).unwrap();
            }
        }
    }

    type Hint<'a> = &'a (dyn Fn(&str) -> bool + Sync);

    fn collect(
        r: &Path,
        helpers: usize,
        limit: usize,
        hint: Hint<'_>,
    ) -> Vec<(String, EntryType, Option<Stat>)> {
        let mut seen = Vec::new();
        walk_limited(r, helpers, limit, hint, |e| {
            let stat = (!e.kind.is_dir()).then(|| e.metadata().unwrap());
            seen.push((e.rel.to_string(), e.kind, stat));
            Ok(!e.rel.ends_with("q1"))
        })
        .unwrap();
        seen
    }

    #[test]
    fn helpers_listing_ahead_change_nothing_the_visitor_sees() {
        let root = tempfile::tempdir().unwrap();
        wide_tree(root.path(), 400);
        let right: Hint = &|rel| !rel.ends_with("q1");
        let alone = collect(root.path(), 0, AHEAD_LIMIT, right);
        assert!(alone.len() > 500, "{}", alone.len());
        assert!(
            alone.iter().all(|(rel, ..)| !rel.contains("q1/")),
            "q1 is not walked"
        );
        // A hint that allows too much or too little changes nothing either.
        let (all, none): (Hint, Hint) = (&|_| true, &|_| false);
        for (helpers, limit, hint) in [
            (1, AHEAD_LIMIT, right),
            (3, AHEAD_LIMIT, right),
            (2, 1, right),
            (1, 0, right),
            (2, AHEAD_LIMIT, all),
            (2, AHEAD_LIMIT, none),
        ] {
            assert_eq!(
                collect(root.path(), helpers, limit, hint),
                alone,
                "{helpers} helpers, limit {limit}"
            );
        }
    }

    #[test]
    fn the_walks_stat_is_the_one_std_gives() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::write(r.join("run.sh"), b"#!/bin/sh\n").unwrap();
        fs::set_permissions(
            r.join("run.sh"),
            std::os::unix::fs::PermissionsExt::from_mode(0o751),
        )
        .unwrap();
        std::os::unix::fs::symlink("run.sh", r.join("link")).unwrap();
        let mut seen = Vec::new();
        walk_sorted(r, &|_| true, |e| {
            seen.push((e.path(), e.kind, e.metadata().unwrap()));
            Ok(true)
        })
        .unwrap();
        assert_eq!(seen.len(), 2);
        for (path, kind, stat) in seen {
            use std::os::unix::fs::MetadataExt;
            let m = fs::symlink_metadata(&path).unwrap();
            assert_eq!(kind, EntryType::of_mode(m.mode()), "{}", path.display());
            let std = Stat {
                mode: m.mode(),
                size: m.size(),
                mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
                ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
                ino: m.ino(),
                dev: m.dev(),
            };
            assert_eq!(stat, std, "{}", path.display());
        }
    }

    #[test]
    fn a_bad_name_fails_only_where_the_walk_goes() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::create_dir_all(r.join("skipped")).unwrap();
        fs::create_dir_all(r.join("walked")).unwrap();
        let bad = OsStr::from_bytes(b"caf\xe9.txt");
        fs::write(r.join("skipped").join(bad), b"").unwrap();
        for helpers in [0, 2] {
            walk_limited(r, helpers, AHEAD_LIMIT, &|_| true, |e| Ok(e.rel != "skipped")).unwrap();
        }
        fs::write(r.join("walked").join(bad), b"").unwrap();
        for helpers in [0, 2] {
            let err =
                walk_limited(r, helpers, AHEAD_LIMIT, &|_| true, |e| Ok(e.rel != "skipped")).unwrap_err();
            assert!(
                matches!(&err, LayerError::NonUtf8Path { path } if path.starts_with(r.join("walked"))),
                "{err}"
            );
        }
    }

    #[test]
    fn a_visitors_error_ends_the_walk_and_its_helpers() {
        let root = tempfile::tempdir().unwrap();
        wide_tree(root.path(), 300);
        let mut visited = 0;
        let err = walk_limited(root.path(), 2, AHEAD_LIMIT, &|_| true, |e| {
            visited += 1;
            if visited == 50 {
                return Err(LayerError::NonUtf8Path { path: e.path() });
            }
            Ok(true)
        })
        .unwrap_err();
        assert!(matches!(err, LayerError::NonUtf8Path { .. }));
        assert_eq!(visited, 50);
    }
}
