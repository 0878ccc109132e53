//! Watches the workspace's `openspec/` tree with one inotify instance, on one thread, and reports
//! changes in batches: whoever made them (a tool, the `openspec` CLI, a `git checkout`), the
//! server hears of them without polling. [`spawn_files`] does the same for a few single files
//! (the certificate, the key, the tokens file).
//!
//! Every directory of the tree gets a watch (new ones as they appear); a batch ends when the tree
//! has been quiet for [`Settings::settle`], so an atomic write (temporary file, rename) or a
//! checkout of many files is one report. A folder without `openspec/` is watched for its creation.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use rustix::io::Errno;

/// One batch of changes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// Entries were created, deleted or renamed: lists of resources may differ.
    pub listed: bool,
}

/// The watcher's limits.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Quiet time that ends a batch.
    pub settle: Duration,
    /// Most directories watched (each is one kernel watch); deeper trees are watched in part,
    /// with a warning.
    pub max_watches: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            settle: Duration::from_millis(50),
            max_watches: 8192,
        }
    }
}

/// Stops the watcher thread when dropped.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How often the thread looks at its stop flag while the tree is quiet.
const STOP_POLL: Duration = Duration::from_millis(250);

/// Starts watching `<root>/openspec`; `on_change` runs on the watcher's thread for every batch.
///
/// # Errors
/// The inotify instance or the thread could not be created.
pub fn spawn(
    root: &Path,
    settings: Settings,
    mut on_change: impl FnMut(Change) + Send + 'static,
) -> std::io::Result<Watcher> {
    let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)?;
    let mut tree = Tree {
        fd,
        root: root.to_path_buf(),
        dirs: HashMap::new(),
        root_wd: None,
        max: settings.max_watches,
        warned: false,
    };
    tree.rescan();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("watch".into())
        .spawn(move || {
            let mut buf = vec![MaybeUninit::<u8>::uninit(); 16 * 1024];
            let mut pending: Option<Change> = None;
            while !stop2.load(Ordering::Relaxed) {
                let wait = if pending.is_some() {
                    settings.settle
                } else {
                    STOP_POLL
                };
                if !readable(&tree.fd, wait) {
                    if let Some(c) = pending.take() {
                        on_change(c);
                    }
                    continue;
                }
                let c = tree.drain(&mut buf);
                let p = pending.get_or_insert_with(Change::default);
                p.listed |= c.listed;
            }
        })?;
    Ok(Watcher {
        stop,
        thread: Some(thread),
    })
}

/// Watches single files (each through its folder, so a file replaced by a rename, or a
/// Kubernetes Secret volume whose `..data` link is swapped, is seen too); `on_change` runs on the
/// watcher's thread once per quiet batch of changes to any of them.
///
/// # Errors
/// The inotify instance or the thread could not be created.
pub fn spawn_files(
    files: &[PathBuf],
    settings: Settings,
    mut on_change: impl FnMut() + Send + 'static,
) -> std::io::Result<Watcher> {
    let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)?;
    let mut names: HashMap<i32, Vec<Vec<u8>>> = HashMap::new();
    for f in files {
        let dir = match f.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let Some(name) = f.file_name() else { continue };
        let wd = inotify::add_watch(
            &fd,
            &dir,
            WatchFlags::CLOSE_WRITE
                | WatchFlags::MOVED_TO
                | WatchFlags::CREATE
                | WatchFlags::DELETE
                | WatchFlags::ONLYDIR,
        )?;
        names.entry(wd).or_default().push(name.as_bytes().to_vec());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("watch-files".into())
        .spawn(move || {
            let mut buf = vec![MaybeUninit::<u8>::uninit(); 4096];
            let mut pending = false;
            while !stop2.load(Ordering::Relaxed) {
                let wait = if pending { settings.settle } else { STOP_POLL };
                if !readable(&fd, wait) {
                    if std::mem::take(&mut pending) {
                        on_change();
                    }
                    continue;
                }
                let mut reader = inotify::Reader::new(fd.as_fd(), &mut buf);
                loop {
                    let ev = match reader.next() {
                        Ok(ev) => ev,
                        Err(Errno::AGAIN | Errno::INTR) => break,
                        Err(e) => {
                            log::warn!("reading file events: {e}");
                            break;
                        }
                    };
                    if ev.events().contains(ReadFlags::QUEUE_OVERFLOW) {
                        pending = true;
                        continue;
                    }
                    let Some(name) = ev.file_name().map(|n| n.to_bytes()) else {
                        continue;
                    };
                    // Our files, or the `..data` link and `..<timestamp>` folders of a
                    // Kubernetes Secret volume, through which the files are symlinks.
                    let ours = names
                        .get(&ev.wd())
                        .is_some_and(|ns| ns.iter().any(|n| n == name));
                    if ours || name.starts_with(b"..") {
                        pending = true;
                    }
                }
            }
        })?;
    Ok(Watcher {
        stop,
        thread: Some(thread),
    })
}

