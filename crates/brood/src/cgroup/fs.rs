//! Small helpers on cgroup directories, by descriptor: reading interface
//! files, listing child cgroups, removing a tree of empty cgroups.
//!
//! Owns: [`MAX_NESTING`], [`read_small`], [`subdirectories`],
//! [`remove_tree`]. Calls: `events`, `sys::cgroupfs`.

use super::events;
use crate::sys::cgroupfs;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;

/// How deep brood descends into cgroups a job created inside its own
/// (to list members, or to remove an empty tree). Deeper nesting is an error.
pub(crate) const MAX_NESTING: u32 = 64;

/// Reads a small interface file of the cgroup directory `dir`.
///
/// Read in chunks, without the size probe (`statx`, `lseek`) std's
/// `read_to_string` makes first: an interface file has no size to find.
pub(crate) fn read_small(dir: BorrowedFd<'_>, file: &str) -> io::Result<String> {
    let mut file = cgroupfs::open_file_at(dir, Path::new(file), libc::O_RDONLY)?;
    let mut text = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match io::Read::read(&mut file, &mut chunk) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    String::from_utf8(text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The names of the subdirectories (child cgroups) of the directory `dir`.
///
/// Listed through `/proc/self/fd`, so it is the very directory the
/// descriptor names.
pub(crate) fn subdirectories(dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd()))? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            names.push(entry.file_name());
        }
    }
    Ok(names)
}

/// Removes the cgroup `name` under `parent`, and the cgroups a job created
/// inside it, provided no process is left in any of them.
///
/// `rmdir` of a cgroup fails with `EBUSY` while it holds processes *or*
/// child cgroups. Only when `cgroup.events` says the tree is empty are the
/// child cgroups removed (depth first) and the `rmdir` tried again; a
/// populated tree is reported as `EBUSY`, untouched.
pub(crate) fn remove_tree(parent: BorrowedFd<'_>, name: &Path, depth: u32) -> io::Result<()> {
    match cgroupfs::rmdir_at(parent, name) {
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
        other => return other,
    }
    let dir = cgroupfs::open_file_at(parent, name, libc::O_RDONLY | libc::O_DIRECTORY)?;
    let populated = events::parse_events(&read_small(dir.as_fd(), "cgroup.events")?)?.populated;
    let children = subdirectories(dir.as_fd())?;
    if populated || children.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::EBUSY));
    }
    if depth >= MAX_NESTING {
        return Err(io::Error::other(format!(
            "brood: cgroups nested more than {MAX_NESTING} deep"
        )));
    }
    for child in children {
        remove_tree(dir.as_fd(), Path::new(&child), depth + 1)?;
    }
    cgroupfs::rmdir_at(parent, name)
}
