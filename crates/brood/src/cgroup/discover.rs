//! Finding the cgroup2 hierarchy and the cgroup this process runs in.
//!
//! The mount comes from `/proc/self/mountinfo` (never a fixed path: systemd
//! machines mount cgroup2 at `/sys/fs/cgroup`, hybrid ones at
//! `/sys/fs/cgroup/unified`, containers wherever they like), the cgroup from
//! the `0::` line of `/proc/self/cgroup`. The directory of the process's
//! cgroup is the mount point joined with the cgroup path relative to the
//! mount's root.
//!
//! Owns: [`Cgroup2Mount`], the parsers of `mountinfo` and `/proc/self/cgroup`.
//! Calls: `sys::cgroupfs`.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};

/// One cgroup2 mount, as listed in `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cgroup2Mount {
    /// Where it is mounted.
    pub(crate) mount_point: PathBuf,
    /// The cgroup at the mount's root, as a path of the hierarchy (`/` for a
    /// mount of the whole hierarchy; a bind mount or a mount made inside a
    /// cgroup namespace can show a subtree).
    pub(crate) root: PathBuf,
    /// Mounted read-only (the per-mount `ro` option).
    pub(crate) read_only: bool,
}

impl Cgroup2Mount {
    /// The directory of the cgroup `cgroup` (a hierarchy path, as in
    /// `/proc/self/cgroup`) under this mount, if the mount shows it.
    pub(crate) fn dir_of(&self, cgroup: &Path) -> Option<PathBuf> {
        let relative = cgroup.strip_prefix(&self.root).ok()?;
        if relative
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            return None;
        }
        Some(self.mount_point.join(relative))
    }
}

/// Undoes mountinfo's escaping: the kernel writes space, tab, newline and
/// backslash in paths as a backslash and three octal digits (`\040`).
pub(crate) fn unescape_mountinfo(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|digits| {
            digits
                .iter()
                .all(|d| (b'0'..=b'7').contains(d))
                .then(|| digits.iter().fold(0u32, |n, d| n * 8 + u32::from(d - b'0')))
        });
        match octal {
            Some(byte) if bytes[i] == b'\\' && byte <= 0xff => {
                out.push(byte as u8);
                i += 4;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

/// Every cgroup2 mount in a mountinfo text, in the order listed (the order
/// in which they were mounted). Malformed lines are skipped.
///
/// A line is `id parent dev root mount_point options [optional...] - fstype
/// source super_options`; the optional fields vary in number, so the file
/// system type is found after the lone `-`.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<Cgroup2Mount> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let separator = fields.iter().position(|f| *f == "-")?;
            if separator < 6 || fields.get(separator + 1) != Some(&"cgroup2") {
                return None;
            }
            Some(Cgroup2Mount {
                root: unescape_mountinfo(fields[3]),
                mount_point: unescape_mountinfo(fields[4]),
                read_only: fields[5].split(',').any(|o| o == "ro"),
            })
        })
        .collect()
}

/// Whether `mountinfo` lists a cgroup v1 hierarchy; returns its mount point.
#[cfg(test)]
pub(crate) fn first_cgroup1_mount(text: &str) -> Option<PathBuf> {
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        let separator = fields.iter().position(|f| *f == "-")?;
        (separator >= 6 && fields.get(separator + 1) == Some(&"cgroup"))
            .then(|| unescape_mountinfo(fields[4]))
    })
}

/// The cgroup2 path of a `/proc/<pid>/cgroup` text: the `0::` line (on a
/// hybrid machine the v1 hierarchies have lines of their own).
pub(crate) fn parse_proc_cgroup(text: &str) -> io::Result<PathBuf> {
    let path = text
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::Unsupported,
                "brood: this process is in no cgroup v2 hierarchy (no `0::` line in /proc/self/cgroup)",
            )
        })?;
    let path = Path::new(path);
    // A cgroup outside the process's cgroup namespace shows as `/../..`;
    // no mount this process can see names it by a path we could build.
    if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "brood: this process's cgroup {} lies outside its cgroup namespace",
                path.display()
            ),
        ));
    }
    Ok(path.to_path_buf())
}

/// The cgroup this process runs in, as a hierarchy path (`/` for the root).
pub(crate) fn own_cgroup() -> io::Result<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| io::Error::new(e.kind(), format!("brood: reading /proc/self/cgroup: {e}")))?;
    parse_proc_cgroup(&text)
}

/// The cgroup2 mounts of this process's mount namespace, the writable ones
/// first (otherwise in mount order).
pub(crate) fn cgroup2_mounts() -> io::Result<Vec<Cgroup2Mount>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("brood: reading /proc/self/mountinfo: {e}"),
        )
    })?;
    let mut mounts = parse_mountinfo(&text);
    // A later mount on the same mount point hides the earlier ones.
    let mut visible = Vec::with_capacity(mounts.len());
    while let Some(mount) = mounts.pop() {
        if !visible
            .iter()
            .any(|m: &Cgroup2Mount| m.mount_point == mount.mount_point)
        {
            visible.push(mount);
        }
    }
    visible.reverse();
    // Stable: among writable (and among read-only) mounts, mount order stays.
    visible.sort_by_key(|m| m.read_only);
    Ok(visible)
}

