//! The directory per-child cgroups are created in: validation, creation, and
//! the removal of stale cgroups that crashed brood processes left behind.
//!
//! Owns: [`CgroupParent`], the cache of validated parents. Calls: `child`,
//! `discover`, `events`, `fs`, `name`, `sys::cgroupfs`.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::child::ChildCgroup;
use super::dir::CgroupDir;
use super::fs::{read_small, remove_tree, subdirectories};
use super::name::{self, CgroupName, Creator};
use super::pool::Pool;
use crate::sys::cgroupfs;

/// A validated directory of the cgroup2 hierarchy in which per-child cgroups
/// can be created and populated.
///
/// It holds the directory open, and every later operation (creation,
/// removal, the stale sweep) is relative to that descriptor, so it acts on
/// the directory that was validated even if the path changes meaning.
#[derive(Debug)]
pub(crate) struct CgroupParent {
    path: PathBuf,
    /// Shared with each child cgroup, which removes itself through it.
    dir: Arc<File>,
    /// Set once this value has seen to the stale sweep of its directory.
    swept: std::sync::atomic::AtomicBool,
}

impl CgroupParent {
    /// The default parent: the cgroup this process runs in (see the module
    /// docs for why), validated once and then shared. A failure is not
    /// remembered: the next call tries again.
    pub(crate) fn default_parent() -> io::Result<Arc<CgroupParent>> {
        static DEFAULT: OnceLock<Arc<CgroupParent>> = OnceLock::new();
        if let Some(parent) = DEFAULT.get() {
            return Ok(Arc::clone(parent));
        }
        let parent = Arc::new(CgroupParent::open(&super::discover::own_cgroup_dir()?)?);
        Ok(Arc::clone(DEFAULT.get_or_init(|| parent)))
    }

    /// [`CgroupParent::open`], validated once per path and then shared (a
    /// failure is not remembered). Validation reads `/proc` and walks the
    /// path, which is too slow to repeat for every spawn.
    pub(crate) fn open_cached(path: &Path) -> io::Result<Arc<CgroupParent>> {
        if let Some(parent) = lock_cache().get(path) {
            return Ok(Arc::clone(parent));
        }
        let parent = Arc::new(CgroupParent::open(path)?);
        Ok(Arc::clone(
            lock_cache().entry(path.to_path_buf()).or_insert(parent),
        ))
    }

    /// Drops `path` from the cache of [`CgroupParent::open_cached`] (the
    /// directory was removed since).
    pub(crate) fn forget_cached(path: &Path) {
        lock_cache().remove(path);
    }

