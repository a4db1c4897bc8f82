//! Private cgroup v2 parents, for the containment tests (the library's and
//! the CLI's) and the benchmark.
//!
//! A test that needs cgroups makes a parent of its own,
//! `brood-test-<pid>-<start>-<n>-<label>` directly under the cgroup this
//! process runs in (found from `/proc/self/cgroup` and the cgroup2 mount in
//! `/proc/self/mountinfo`, never a fixed path). Everything in it is killed
//! (`cgroup.kill`) and removed when the [`PrivateParent`] is dropped, and
//! parents left by test processes that are gone (killed by a runner's
//! timeout before their cleanup ran) are removed by the next one.
//!
//! Where no writable cgroup v2 hierarchy exists, a test [`skip`]s with a
//! printed reason, `BROOD-CGROUP-SKIP: <reason>`, straight to stderr (a
//! script must see it; the harness captures `eprintln!`); with
//! `BROOD_REQUIRE_CGROUP=1` (CI sets it) the skip is a failure instead.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// What a skipped cgroup test prints first.
pub const SKIP_MARK: &str = "BROOD-CGROUP-SKIP:";

/// The variable that turns a skip into a failure.
pub const REQUIRE_VAR: &str = "BROOD_REQUIRE_CGROUP";

/// The prefix of every private parent's name.
const PREFIX: &str = "brood-test-";

/// How long cleaning up waits for a killed tree to empty.
const DRAIN_LIMIT: Duration = Duration::from_secs(20);

/// Skips a cgroup test with a printed reason (returns `None`, for `let
/// Some(..) = .. else { return }`), or fails it under
/// `BROOD_REQUIRE_CGROUP=1`.
///
/// # Panics
///
/// When `BROOD_REQUIRE_CGROUP` is set to anything but `0`.
pub fn skip<T>(reason: &str) -> Option<T> {
    let line = format!("{SKIP_MARK} {reason}\n");
    if std::env::var_os(REQUIRE_VAR).is_some_and(|v| v != "0") {
        panic!("{line}({REQUIRE_VAR} is set, so this is a failure)");
    }
    let _ = io::stderr().write_all(line.as_bytes());
    None
}

/// The directory of the cgroup this process runs in.
pub fn own_cgroup_dir() -> Result<PathBuf, String> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
    let relative = cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or("no cgroup v2 line in /proc/self/cgroup")?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    let mount = mountinfo
        .lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            (right.split(' ').next()? == "cgroup2").then(|| left.split(' ').nth(4))?
        })
        .ok_or("no cgroup2 mount in /proc/self/mountinfo")?;
    Ok(Path::new(mount).join(relative.trim_start_matches('/')))
}

/// A private parent cgroup: everything in it is killed and removed on drop.
#[derive(Debug)]
pub struct PrivateParent {
    /// Its directory.
    pub path: PathBuf,
}

impl PrivateParent {
    /// Makes a parent named after `label`, or [`skip`]s the test (which
    /// fails under `BROOD_REQUIRE_CGROUP=1`) with the reason.
    pub fn new(label: &str) -> Option<PrivateParent> {
        match PrivateParent::try_new(label) {
            Ok(parent) => Some(parent),
            Err(reason) => skip(&reason),
        }
    }