/// The directory of the cgroup this process runs in, on a cgroup2 mount
/// that shows it. Each candidate is checked to really be cgroup2 (a mount
/// higher up, say a tmpfs on `/sys/fs/cgroup`, can hide a listed one).
pub(crate) fn own_cgroup_dir() -> io::Result<PathBuf> {
    let cgroup = own_cgroup()?;
    let mounts = cgroup2_mounts()?;
    if mounts.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "brood: no cgroup2 file system is mounted (none in /proc/self/mountinfo)",
        ));
    }
    for mount in &mounts {
        let Some(dir) = mount.dir_of(&cgroup) else {
            continue;
        };
        if is_cgroup2_dir(&dir) {
            return Ok(dir);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!(
            "brood: no cgroup2 mount shows this process's cgroup {} (mounts: {})",
            cgroup.display(),
            mounts
                .iter()
                .map(|m| format!("{} (root {})", m.mount_point.display(), m.root.display()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ))
}

fn is_cgroup2_dir(dir: &Path) -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)
        .and_then(|d| crate::sys::cgroupfs::fs_type(d.as_fd()))
        .is_ok_and(|t| t == crate::sys::cgroupfs::CGROUP2_SUPER_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Shaped after this machine's hybrid layout plus the odd cases: escaped
    // names, optional fields, a bind mount of a subtree, and a read-only mount.
    const MOUNTINFO: &str = "\
22 28 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:15 master:3 - cgroup2 cgroup2 rw,nsdelegate
50 22 0:38 /jobs/a\\040b /mnt/cg\\134x\\011y rw,relatime - cgroup2 cgroup2 rw
51 22 0:38 / /mnt/ro ro,relatime - cgroup2 none rw
";

    #[test]
    fn mountinfo_lists_cgroup2_mounts_with_escapes_undone() {
        let mounts = parse_mountinfo(MOUNTINFO);
        assert_eq!(
            mounts,
            vec![
                Cgroup2Mount {
                    mount_point: "/sys/fs/cgroup/unified".into(),
                    root: "/".into(),
                    read_only: false,
                },
                Cgroup2Mount {
                    mount_point: "/mnt/cg\\x\ty".into(),
                    root: "/jobs/a b".into(),
                    read_only: false,
                },
                Cgroup2Mount {
                    mount_point: "/mnt/ro".into(),
                    root: "/".into(),
                    read_only: true,
                },
            ]
        );
        assert_eq!(
            first_cgroup1_mount(MOUNTINFO),
            Some(PathBuf::from("/sys/fs/cgroup/memory"))
        );
    }

    #[test]
    fn unescape_leaves_lone_backslashes_and_short_escapes() {
        assert_eq!(unescape_mountinfo("a\\b"), PathBuf::from("a\\b"));
        assert_eq!(unescape_mountinfo("a\\04"), PathBuf::from("a\\04"));
        assert_eq!(unescape_mountinfo("a\\0400"), PathBuf::from("a 0"));
        assert_eq!(unescape_mountinfo("\\777"), PathBuf::from("\\777"));
    }

    #[test]
    fn cgroup_dir_is_the_mount_point_joined_with_the_path_below_its_root() {
        let mounts = parse_mountinfo(MOUNTINFO);
        let cgroup = Path::new("/jobs/a b/c");
        assert_eq!(
            mounts[0].dir_of(cgroup),
            Some(PathBuf::from("/sys/fs/cgroup/unified/jobs/a b/c"))
        );
        assert_eq!(
            mounts[1].dir_of(cgroup),
            Some(PathBuf::from("/mnt/cg\\x\ty/c"))
        );
        // The bind mount does not show cgroups outside its root.
        assert_eq!(mounts[1].dir_of(Path::new("/jobs/other")), None);
        assert_eq!(
            mounts[0].dir_of(Path::new("/")),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
    }

    #[test]
    fn proc_cgroup_takes_the_v2_line_of_a_hybrid_listing() {
        let text = "9:name=systemd:/\n4:memory:/x/y\n0::/user.slice/app.service\n";
        assert_eq!(
            parse_proc_cgroup(text).unwrap(),
            PathBuf::from("/user.slice/app.service")
        );
        assert_eq!(parse_proc_cgroup("0::/\n").unwrap(), PathBuf::from("/"));
        let v1_only = parse_proc_cgroup("4:memory:/x\n").unwrap_err();
        assert_eq!(v1_only.kind(), io::ErrorKind::Unsupported);
        let outside = parse_proc_cgroup("0::/../../x\n").unwrap_err();
        assert!(outside.to_string().contains("outside"), "{outside}");
    }
}
