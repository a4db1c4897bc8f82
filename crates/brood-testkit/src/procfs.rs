//! Processes as `/proc` shows them: our children and zombies, whether a pid
//! lives, and fields of `/proc/self/status`.
//!
//! Reading `/proc` is how a test looks at the process table without asking
//! the code under test, and without reaping anything.

use std::path::Path;
use std::time::Duration;

/// `(state, ppid)` of `pid` from `/proc/<pid>/stat`; `None` once it is gone.
///
/// The state is one letter: `R`, `S`, `D`, `T`, `Z` (zombie), `X` (dead) ...
pub fn stat_state_ppid(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself contain spaces and
    // parentheses: the state follows the last `)`.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// The state letter of `pid` (`Z` for a zombie), if it exists.
pub fn state(pid: u32) -> Option<char> {
    stat_state_ppid(pid).map(|(state, _)| state)
}

/// Field `n` of `/proc/<pid>/stat`, numbered from 1 as in proc(5), for the
/// numeric fields from the state's successor on (4 is the parent, 5 the
/// process group, 6 the session, 22 the start time); `None` once `pid` is
/// gone.
pub fn stat_field(pid: u32, n: usize) -> Option<u64> {
    assert!(n >= 4, "field {n} is not a number after the command name");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(n - 3)?.parse().ok()
}

/// The start time of `pid` (field 22, in clock ticks since boot): with the
/// pid, it names one process even across pid reuse.
pub fn start_time(pid: u32) -> Option<u64> {
    stat_field(pid, 22)
}

/// The cgroup v2 path `pid` runs in (the `0::` line of `/proc/<pid>/cgroup`).
pub fn cgroup_of(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_owned)
}

/// Makes the next process created in this pid namespace get pid `pid`, if
/// the kernel lets us (root in the namespace): `ns_last_pid` is the last pid
/// handed out. Another process may still take it first; a pid in use (a
/// zombie's included) is skipped by the kernel. Returns whether the write
/// was allowed.
pub fn aim_next_pid(pid: u32) -> bool {
    std::fs::write("/proc/sys/kernel/ns_last_pid", format!("{}", pid - 1)).is_ok()
}

/// Whether `pid` exists at all, zombies included.
pub fn pid_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether `pid` is alive: it exists and is neither a zombie nor dead.
pub fn alive(pid: u32) -> bool {
    stat_state_ppid(pid).is_some_and(|(state, _)| !matches!(state, 'Z' | 'X'))
}

/// Pids of this process's children, in any state.
pub fn child_pids() -> Vec<u32> {
    children_in_state(|_| true)
}

/// Pids of this process's children that are zombies.
pub fn zombie_children() -> Vec<u32> {
    children_in_state(|state| state == 'Z')
}

fn children_in_state(want: impl Fn(char) -> bool) -> Vec<u32> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| stat_state_ppid(pid).is_some_and(|(state, ppid)| ppid == me && want(state)))
        .collect()
}

/// The pids in a file of pids, one per line (lines that are not a pid are
/// skipped; a missing file has none).
pub fn read_pids(path: &Path) -> Vec<u32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect()
}

/// Asserts that at least `min` pids are listed in `path` and that none of
/// them is alive, waiting up to 5 s for the kernel to finish delivering a
/// kill. Survivors are killed before the assertion fails, so a failing test
/// leaves nothing running.
pub fn assert_all_dead(path: &Path, min: usize) {
    let pids = read_pids(path);
    assert!(
        pids.len() >= min,
        "expected {min} pids in {}, got {pids:?}",
        path.display()
    );
    let dead = crate::eventually_blocking(Duration::from_secs(5), || {
        pids.iter().all(|&pid| !alive(pid))
    });
    let survivors: Vec<u32> = pids.iter().copied().filter(|&pid| alive(pid)).collect();
    for &pid in &survivors {
        // SAFETY: kill(2) takes two integers; at worst it fails with ESRCH.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    }
    assert!(dead, "survivors: {survivors:?}");
}

/// The value of field `name` in `/proc/self/status` (the text after
/// `name:`, trimmed).
pub fn status_field(name: &str) -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(':')?;
        Some(value.trim().to_owned())
    })
}

