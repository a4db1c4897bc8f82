//! cgroup v2 for tests that need one: where this process's cgroup is, a
//! private scratch cgroup per test, and the rule for skipping.
//!
//! **The skip rule.** A test that finds no writable cgroup v2 hierarchy
//! calls [`skip`]: it prints `BROOD-CGROUP-SKIP: <reason>` straight to
//! stderr (not through the test harness, which captures `eprintln!`) and
//! the test returns, passing. With `BROOD_REQUIRE_CGROUP=1` in the
//! environment (CI sets it) [`skip`] panics instead, so a test that could
//! not run is a failure there, never a silent pass. The library's own
//! cgroup tests follow the same rule.
//!
//! **Scratch cgroups.** [`Scratch::new`] makes
//! `brood-kit-<pid>-<start>-<n>-<label>` under this process's cgroup: a
//! name that brood's sweep of stale per-child cgroups (`brood-<digits>-...`)
//! never matches. On drop everything in it is killed (`cgroup.kill`, which
//! reaches every process in the subtree however it detached), it is waited
//! for (bounded) to empty, and it is removed with whatever it holds. Scratch
//! cgroups of test processes that died outright are removed by the next
//! [`Scratch::new`].

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// What a skipped cgroup test prints first on its line of stderr.
pub const SKIP_MARK: &str = "BROOD-CGROUP-SKIP:";

/// The environment variable that turns a skip into a failure.
pub const REQUIRE_VAR: &str = "BROOD_REQUIRE_CGROUP";

/// The prefix of every scratch cgroup's name.
const SCRATCH_PREFIX: &str = "brood-kit-";

/// How long a scratch cgroup may take to empty after `cgroup.kill`.
const DRAIN_LIMIT: Duration = Duration::from_secs(20);

/// Whether cgroup tests must run here (`BROOD_REQUIRE_CGROUP` set, and not
/// `0`).
pub fn required() -> bool {
    std::env::var_os(REQUIRE_VAR).is_some_and(|v| v != "0")
}

/// Skips a cgroup test: prints `BROOD-CGROUP-SKIP: <reason>` to stderr and
/// returns `None`, for the test to return on.
///
/// # Panics
///
/// Under `BROOD_REQUIRE_CGROUP=1`, with the same line: there, a cgroup test
/// that cannot run fails.
pub fn skip<T>(reason: &str) -> Option<T> {
    let line = format!("{SKIP_MARK} {reason}\n");
    if required() {
        panic!("{line}({REQUIRE_VAR} is set, so this is a failure)");
    }
    let _ = io::stderr().write_all(line.as_bytes());
    None
}

/// The directory of the cgroup v2 this process runs in, from the `0::`
/// line of `/proc/self/cgroup` and the cgroup2 mount in
/// `/proc/self/mountinfo` (on a hybrid system that mount is not
/// `/sys/fs/cgroup`).
pub fn own_dir() -> Result<PathBuf, String> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    let relative = cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or("no cgroup v2 line (0::) in /proc/self/cgroup")?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    // Fields before " - ": id, parent, major:minor, root, mount point, ...;
    // after it: the file system type first.
    let mount = mountinfo
        .lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            (right.split(' ').next()? == "cgroup2").then(|| left.split(' ').nth(4))?
        })
        .ok_or("no cgroup2 mount in /proc/self/mountinfo")?;
    Ok(Path::new(mount).join(relative.trim_start_matches('/')))
}

/// Whether the cgroup at `dir` (or any cgroup below it) holds a process:
/// `populated 1` in its `cgroup.events`. A cgroup that is gone holds none.
pub fn populated(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("cgroup.events"))
        .is_ok_and(|events| events.lines().any(|l| l == "populated 1"))
}