    /// Validates `path` as a parent for per-child cgroups: it must exist, be
    /// a directory of a cgroup v2 hierarchy, be a `domain` cgroup (children
    /// of threaded cgroups cannot hold processes), be writable, and let this
    /// process move processes into cgroups below it.
    ///
    /// The error names the path and says why. Nothing is created; the only
    /// descriptor opened is dropped on failure.
    pub(crate) fn open(path: &Path) -> io::Result<CgroupParent> {
        let fail = |kind, why: String| {
            io::Error::new(
                kind,
                format!("brood: cgroup parent {}: {why}", path.display()),
            )
        };
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ENOENT) => fail(io::ErrorKind::NotFound, "does not exist".into()),
                Some(libc::ENOTDIR) => fail(
                    io::ErrorKind::NotADirectory,
                    "is not a directory (a cgroup is one)".into(),
                ),
                Some(libc::EACCES) => fail(
                    io::ErrorKind::PermissionDenied,
                    "cannot be opened: permission denied".into(),
                ),
                _ => fail(e.kind(), format!("cannot be opened: {e}")),
            })?;

        match cgroupfs::fs_type(dir.as_fd())? {
            cgroupfs::CGROUP2_SUPER_MAGIC => {}
            cgroupfs::CGROUP_SUPER_MAGIC => {
                return Err(fail(
                    io::ErrorKind::Unsupported,
                    "is on a cgroup v1 hierarchy, not cgroup v2".into(),
                ))
            }
            other => {
                return Err(fail(
                    io::ErrorKind::Unsupported,
                    format!("is not on a cgroup v2 file system (file system type {other:#x})"),
                ))
            }
        }

        // The root cgroup has no cgroup.type; every other one does. A new
        // child of a `threaded` or `domain threaded` cgroup starts as `domain
        // invalid`, and writing a process into it fails with EOPNOTSUPP.
        match read_small(dir.as_fd(), "cgroup.type") {
            Ok(kind) if kind.trim() == "domain" => {}
            Ok(kind) => {
                return Err(fail(
                    io::ErrorKind::Unsupported,
                    format!(
                        "is a `{}` cgroup; processes can only be placed in children of a `domain` cgroup",
                        kind.trim()
                    ),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail(e.kind(), format!("cannot read cgroup.type: {e}"))),
        }

        cgroupfs::access_at(dir.as_fd(), Path::new("."), libc::W_OK | libc::X_OK).map_err(|e| {
            match e.raw_os_error() {
                Some(libc::EROFS) => fail(
                    io::ErrorKind::PermissionDenied,
                    "is not writable: it is on a read-only mount".into(),
                ),
                Some(libc::EACCES) | Some(libc::EPERM) => fail(
                    io::ErrorKind::PermissionDenied,
                    "is not writable by this process (creating a cgroup needs write \
                     permission on the directory; under systemd, use a delegated \
                     subtree: Delegate=yes)"
                        .into(),
                ),
                _ => fail(e.kind(), format!("is not writable: {e}")),
            }
        })?;

        check_migration_permission(path).map_err(|(ancestor, e)| {
            fail(
                io::ErrorKind::PermissionDenied,
                format!(
                    "processes cannot be moved below it: that needs write permission on \
                     {}/cgroup.procs, the common ancestor with this process's cgroup ({e})",
                    ancestor.display()
                ),
            )
        })?;

        Ok(CgroupParent {
            path: path.to_path_buf(),
            dir: Arc::new(dir),
            swept: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The path it was opened by.
    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn dir_fd(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    /// A cgroup for a child about to be spawned: one `pool` keeps for this
    /// directory if it has one, else a fresh one ([`CgroupParent::create_child`]),
    /// which `pool` takes back once the child's tree has ended.
    pub(crate) fn child_cgroup(
        self: &Arc<Self>,
        pool: Option<&Arc<Pool>>,
    ) -> io::Result<ChildCgroup> {
        let Some(pool) = pool else {
            return self.create_child(None);
        };
        while let Some(idle) = pool.take(&self.dir) {
            // Kept clean; checked again in case a process was moved in from
            // outside since (anything else it did shows at the next retire).
            // Such a cgroup is removed if it can be, or else left to the
            // stale sweep, as a crashed brood's cgroups are.
            if idle.dir.is_idle() {
                return Ok(ChildCgroup::reuse(idle, Arc::clone(pool)));
            }
            let _ = idle.dir.remove();
        }
        self.create_child(Some(Arc::clone(pool)))
    }

    /// Creates a fresh, uniquely named per-child cgroup (see `name.rs` for
    /// the scheme), with its directory open; it goes to `pool` once the
    /// child's tree has ended, if given.
    ///
    /// The first creation under a directory (per process) first removes the
    /// stale cgroups crashed brood processes left there. On failure nothing
    /// is left behind: a directory already made is removed again.
    pub(crate) fn create_child(
        self: &Arc<Self>,
        pool: Option<Arc<Pool>>,
    ) -> io::Result<ChildCgroup> {
        static SEQUENCE: AtomicU64 = AtomicU64::new(0);
        let creator = name::this_process()?;
        self.sweep_stale_once(creator);
        let name = CgroupName {
            creator,
            sequence: SEQUENCE.fetch_add(1, Ordering::Relaxed),
        }
        .format();
        let path = self.path.join(&name);
        // Keeps the kind (the caller may fall back on it), adds the path.
        let fail = |e: &io::Error, why: &str| {
            io::Error::new(
                e.kind(),
                format!("brood: cannot create cgroup {}: {why}", path.display()),
            )
        };
        cgroupfs::mkdir_at(self.dir_fd(), Path::new(&name), 0o755).map_err(|e| {
            let why = match e.raw_os_error() {
                Some(libc::EAGAIN) => {
                    "cgroup.max.descendants or cgroup.max.depth of the parent or an \
                     ancestor is reached"
                }
                Some(libc::ENOENT) | Some(libc::ENODEV) => "the parent cgroup was removed",
                Some(libc::EROFS) => "the parent is on a read-only mount",
                Some(libc::EACCES) | Some(libc::EPERM) => {
                    "the parent is not writable by this process"
                }
                _ => return fail(&e, &e.to_string()),
            };
            fail(&e, why)
        })?;
        let opened = cgroupfs::open_file_at(
            self.dir_fd(),
            Path::new(&name),
            libc::O_RDONLY | libc::O_DIRECTORY,
        );
        match opened
            .and_then(|dir| CgroupDir::open(Arc::clone(&self.dir), name.clone(), path.clone(), dir))
        {
            Ok(dir) => Ok(ChildCgroup::new(dir, pool)),
            Err(e) => {
                // Nothing half-done: the directory is empty, so this succeeds.
                let _ = cgroupfs::rmdir_at(self.dir_fd(), Path::new(&name));
                Err(fail(&e, &e.to_string()))
            }
        }
    }

    /// Runs the stale sweep (`CgroupParent::sweep`) the first time this process creates
    /// a cgroup in this directory (whichever `CgroupParent` value names it).
    /// A failed sweep is not retried: it only costs leftovers, never
    /// correctness.
    fn sweep_stale_once(&self, me: Creator) {
        // The common case, every creation after the first: one load.
        if self.swept.swap(true, Ordering::AcqRel) {
            return;
        }
        static SWEPT: Mutex<Option<HashSet<(u64, u64)>>> = Mutex::new(None);
        let Ok(meta) = self.dir.metadata() else {
            return;
        };
        let first = SWEPT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_or_insert_with(HashSet::new)
            .insert((meta.dev(), meta.ino()));
        if first {
            let _ = self.sweep(me);
        }
    }

    /// Removes the empty cgroups that crashed brood processes left in this
    /// directory; returns how many it removed.
    ///
    /// A directory is removed only if its name parses as brood's (see
    /// `name.rs`), its creator is in this process's pid namespace, that
    /// creator is gone (no process with its pid, or one with another start
    /// time: the pid was reused), and it holds no process (`rmdir` refuses a
    /// populated cgroup, atomically). Cgroups of live brood processes, of
    /// other pid namespaces, and anything not named by brood are never
    /// touched; nor are stale ones that still hold processes (their jobs
    /// outlived the crash and may be wanted).
    #[cfg(test)]
    pub(crate) fn sweep_stale(&self) -> io::Result<usize> {
        self.sweep(name::this_process()?)
    }

    fn sweep(&self, me: Creator) -> io::Result<usize> {
        let mut alive: HashMap<(u32, u64), bool> = HashMap::new();
        let mut removed = 0;
        for entry in subdirectories(self.dir_fd())? {
            let Some(parsed) = entry.to_str().and_then(CgroupName::parse) else {
                continue;
            };
            let creator = parsed.creator;
            if creator.pid_namespace != me.pid_namespace || creator == me {
                continue;
            }
            let live = *alive
                .entry((creator.pid, creator.start_time))
                .or_insert_with(|| {
                    // Unknown counts as alive: never remove on a doubt.
                    name::start_time_of(creator.pid)
                        .map(|start| start == Some(creator.start_time))
                        .unwrap_or(true)
                });
            if !live && remove_tree(self.dir_fd(), Path::new(&entry), 0).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// The parents [`CgroupParent::open_cached`] validated, by path.
fn lock_cache() -> std::sync::MutexGuard<'static, HashMap<PathBuf, Arc<CgroupParent>>> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Arc<CgroupParent>>>> = OnceLock::new();
    CACHE
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether this process may move processes into a new cgroup under
/// `parent`: the kernel asks for write permission on `cgroup.procs` of the
/// common ancestor of the source cgroup (ours: the child starts there) and
/// the destination. Where this process's cgroup cannot be located on the
/// same mount, the check is left to the kernel at spawn time.
fn check_migration_permission(parent: &Path) -> Result<(), (PathBuf, io::Error)> {
    let Ok(own) = super::discover::own_cgroup_dir() else {
        return Ok(());
    };
    let (Ok(own), Ok(parent)) = (own.canonicalize(), parent.canonicalize()) else {
        return Ok(());
    };
    let common: PathBuf = own
        .components()
        .zip(parent.components())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a)
        .collect();
    if common.components().all(|c| c == Component::RootDir) {
        return Ok(());
    }
    // The common ancestor must itself be a cgroup2 directory (both paths may
    // lie on different mounts that share only a prefix).
    let Ok(ancestor) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(&common)
    else {
        return Ok(());
    };
    if cgroupfs::fs_type(ancestor.as_fd()).ok() != Some(cgroupfs::CGROUP2_SUPER_MAGIC) {
        return Ok(());
    }
    cgroupfs::access_at(ancestor.as_fd(), Path::new("cgroup.procs"), libc::W_OK)
        .map_err(|e| (common, e))
}
