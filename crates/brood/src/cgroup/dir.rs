//! One cgroup brood made, by its descriptors: the directory itself,
//! `cgroup.events` twice (one for the background thread's watch, one for
//! every other reader) and `cpu.stat`, each opened once and kept for as
//! long as the directory is brood's.
//!
//! A directory outlives the child it was made for when a pool keeps it
//! (`pool.rs`): its next tenant (`child.rs`) gets it with the descriptors
//! open, so reusing it costs no `mkdir`, `rmdir` or `open` at all.
//!
//! Owns: [`CgroupDir`]. Calls: `events`, `fs`, `usage`, `sys::cgroupfs`.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::events::{self, Events};
use super::fs;
use super::usage::{self, CgroupUsage};
use crate::sys::cgroupfs;

/// A cgroup directory brood created, with its descriptors open.
#[derive(Debug)]
pub(crate) struct CgroupDir {
    /// The parent directory, through which the cgroup is removed.
    parent: Arc<File>,
    name: String,
    path: PathBuf,
    /// Opened `O_RDONLY | O_DIRECTORY | O_CLOEXEC`: the descriptor
    /// `clone3(CLONE_INTO_CGROUP)` takes.
    dir: File,
    /// `cgroup.events` for the background thread's watch, and for nothing
    /// else while a watch may be armed: kernfs reports a change to a
    /// descriptor only until that descriptor reads the file, so another
    /// reader of it could swallow the notification the watch waits for.
    events: Arc<File>,
    /// `cgroup.events` for everyone else, read from offset 0 each time
    /// (kernfs regenerates it; concurrent reads are serialised).
    events_now: File,
    /// `cpu.stat`, read the same way.
    cpu_stat: File,
}

impl CgroupDir {
    /// Takes the directory `name` under `parent`, just created and opened
    /// as `dir`, and opens the files it keeps.
    pub(super) fn open(
        parent: Arc<File>,
        name: String,
        path: PathBuf,
        dir: File,
    ) -> io::Result<CgroupDir> {
        let events = Arc::new(events::open_events(dir.as_fd())?);
        let events_now = events::open_events(dir.as_fd())?;
        let cpu_stat = cgroupfs::open_file_at(dir.as_fd(), Path::new("cpu.stat"), libc::O_RDONLY)?;
        Ok(CgroupDir {
            parent,
            name,
            path,
            dir,
            events,
            events_now,
            cpu_stat,
        })
    }

    #[cfg(test)]
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    /// Whether this cgroup was made under `parent` (the same descriptor).
    pub(crate) fn is_under(&self, parent: &Arc<File>) -> bool {
        Arc::ptr_eq(&self.parent, parent)
    }

    /// The watch descriptor of `cgroup.events` (see the field's docs).
    pub(crate) fn events_for_watch(&self) -> Arc<File> {
        Arc::clone(&self.events)
    }

    /// Reads `cgroup.events` now (never through the watch descriptor).
    pub(crate) fn events(&self) -> io::Result<Events> {
        events::read_events_at_start(&self.events_now)
    }

    /// Whether it holds no process and is not frozen: what a cgroup kept
    /// for the next tenant must still be when that tenant takes it.
    pub(crate) fn is_idle(&self) -> bool {
        matches!(
            self.events(),
            Ok(Events {
                populated: false,
                frozen: false
            })
        )
    }

    /// The CPU figures since the cgroup was made (cumulative `cpu.stat`).
    pub(crate) fn cpu_figures(&self) -> io::Result<CgroupUsage> {
        let mut buf = [0u8; 4096];
        let n = self.cpu_stat.read_at(&mut buf, 0)?;
        let mut figures = CgroupUsage::default();
        usage::parse_cpu_stat(&String::from_utf8_lossy(&buf[..n]), &mut figures)?;
        Ok(figures)
    }

    /// Whether the next tenant can have it as it is: empty, not frozen, and
    /// with no cgroup a job made inside it (kernfs counts a directory's
    /// subdirectories in its link count: 2 means none).
    pub(crate) fn is_clean(&self) -> bool {
        self.is_idle() && matches!(self.dir.metadata(), Ok(meta) if meta.nlink() == 2)
    }

    /// Removes the directory, and the cgroups a job made inside it, if no
    /// process is left in any of them (`EBUSY` otherwise). A directory
    /// someone else removed is `NotFound`.
    pub(crate) fn remove(&self) -> io::Result<()> {
        fs::remove_tree(self.parent.as_fd(), Path::new(&self.name), 0)
    }
}