fn readable(fd: &OwnedFd, timeout: Duration) -> bool {
    let mut fds = [PollFd::new(fd, PollFlags::IN)];
    let ts = Timespec::try_from(timeout).unwrap_or(Timespec {
        tv_sec: 1,
        tv_nsec: 0,
    });
    matches!(poll(&mut fds, Some(&ts)), Ok(n) if n > 0)
}

/// The watched directories.
struct Tree {
    fd: OwnedFd,
    root: PathBuf,
    /// Watch descriptor → directory.
    dirs: HashMap<i32, PathBuf>,
    /// The watch on the root folder, kept while `openspec/` does not exist.
    root_wd: Option<i32>,
    max: usize,
    warned: bool,
}

const DIR_EVENTS: WatchFlags = WatchFlags::CREATE
    .union(WatchFlags::DELETE)
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::CLOSE_WRITE)
    .union(WatchFlags::MODIFY)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF)
    .union(WatchFlags::ONLYDIR);

impl Tree {
    fn openspec(&self) -> PathBuf {
        self.root.join("openspec")
    }

    /// Watches every directory of the tree again (at start, after an overflow, when `openspec/`
    /// appears or goes).
    fn rescan(&mut self) {
        for wd in self.dirs.keys().copied().collect::<Vec<_>>() {
            let _ = inotify::remove_watch(&self.fd, wd);
        }
        self.dirs.clear();
        let top = self.openspec();
        if top.is_dir() {
            if let Some(wd) = self.root_wd.take() {
                let _ = inotify::remove_watch(&self.fd, wd);
            }
            self.add_tree(&top);
        } else if self.root_wd.is_none() {
            self.root_wd = inotify::add_watch(
                &self.fd,
                &self.root,
                WatchFlags::CREATE | WatchFlags::MOVED_TO | WatchFlags::ONLYDIR,
            )
            .ok();
        }
    }