/// A `kB` field of `/proc/self/status`, in KiB.
pub fn status_kib(name: &str) -> Option<u64> {
    status_field(name)?
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Resident set size of this process (`VmRSS`), KiB.
pub fn vm_rss_kib() -> Option<u64> {
    status_kib("VmRSS")
}

/// Peak resident set size of this process image (`VmHWM`), KiB.
///
/// Not `getrusage`'s `ru_maxrss`: the kernel seeds that at `execve` with the
/// high-water mark of the address space being replaced, which for a child
/// started with `vfork` (as `posix_spawn` does) is its parent's.
pub fn vm_hwm_kib() -> Option<u64> {
    status_kib("VmHWM")
}

/// Whether this process catches SIGCHLD with a handler (`SigCgt`).
pub fn sigchld_caught() -> bool {
    let mask = status_field("SigCgt").expect("SigCgt in /proc/self/status");
    let mask = u64::from_str_radix(&mask, 16).expect("SigCgt is a hex mask");
    mask & (1 << (libc::SIGCHLD - 1)) != 0
}

/// The pid of the process tracing this one (`TracerPid`), 0 if none.
pub fn tracer_pid() -> Option<u32> {
    status_field("TracerPid")?.parse().ok()
}

/// A mark a test puts in the environment of the processes it starts
/// (`BROOD_TEST_MARK=<label>-<pid>-<n>`), so that it can find every one of
/// them in `/proc` afterwards, however they detached, without knowing
/// their pids. A recycled pid never passes for one of them: the process
/// that reused it does not carry the mark.
///
/// Dropping the marker SIGKILLs every live process that carries it, so a
/// failing test leaves nothing running.
#[derive(Debug)]
pub struct Marker {
    value: String,
}

impl Marker {
    /// The environment variable that holds the mark.
    pub const VAR: &'static str = "BROOD_TEST_MARK";

    /// A mark unique to this process and call; `label` names the test.
    pub fn new(label: &str) -> Marker {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        Marker {
            value: format!(
                "{label}-{}-{}",
                std::process::id(),
                COUNT.fetch_add(1, Ordering::Relaxed)
            ),
        }
    }

    /// The variable's value, to set in a command's environment as
    /// [`Marker::VAR`].
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The live processes (zombies excluded) whose environment holds the
    /// mark, this one excepted.
    pub fn live(&self) -> Vec<u32> {
        let entry = format!("{}={}", Self::VAR, self.value);
        let me = std::process::id();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| pid != me)
            .filter(|&pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|&b| b == 0).any(|var| var == entry.as_bytes()))
            })
            .filter(|&pid| alive(pid))
            .collect()
    }

    /// Asserts that no process carries the mark any more, at once: for a
    /// program that promises to stop its processes before it exits. (A
    /// zombie that its new parent has not reaped yet counts as gone.)
    /// Survivors are killed before the assertion fails.
    pub fn assert_none_left(&self, what: &str) {
        let survivors = self.live();
        let described: Vec<String> = survivors.iter().map(|&pid| describe(pid)).collect();
        self.kill_all();
        assert!(
            survivors.is_empty(),
            "{what}: processes survived: {}",
            described.join("; ")
        );
    }

    /// SIGKILLs every live process that carries the mark.
    pub fn kill_all(&self) {
        for pid in self.live() {
            // SAFETY: kill(2) takes two integers; at worst it fails with
            // ESRCH (the process exited meanwhile).
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// `pid: command line`, for messages.
fn describe(pid: u32) -> String {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let text: Vec<String> = cmdline
        .split(|&b| b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    format!("pid {pid}: {}", text.join(" "))
}