    /// Makes a parent named after `label`; the reason if it cannot.
    pub fn try_new(label: &str) -> Result<PrivateParent, String> {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let own = own_cgroup_dir().map_err(|e| format!("no cgroup2 hierarchy: {e}"))?;
        sweep_dead_parents(&own);
        let me = std::process::id();
        let start = crate::procfs::start_time(me).ok_or("no start time for this process")?;
        let path = own.join(format!(
            "{PREFIX}{me}-{start}-{}-{label}",
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(PrivateParent { path })
    }

    /// The sorted names of the directories in the parent.
    pub fn listing(&self) -> Vec<String> {
        listing(&self.path)
    }

    /// Whether any process is left in the parent or below it.
    pub fn populated(&self) -> bool {
        populated(&self.path)
    }

    /// The pids in the parent and every cgroup below it.
    pub fn members(&self) -> Vec<u32> {
        members(&self.path)
    }

    /// The per-child cgroups brood made here (`brood-…`).
    pub fn brood_cgroups(&self) -> Vec<String> {
        self.listing()
            .into_iter()
            .filter(|n| n.starts_with("brood-"))
            .collect()
    }

    /// Waits (polling the listing: there is no event for it) up to `limit`
    /// until brood's per-child cgroups here are gone; panics with what is
    /// left otherwise.
    pub async fn wait_cgroups_removed(&self, limit: Duration) {
        let removed = crate::eventually(limit, || self.brood_cgroups().is_empty()).await;
        assert!(removed, "cgroups left: {:?}", self.brood_cgroups());
    }
}

impl Drop for PrivateParent {
    fn drop(&mut self) {
        if let Err(e) = kill_and_remove(&self.path) {
            let _ = writeln!(io::stderr(), "cleanup of {}: {e}", self.path.display());
        }
    }
}

/// Kills everything in the cgroup at `path` (`cgroup.kill` reaches the
/// whole subtree), waits for it to empty and removes it, nested cgroups
/// first.
fn kill_and_remove(path: &Path) -> io::Result<()> {
    let _ = std::fs::write(path.join("cgroup.kill"), "1");
    if !crate::eventually_blocking(DRAIN_LIMIT, || !populated(path)) {
        return Err(io::Error::other("still populated after cgroup.kill"));
    }
    remove_tree(path)
}

/// Removes the (emptied) private parents of test processes that are gone.
fn sweep_dead_parents(own: &Path) {
    for name in listing(own) {
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let mut fields = rest.split('-').map(str::parse::<u64>);
        let (Some(Ok(pid)), Some(Ok(start))) = (fields.next(), fields.next()) else {
            continue;
        };
        if crate::procfs::start_time(pid as u32) != Some(start) {
            let _ = kill_and_remove(&own.join(&name));
        }
    }
}

/// The sorted names of the directories in `dir` (none if it is gone).
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Whether any process is left in the cgroup at `path` or below it
/// (`populated 1` in its `cgroup.events`).
pub fn populated(path: &Path) -> bool {
    std::fs::read_to_string(path.join("cgroup.events"))
        .map(|e| e.lines().any(|l| l == "populated 1"))
        .unwrap_or(false)
}

/// The pids in the cgroup at `path` and every cgroup below it (zombies are
/// in none: the kernel moves a process out of its cgroup when it exits).
pub fn members(path: &Path) -> Vec<u32> {
    let mut pids: Vec<u32> = std::fs::read_to_string(path.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    for name in listing(path) {
        pids.extend(members(&path.join(name)));
    }
    pids
}

/// Removes the empty cgroup at `dir`, the cgroups nested in it first.
pub fn remove_tree(dir: &Path) -> io::Result<()> {
    for name in listing(dir) {
        remove_tree(&dir.join(name))?;
    }
    std::fs::remove_dir(dir)
}

/// Prints a worker's cgroup skip line as this process's own: a test that
/// ran its body in a [worker](crate::worker) skipped if the worker did.
pub fn forward_skip(run: &crate::worker::Run) {
    if let Some(line) = run.stderr.lines().find(|l| l.starts_with(SKIP_MARK)) {
        let _ = writeln!(io::stderr(), "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parent_is_made_listed_killed_and_removed() {
        let Some(parent) = PrivateParent::new("kit-self-test") else {
            return;
        };
        let path = parent.path.clone();
        assert!(path.join("cgroup.procs").exists());
        assert!(!parent.populated());
        std::fs::create_dir(path.join("inner")).unwrap();
        assert_eq!(parent.listing(), ["inner"]);
        let mut sleeper = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        std::fs::write(path.join("inner/cgroup.procs"), sleeper.id().to_string()).unwrap();
        assert_eq!(parent.members(), [sleeper.id()]);
        assert!(parent.populated());
        drop(parent);
        // Killed by the drop's cgroup.kill, and reaped here.
        let status = sleeper.wait().unwrap();
        assert!(!status.success());
        assert!(!path.exists());
    }
}