    fn add_tree(&mut self, dir: &Path) {
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            if self.dirs.len() >= self.max {
                if !self.warned {
                    log::warn!(
                        "watching only {} folders of {}: resource updates may be missed deeper",
                        self.max,
                        self.openspec().display()
                    );
                    self.warned = true;
                }
                return;
            }
            match inotify::add_watch(&self.fd, &d, DIR_EVENTS) {
                Ok(wd) => {
                    self.dirs.insert(wd, d.clone());
                }
                Err(e) => {
                    log::debug!("no watch on {}: {e}", d.display());
                    continue;
                }
            }
            if let Ok(entries) = std::fs::read_dir(&d) {
                for e in entries.flatten() {
                    // Symlinks are not followed: the tree is the workspace's own.
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        stack.push(e.path());
                    }
                }
            }
        }
    }

    /// Reads every queued event; new directories get watches.
    fn drain(&mut self, buf: &mut [MaybeUninit<u8>]) -> Change {
        let mut change = Change::default();
        let mut new_dirs = Vec::new();
        let mut rescan = false;
        let mut reader = inotify::Reader::new(self.fd.as_fd(), buf);
        loop {
            let ev = match reader.next() {
                Ok(ev) => ev,
                Err(Errno::AGAIN | Errno::INTR) => break,
                Err(e) => {
                    log::warn!("reading file events: {e}");
                    break;
                }
            };
            let flags = ev.events();
            if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
                rescan = true;
                change.listed = true;
                continue;
            }
            if Some(ev.wd()) == self.root_wd {
                let name = ev.file_name().map(|n| n.to_bytes());
                if name == Some(b"openspec".as_slice()) {
                    rescan = true;
                    change.listed = true;
                }
                continue;
            }
            let structural = ReadFlags::CREATE
                | ReadFlags::DELETE
                | ReadFlags::MOVED_FROM
                | ReadFlags::MOVED_TO
                | ReadFlags::DELETE_SELF
                | ReadFlags::MOVE_SELF;
            if flags.intersects(structural) {
                change.listed = true;
            }
            if flags.intersects(ReadFlags::DELETE_SELF | ReadFlags::MOVE_SELF)
                && self.dirs.get(&ev.wd()) == Some(&self.openspec())
            {
                rescan = true;
            }
            if flags.contains(ReadFlags::IGNORED) {
                self.dirs.remove(&ev.wd());
            }
            if flags.contains(ReadFlags::ISDIR)
                && flags.intersects(ReadFlags::CREATE | ReadFlags::MOVED_TO)
                && let (Some(parent), Some(name)) = (self.dirs.get(&ev.wd()), ev.file_name())
            {
                new_dirs.push(parent.join(OsStr::from_bytes(name.to_bytes())));
            }
        }
        if rescan {
            self.rescan();
        } else {
            for d in new_dirs {
                self.add_tree(&d);
            }
        }
        change
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("task-mcp-watch-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn watch(root: &Path) -> (Watcher, crossbeam_channel::Receiver<Change>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let w = spawn(root, Settings::default(), move |c| {
            let _ = tx.send(c);
        })
        .unwrap();
        (w, rx)
    }

    /// The next batch, waiting for the kernel at most 5 s.
    fn next(rx: &crossbeam_channel::Receiver<Change>) -> Change {
        rx.recv_timeout(Duration::from_secs(5))
            .expect("a change batch")
    }

    #[test]
    fn edits_creations_and_new_folders_are_reported() {
        let root = temp("tree");
        std::fs::create_dir_all(root.join("openspec/changes/a")).unwrap();
        std::fs::write(root.join("openspec/changes/a/proposal.md"), "x").unwrap();
        let (_w, rx) = watch(&root);
        std::fs::write(root.join("openspec/changes/a/proposal.md"), "y").unwrap();
        assert_eq!(next(&rx), Change { listed: false });
        // A folder made after the start is watched too.
        std::fs::create_dir_all(root.join("openspec/changes/b/specs")).unwrap();
        while !next(&rx).listed {}
        std::fs::write(root.join("openspec/changes/b/specs/x.md"), "z").unwrap();
        assert_eq!(next(&rx), Change { listed: true });
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn single_files_are_seen_when_rewritten_renamed_over_or_swapped_like_a_k8s_secret() {
        let dir = temp("files");
        std::fs::write(dir.join("tokens.json"), "[]").unwrap();
        std::fs::write(dir.join("other.txt"), "x").unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        let _w = spawn_files(&[dir.join("tokens.json")], Settings::default(), move || {
            let _ = tx.send(());
        })
        .unwrap();
        let next = || rx.recv_timeout(Duration::from_secs(5)).is_ok();
        std::fs::write(dir.join("tokens.json"), "[ ]").unwrap();
        assert!(next(), "a rewrite");
        std::fs::write(dir.join("tokens.json.tmp"), "[]").unwrap();
        std::fs::rename(dir.join("tokens.json.tmp"), dir.join("tokens.json")).unwrap();
        assert!(next(), "an atomic replace");
        // Kubernetes: the files are links through `..data`, which is swapped by a rename.
        std::fs::create_dir(dir.join("..2026_12_05")).unwrap();
        std::os::unix::fs::symlink("..2026_12_05", dir.join("..data_tmp")).unwrap();
        std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
        assert!(next(), "a ..data swap");
        // Other files in the folder are not ours: nothing more is reported.
        std::fs::write(dir.join("other.txt"), "y").unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_workspace_without_openspec_is_watched_for_its_creation() {
        let root = temp("bare");
        let (_w, rx) = watch(&root);
        std::fs::create_dir_all(root.join("openspec/changes")).unwrap();
        assert!(next(&rx).listed);
        std::fs::write(root.join("openspec/changes/note.md"), "n").unwrap();
        // The nested folder may be reported in the same batch or the next.
        let mut got = next(&rx);
        while !got.listed {
            got = next(&rx);
        }
        let _ = std::fs::remove_dir_all(&root);
    }
}