/// The names of the cgroups directly below `dir`, sorted.
pub fn subdirectories(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// The pids in the cgroup at `dir` and every cgroup below it (zombies are
/// in none: the kernel moves a process out of its cgroup when it exits).
pub fn members(dir: &Path) -> Vec<u32> {
    let mut pids: Vec<u32> = std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    for sub in subdirectories(dir) {
        pids.extend(members(&dir.join(sub)));
    }
    pids
}

/// A private cgroup for one test, under this process's cgroup: pass it as
/// the parent of the cgroups under test. Everything in it is killed and it
/// is removed on drop.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// Makes a scratch cgroup; `label` names the test. `None` (after
    /// [`skip`]) where no cgroup v2 hierarchy is writable here.
    ///
    /// # Panics
    ///
    /// Where [`skip`] does, under `BROOD_REQUIRE_CGROUP=1`.
    pub fn new(label: &str) -> Option<Scratch> {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let own = match own_dir() {
            Ok(dir) => dir,
            Err(e) => return skip(&format!("no cgroup v2 hierarchy: {e}")),
        };
        sweep_dead_scratches(&own);
        let me = std::process::id();
        let Some(start) = start_time(me) else {
            return skip("cannot read this process's start time from /proc");
        };
        let path = own.join(format!(
            "{SCRATCH_PREFIX}{me}-{start}-{}-{label}",
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        if let Err(e) = std::fs::create_dir(&path) {
            return skip(&format!("cannot create {}: {e}", path.display()));
        }
        Some(Scratch { path })
    }

    /// The scratch cgroup's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// [`populated`] for this cgroup.
    pub fn populated(&self) -> bool {
        populated(&self.path)
    }

    /// [`subdirectories`] of this cgroup.
    pub fn subdirectories(&self) -> Vec<String> {
        subdirectories(&self.path)
    }

    /// [`members`] of this cgroup.
    pub fn members(&self) -> Vec<u32> {
        members(&self.path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // cgroup.kill reaches the whole subtree, escapees included.
        let _ = std::fs::write(self.path.join("cgroup.kill"), "1");
        let drained = crate::eventually_blocking(DRAIN_LIMIT, || !populated(&self.path));
        let removed = remove_tree(&self.path);
        if !drained || removed.is_err() {
            let _ = writeln!(
                io::stderr(),
                "brood-testkit: scratch cgroup {} left behind (drained: {drained}, removed: {removed:?})",
                self.path.display()
            );
        }
    }
}

/// Removes the cgroup at `dir` and every cgroup below it, deepest first
/// (a cgroup is removed with `rmdir`; its files go with it).
fn remove_tree(dir: &Path) -> io::Result<()> {
    for sub in subdirectories(dir) {
        remove_tree(&dir.join(sub))?;
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Removes the scratch cgroups under `own` whose test process is gone (not
/// running, or its pid now belongs to a process started at another time).
fn sweep_dead_scratches(own: &Path) {
    for name in subdirectories(own) {
        let Some(rest) = name.strip_prefix(SCRATCH_PREFIX) else {
            continue;
        };
        let mut fields = rest.split('-');
        let (Some(Ok(pid)), Some(Ok(start))) = (
            fields.next().map(str::parse::<u32>),
            fields.next().map(str::parse::<u64>),
        ) else {
            continue;
        };
        if start_time(pid) != Some(start) {
            let dir = own.join(&name);
            let _ = std::fs::write(dir.join("cgroup.kill"), "1");
            if crate::eventually_blocking(DRAIN_LIMIT, || !populated(&dir)) {
                let _ = remove_tree(&dir);
            }
        }
    }
}

/// Field 22 of `/proc/<pid>/stat`: when the process started, in clock
/// ticks since boot; `None` if there is no such process.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name (in parentheses, which it may itself hold)
    // come the fields from 3 (the state) on; 22 is the 20th of those.
    stat[stat.rfind(')')? + 2..]
        .split(' ')
        .nth(19)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_read() {
        let me = start_time(std::process::id()).unwrap();
        assert!(me > 0);
        assert_eq!(start_time(std::process::id()), Some(me));
    }

    #[test]
    fn a_scratch_is_made_killed_and_removed() {
        let Some(scratch) = Scratch::new("kit-self-test") else {
            return;
        };
        let path = scratch.path().to_owned();
        assert!(path.join("cgroup.procs").exists());
        assert!(!scratch.populated());
        std::fs::create_dir(path.join("inner")).unwrap();
        assert_eq!(scratch.subdirectories(), ["inner"]);
        let mut sleeper = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        std::fs::write(path.join("inner/cgroup.procs"), sleeper.id().to_string()).unwrap();
        assert_eq!(scratch.members(), [sleeper.id()]);
        assert!(scratch.populated());
        drop(scratch);
        // Killed by the drop's cgroup.kill, and reaped here.
        let status = sleeper.wait().unwrap();
        assert!(!status.success());
        assert!(!path.exists());
    }
}
