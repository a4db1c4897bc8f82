//! The cgroup v2 layer behind containment (`Containment::Cgroup`): one
//! fresh cgroup per contained child, through which its whole tree is
//! stopped, waited for and accounted, however its members detached.
//!
//! - [`discover`]: the cgroup2 mount (`/proc/self/mountinfo`) and the cgroup
//!   this process runs in (`/proc/self/cgroup`).
//! - [`CgroupParent`]: a validated directory to create per-child cgroups in,
//!   and the sweep of stale ones.
//! - [`ChildCgroup`]: one per-child cgroup, with the descriptors a spawn
//!   needs, its members, the stop primitives and its figures.
//! - [`PopulatedWatch`]: waiting for `populated 0` in brood's background
//!   thread (through its poller) or in a thread that may block.
//!
//! # Where the per-child cgroups go
//!
//! By default directly below the cgroup this process runs in (under systemd
//! with `Delegate=yes`, that is the delegated subtree; on a machine without
//! systemd it may be the hierarchy's root). cgroup v2's "no internal
//! processes" rule forbids a non-root cgroup to both hold processes and
//! enable domain controllers (memory, io) for its children, and the kernel
//! enforces it from both sides: it refuses to enable a controller in
//! `cgroup.subtree_control` while the cgroup has processes, and refuses to
//! place a process in a cgroup that has controllers enabled there. Our own
//! cgroup holds this process, so it has no controllers enabled for
//! children, and therefore:
//!
//! - creating and populating children there always works where we may
//!   write: no state of our own cgroup can refuse it;
//! - those children get no domain controllers, only the core files:
//!   `cgroup.events`, `cgroup.freeze`, `cgroup.kill` and the `usage_usec`,
//!   `user_usec` and `system_usec` of `cpu.stat`, which is all containment
//!   needs. `memory.peak` is absent, so peak memory is `None`.
//!
//! brood does not move the program's own process into a leaf to make room
//! for controllers (as systemd does with a service's "main" cgroup): a
//! library must not change where its host runs. A program that wants
//! `memory.peak` arranges it and passes the parent explicitly: its own
//! process in `C/main`, `+memory` in `C/cgroup.subtree_control` and in
//! `C/jobs/cgroup.subtree_control`, and `cgroup_parent("C/jobs")`.
//!
//! A parent given explicitly is validated by [`CgroupParent::open`]: it must
//! exist, be on cgroup2, be a `domain` cgroup (a child of a `threaded` or
//! `domain threaded` cgroup starts `domain invalid` and cannot hold a
//! process), be writable, and allow this process to move processes below
//! it (write permission on the common ancestor's `cgroup.procs`).
//!
//! # Names and stale cgroups
//!
//! A per-child cgroup is named `brood-<pidns>-<pid>-<start>-<seq>` (see
//! [`name`]). The first time a process creates a cgroup in a directory, it
//! removes the *empty* cgroups there whose name is brood's and whose creator
//! is gone: same pid namespace, and no process with that pid or one with a
//! different start time. Everything else is left alone.
//!
//! # Stop primitives
//!
//! [`ChildCgroup::signal_members`] freezes the cgroup, signals every member
//! through a pidfd verified against a second listing, and thaws it:
//! no member forks past the signal, and no signal reaches a recycled pid.
//! [`ChildCgroup::kill`] writes `cgroup.kill`, which also reaches processes
//! forked after the first stop. Grace periods and timers are the caller's.
//!
//! On other systems the layer compiles to the same items, which fail with
//! `Unsupported` through `sys::cgroupfs`'s stand-ins; [`SUPPORTED`] says so
//! up front.
//!
//! Owns: [`SUPPORTED`]. Calls: the files below.

// The cgroup layer's files, top down:
//
//   parent.rs    CgroupParent: validation, creation, the stale sweep
//   pool.rs      Pool: empty cgroups kept for the next child
//   child.rs     ChildCgroup: one tenancy: members, stops, figures, its end
//   dir.rs       CgroupDir: a cgroup's directory and the files kept open
//   events.rs    cgroup.events: populated/frozen, waits without polling
//   fs.rs        reading interface files, listing and removing cgroups
//   discover.rs  the cgroup2 mount and this process's cgroup
//   name.rs      the naming scheme and the creator's identity
//   usage.rs     cpu.stat and memory.peak

mod child;
mod dir;
mod discover;
mod events;
mod fs;
mod name;
mod parent;
mod pool;
mod usage;

pub(crate) use child::{ChildCgroup, Signalled};
pub(crate) use events::PopulatedWatch;
pub(crate) use parent::CgroupParent;
pub(crate) use pool::Pool;
pub(crate) use usage::CgroupUsage;

/// Whether this platform has cgroups at all (only Linux does).
pub(crate) const SUPPORTED: bool = crate::sys::cgroupfs::SUPPORTED;

// Tests against the real cgroup2 hierarchy of the machine.
//
// Each test works in a private parent cgroup of its own,
// `brood-test-<pid>-<start>-<n>-<label>` under this process's cgroup (a
// name brood's stale sweep never matches), so tests running at the same
// time, in one process or several, never meet. The parent is killed,
// drained and removed when the test ends, passed or panicked; empty ones
// of test processes that were killed outright are removed by the next run.
//
// Where no writable cgroup2 hierarchy exists, a test prints
// `BROOD-CGROUP-SKIP: <reason>` straight to stderr and returns; with
// `BROOD_REQUIRE_CGROUP=1` in the environment it fails instead, which is
// how CI makes sure they ran.
#[cfg(test)]
mod tests {
    use super::discover;
    use super::fs::{self, remove_tree, subdirectories};
    use super::name::{self, CgroupName, Creator};
    use super::*;
    use crate::sys::poller::Poller;
    use crate::sys::spawn::install_placement_hook;
    use crate::sys::{self, cgroupfs};
    use std::fs::File;
    use std::io::{self, Read, Write};
    use std::os::fd::{AsFd, AsRawFd};
    use std::os::unix::process::ExitStatusExt;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// The bound on every wait in these tests; generous for a loaded machine.
    const PATIENCE: Duration = Duration::from_secs(20);

    fn skip<T>(reason: &str) -> Option<T> {
        let line = format!("BROOD-CGROUP-SKIP: {reason}\n");
        if std::env::var_os("BROOD_REQUIRE_CGROUP").is_some_and(|v| v != "0") {
            panic!("{line}(BROOD_REQUIRE_CGROUP is set, so this is a failure)");
        }
        // Not `eprintln!`: the test harness captures that; a script must see it.
        let _ = io::stderr().write_all(line.as_bytes());
        None
    }

    const TEST_PREFIX: &str = "brood-test-";

    /// Removes the (empty) test parents of test processes that are gone, such
    /// as ones killed by a runner's timeout before their cleanup ran.
    fn sweep_dead_test_parents(outer: &CgroupParent) {
        for entry in subdirectories(outer.dir_fd()).unwrap_or_default() {
            let Some(rest) = entry.to_str().and_then(|e| e.strip_prefix(TEST_PREFIX)) else {
                continue;
            };
            let mut fields = rest.split('-').map(str::parse::<u64>);
            let (Some(Ok(pid)), Some(Ok(start))) = (fields.next(), fields.next()) else {
                continue;
            };
            let gone = match name::start_time_of(pid as u32) {
                Ok(None) => true,
                Ok(Some(now)) => now != start,
                Err(_) => false,
            };
            if gone {
                let _ = remove_tree(outer.dir_fd(), Path::new(&entry), 0);
            }
        }
    }

    /// A private parent cgroup for one test, removed with everything in it on drop.
    struct TestParent {
        parent: Arc<CgroupParent>,
        path: PathBuf,
        outer: File,
        name: String,
    }

    impl TestParent {
        fn new(label: &str) -> Option<TestParent> {
            static COUNT: AtomicUsize = AtomicUsize::new(0);
            let own = match discover::own_cgroup_dir() {
                Ok(dir) => dir,
                Err(e) => return skip(&format!("no cgroup2 hierarchy: {e}")),
            };
            let outer_parent = match CgroupParent::open(&own) {
                Ok(p) => p,
                Err(e) => return skip(&format!("this process's cgroup is not usable: {e}")),
            };
            let me = name::this_process().unwrap();
            sweep_dead_test_parents(&outer_parent);
            let name = format!(
                "{TEST_PREFIX}{}-{}-{}-{label}",
                me.pid,
                me.start_time,
                COUNT.fetch_add(1, Ordering::Relaxed)
            );
            if let Err(e) = cgroupfs::mkdir_at(outer_parent.dir_fd(), Path::new(&name), 0o755) {
                return skip(&format!("cannot create a cgroup in {}: {e}", own.display()));
            }
            let path = own.join(&name);
            let outer = File::open(&own).unwrap();
            let guard = TestParent {
                parent: Arc::new(CgroupParent::open(&path).expect("a fresh test cgroup validates")),
                path,
                outer,
                name,
            };
            Some(guard)
        }

        /// The sorted names of the directories in the test parent.
        fn listing(&self) -> Vec<String> {
            let mut names: Vec<String> = subdirectories(self.parent.dir_fd())
                .unwrap()
                .into_iter()
                .map(|n| n.into_string().unwrap())
                .collect();
            names.sort();
            names
        }

        fn mkdir(&self, relative: &str) -> PathBuf {
            let path = self.path.join(relative);
            std::fs::create_dir(&path).unwrap();
            path
        }
    }

    impl Drop for TestParent {
        fn drop(&mut self) {
            // cgroup.kill reaches the whole subtree, escapees included.
            let dir = self.parent.dir_fd();
            if let Ok(mut kill) =
                cgroupfs::open_file_at(dir, Path::new("cgroup.kill"), libc::O_WRONLY)
            {
                let _ = kill.write_all(b"1");
            }
            let drained = events::open_events(dir)
                .map(|events| PopulatedWatch::new(std::sync::Arc::new(events)))
                .and_then(|w| w.wait_empty_timeout(PATIENCE));
            let removed = remove_tree(self.outer.as_fd(), Path::new(&self.name), 0);
            if !matches!(drained, Ok(true)) || removed.is_err() {
                let _ = writeln!(
                    io::stderr(),
                    "cgroup test cleanup of {} failed: drained {drained:?}, removed {removed:?}",
                    self.path.display()
                );
            }
        }
    }

    /// A process started by a test; killed and reaped if the test ends early.
    struct Proc(std::process::Child);

    impl Drop for Proc {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// Runs `sh -c script` inside `cgroup` (placed before exec), with stdin and
    /// stdout piped.
    fn spawn_in(cgroup: &ChildCgroup, script: &str) -> Proc {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        Proc(spawn_placed(&mut cmd, cgroup.open_procs().unwrap().as_fd()))
    }

    /// Spawns `cmd` with std, moved into the cgroup whose `cgroup.procs` is
    /// open as `procs` before it execs: brood's own placement hook.
    fn spawn_placed(cmd: &mut Command, procs: std::os::fd::BorrowedFd<'_>) -> std::process::Child {
        let slot = install_placement_hook(cmd);
        let _armed = slot.arm(procs);
        cmd.spawn().unwrap()
    }

    /// Reads `n` lines from the child's stdout, failing after [`PATIENCE`].
    fn read_lines(proc: &mut Proc, n: usize) -> Vec<String> {
        let out = proc.0.stdout.as_mut().unwrap();
        let deadline = Instant::now() + PATIENCE;
        let mut text = String::new();
        while text.matches('\n').count() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {n} lines; got {text:?}"
            );
            if sys::fd::poll_readable([out.as_raw_fd()], left.as_millis() as i32).unwrap() {
                let mut buf = [0u8; 4096];
                let got = out.read(&mut buf).unwrap();
                assert!(got > 0, "stdout closed after {text:?}");
                text.push_str(std::str::from_utf8(&buf[..got]).unwrap());
            }
        }
        text.lines().map(str::to_owned).collect()
    }

    /// Descriptors of this process that point strictly below `path` (the test
    /// parent holds its own directory open).
    fn fds_under(path: &Path) -> Vec<PathBuf> {
        fds_at_or_under(path)
            .into_iter()
            .filter(|target| target != path)
            .collect()
    }

    /// Descriptors of this process that point to `path` or below it.
    fn fds_at_or_under(path: &Path) -> Vec<PathBuf> {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target.starts_with(path))
            .collect()
    }

    /// Field `n` (1-based, as in proc(5)) of `/proc/<pid>/stat`, for n >= 3.
    fn stat_field(pid: u32, n: usize) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 1..];
        after_name
            .split_whitespace()
            .nth(n - 3)
            .unwrap()
            .parse()
            .unwrap()
    }

    fn pending_signals(pid: u32) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        ["SigPnd:", "ShdPnd:"]
            .iter()
            .map(|key| {
                let line = status.lines().find(|l| l.starts_with(key)).unwrap();
                u64::from_str_radix(line[key.len()..].trim(), 16).unwrap()
            })
            .fold(0, |a, b| a | b)
    }

    /// Each pid with its command line, for failure messages.
    fn describe(pids: &[u32]) -> Vec<String> {
        pids.iter()
            .map(|pid| {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                format!("{pid} {:?} {stat}", String::from_utf8_lossy(&cmdline))
            })
            .collect()
    }

    fn wait_exit(pidfd: &std::os::fd::OwnedFd) {
        assert!(
            sys::fd::poll_readable([pidfd.as_raw_fd()], PATIENCE.as_millis() as i32).unwrap(),
            "process did not exit within {PATIENCE:?}"
        );
    }

    #[test]
    fn the_types_can_be_shared_with_the_background_thread() {
        fn shareable<T: Send + Sync>() {}
        shareable::<CgroupParent>();
        shareable::<ChildCgroup>();
        shareable::<PopulatedWatch>();
    }

    #[test]
    fn own_cgroup_is_found_and_is_the_default_parent() {
        let Ok(dir) = discover::own_cgroup_dir() else {
            let _: Option<()> = skip("no cgroup2 hierarchy shows this process's cgroup");
            return;
        };
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
        let me = std::process::id().to_string();
        assert!(
            procs.lines().any(|l| l == me),
            "{} does not list this process",
            dir.display()
        );
        let parent = match CgroupParent::default_parent() {
            Ok(p) => p,
            Err(e) => {
                let _: Option<()> = skip(&format!("the default parent is not usable: {e}"));
                return;
            }
        };
        assert_eq!(parent.path(), dir);
        assert!(Arc::ptr_eq(
            &parent,
            &CgroupParent::default_parent().unwrap()
        ));
        let child = parent.create_child(None).unwrap();
        assert_eq!(child.path().parent(), Some(dir.as_path()));
        child.remove().unwrap();
        assert!(!child.path().exists());
    }

    #[test]
    fn a_child_cgroup_is_created_with_its_descriptors_and_removed() {
        let Some(tp) = TestParent::new("create") else {
            return;
        };
        let cg = tp.parent.create_child(None).unwrap();
        let parsed = CgroupName::parse(cg.name()).expect("a brood name");
        assert_eq!(parsed.creator, name::this_process().unwrap());
        assert_eq!(cg.path(), tp.path.join(cg.name()));
        assert!(cg.path().is_dir());
        assert_eq!(
            cgroupfs::fs_type(cg.dir_fd()).unwrap(),
            cgroupfs::CGROUP2_SUPER_MAGIC
        );
        assert!(sys::fd::is_cloexec(cg.dir_fd()).unwrap());
        let procs = cg.open_procs().unwrap();
        assert!(sys::fd::is_cloexec(procs.as_fd()).unwrap());
        assert_eq!(
            std::fs::read_link(format!("/proc/self/fd/{}", procs.as_raw_fd())).unwrap(),
            cg.path().join("cgroup.procs")
        );
        drop(procs);
        assert!(!cg.populated().unwrap());
        assert!(cg.members().unwrap().is_empty());
        // The stop primitives work on an empty cgroup too.
        cg.freeze(PATIENCE).unwrap();
        assert!(cg.events().unwrap().frozen);
        cg.thaw().unwrap();
        cg.kill().unwrap();
        assert_eq!(
            cg.signal_members(libc::SIGTERM, PATIENCE).unwrap(),
            Signalled {
                members: 0,
                frozen: true
            }
        );

        let second = tp.parent.create_child(None).unwrap();
        assert_ne!(second.name(), cg.name());
        let second_path = second.path().to_path_buf();

        cg.remove().unwrap();
        assert!(!cg.path().exists());
        assert!(cg.is_removed());
        cg.remove().unwrap(); // twice is fine
        drop(second); // dropping removes it too
        assert!(!second_path.exists());
        drop(cg);
        assert_eq!(fds_under(&tp.path), Vec::<PathBuf>::new());
        assert!(tp.listing().is_empty());
    }

    #[test]
    fn two_hundred_populated_cycles_leave_the_parent_as_it_was() {
        let Some(tp) = TestParent::new("cycles") else {
            return;
        };
        tp.mkdir("unrelated");
        let before = tp.listing();
        for cycle in 0..200 {
            let cg = tp.parent.create_child(None).unwrap();
            let watch = cg.watch_populated();
            let mut cmd = Command::new("true");
            let slot = install_placement_hook(&mut cmd);
            let status = {
                let procs = cg.open_procs().unwrap();
                let _armed = slot.arm(procs.as_fd());
                cmd.status().unwrap()
            };
            assert!(status.success(), "cycle {cycle}: {status}");
            assert!(watch.wait_empty_timeout(PATIENCE).unwrap(), "cycle {cycle}");
            // Empty means removable at once: no retry needed.
            cg.remove().unwrap_or_else(|e| panic!("cycle {cycle}: {e}"));
            // One process has run in it, so it really held a member.
            assert!(cg.usage().unwrap().cpu > Duration::ZERO, "cycle {cycle}");
        }
        assert_eq!(tp.listing(), before);
        assert_eq!(fds_under(&tp.path), Vec::<PathBuf>::new());
    }

    #[test]
    fn members_include_setsid_and_double_forked_descendants() {
        let Some(tp) = TestParent::new("members") else {
            return;
        };
        let cg = tp.parent.create_child(None).unwrap();
        // The middle shell of the double fork runs in the foreground, so it has
        // exited (and been reaped) before the leader prints its line.
        let mut leader = spawn_in(
            &cg,
            r#"setsid sh -c 'echo setsid $$; exec sleep 1000' &
               sh -c 'sh -c "echo daemon \$\$; exec sleep 1000" &'
               echo leader $$
               exec sleep 1000"#,
        );
        let mut pids = std::collections::HashMap::new();
        for line in read_lines(&mut leader, 3) {
            let (role, pid) = line.split_once(' ').unwrap();
            pids.insert(role.to_string(), pid.parse::<u32>().unwrap());
        }
        let (leader_pid, setsid, daemon) = (pids["leader"], pids["setsid"], pids["daemon"]);
        assert_eq!(leader_pid, leader.0.id());

        let mut members = cg.members().unwrap();
        members.sort();
        let mut expected = vec![leader_pid, setsid, daemon];
        expected.sort();
        assert_eq!(members, expected);
        // They did escape the leader: a session of its own, and another parent.
        assert_eq!(stat_field(setsid, 6), u64::from(setsid), "session id");
        assert_ne!(stat_field(leader_pid, 6), u64::from(setsid));
        assert_ne!(stat_field(daemon, 4), u64::from(leader_pid), "parent");
        assert!(cg.populated().unwrap());

        cg.kill().unwrap();
        assert!(cg.watch_populated().wait_empty_timeout(PATIENCE).unwrap());
        assert!(cg.members().unwrap().is_empty());
    }

    #[test]
    fn kill_stops_a_tree_that_ignores_sigterm() {
        let Some(tp) = TestParent::new("kill") else {
            return;
        };
        let cg = tp.parent.create_child(None).unwrap();
        // Ignored signals stay ignored across exec, so every sleep ignores TERM.
        let mut leader = spawn_in(
            &cg,
            r#"trap '' TERM
               sleep 1000 &
               setsid sleep 1000 &
               sh -c 'sleep 1000 &'
               echo ready
               exec sleep 1000"#,
        );
        read_lines(&mut leader, 1);
        let watch = cg.watch_populated();
        let signalled = cg.signal_members(libc::SIGTERM, PATIENCE).unwrap();
        assert!(signalled.frozen);
        // The leader and its three sleeps (the middle shell was reaped).
        assert_eq!(signalled.members, 4, "{signalled:?}");
        // Not frozen any more: the knob is back to 0.
        assert_eq!(
            fs::read_small(cg.dir_fd(), "cgroup.freeze").unwrap().trim(),
            "0"
        );
        // Ignored, so discarded: nobody died of it.
        assert!(cg.populated().unwrap());

        cg.kill().unwrap();
        assert!(watch.wait_empty_timeout(PATIENCE).unwrap());
        assert!(cg.members().unwrap().is_empty());
        let status = leader.0.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
        cg.remove().unwrap();
    }

    #[test]
    fn a_frozen_stop_reaches_every_member_of_a_forking_tree() {
        let Some(tp) = TestParent::new("forking") else {
            return;
        };
        let cg = tp.parent.create_child(None).unwrap();
        // 300 quiet members, then one that forks as fast as it can (bounded, so
        // that a broken stop cannot run away). Members are listed in the order
        // they joined, so the forker comes last and, without the freeze, keeps
        // forking while the 300 before it are signalled.
        let mut leader = spawn_in(
            &cg,
            r#"i=0
               while [ $i -lt 300 ]; do sleep 1000 & i=$((i+1)); done
               sh -c 'i=0
                      while [ $i -lt 2000 ]; do
                        sleep 1000 &
                        i=$((i+1))
                        if [ $i = 5 ]; then echo ready; fi
                      done
                      wait' &
               wait"#,
        );
        read_lines(&mut leader, 1);
        let watch = cg.watch_populated();
        let signalled = cg.signal_members(libc::SIGTERM, PATIENCE).unwrap();
        assert!(signalled.frozen);
        assert!(signalled.members > 300, "{signalled:?}");
        // No cgroup.kill: SIGTERM alone must empty it. Had a process been forked
        // between listing and signalling, it would survive and this would fail.
        let empty = watch.wait_empty_timeout(PATIENCE).unwrap();
        assert!(
            empty,
            "survivors of the stop: {:?}",
            describe(&cg.members().unwrap())
        );
        let status = leader.0.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGTERM), "{status}");
        cg.remove().unwrap();
    }

    #[test]
    fn a_handled_signal_waits_for_the_thaw() {
        let Some(tp) = TestParent::new("freeze") else {
            return;
        };
        let cg = tp.parent.create_child(None).unwrap();
        let mut leader = spawn_in(
            &cg,
            // The background job says `ready` itself: a job just forked still
            // runs the shell's TERM handler until it resets it, and would
            // swallow the signal.
            r#"trap 'kill $! 2>/dev/null; echo terminated; exit 0' TERM
               (echo ready; exec sleep 1000) &
               wait $!"#,
        );
        read_lines(&mut leader, 1);
        let pid = leader.0.id();

        cg.freeze(PATIENCE).unwrap();
        assert!(cg.events().unwrap().frozen);
        // The shell and its sleep.
        assert_eq!(cg.signal_frozen_members(libc::SIGTERM).unwrap(), 2);
        // While frozen, the shell cannot run its handler: TERM stays pending.
        // (The sleep, which has no handler, is killed even though it is frozen.)
        assert_ne!(pending_signals(pid) & (1 << (libc::SIGTERM - 1)), 0);
        assert!(cg.members().unwrap().contains(&pid));
        cg.thaw().unwrap();
        assert_eq!(read_lines(&mut leader, 1), ["terminated"]);
        let empty = cg.watch_populated().wait_empty_timeout(PATIENCE).unwrap();
        assert!(empty, "left: {:?}", describe(&cg.members().unwrap()));
        assert_eq!(leader.0.wait().unwrap().code(), Some(0));
    }

    #[test]
    fn tree_cpu_is_counted_after_the_leader_exited() {
        let Some(tp) = TestParent::new("cpu") else {
            return;
        };
        let cg = tp.parent.create_child(None).unwrap();
        // The grandchild waits for our go (an explicit redirection: background
        // jobs get /dev/null as stdin), burns CPU, then reports its own CPU time.
        let mut leader = spawn_in(
            &cg,
            r#"exec 3<&0
               (read go <&3; i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; times) &
               exit 0"#,
        );
        // Taken first: std's wait closes the stdin it still holds.
        let mut go = leader.0.stdin.take().unwrap();
        assert!(leader.0.wait().unwrap().success());
        assert!(
            cg.populated().unwrap(),
            "the grandchild outlives the leader"
        );
        let watch = cg.watch_populated();
        let before = cg.usage().unwrap();

        go.write_all(b"go\n").unwrap();
        drop(go);
        let times = read_lines(&mut leader, 1).remove(0);
        assert!(watch.wait_empty_timeout(PATIENCE).unwrap());
        let after = cg.usage().unwrap();

        // `times` prints "0m0.210000s 0m0.000000s": user, system of the shell.
        let seconds = |field: &str| -> Duration {
            let (m, s) = field.trim_end_matches('s').split_once('m').unwrap();
            Duration::from_secs(m.parse::<u64>().unwrap() * 60)
                + Duration::from_secs_f64(s.parse().unwrap())
        };
        let mut fields = times.split_whitespace();
        let reported = seconds(fields.next().unwrap()) + seconds(fields.next().unwrap());
        assert!(reported >= Duration::from_millis(50), "{times}");
        assert!(
            after.cpu >= reported,
            "cgroup counted {:?}, the grandchild alone reported {reported:?}",
            after.cpu
        );
        assert!(after.user > before.user);
        assert_eq!(
            after.peak_memory.is_some(),
            cg.path().join("memory.peak").exists()
        );

        cg.remove().unwrap();
        assert!(!cg.path().exists());
        let kept = cg.usage().unwrap();
        assert!(kept.cpu >= after.cpu);
        assert_eq!(cg.usage().unwrap(), kept);
    }

    #[test]
    fn figures_read_once_the_tree_is_seen_empty_are_the_ones_kept() {
        let Some(tp) = TestParent::new("final-figures") else {
            return;
        };
        let cg = tp.parent.create_child(None).unwrap();
        // A leader that burns some CPU, then a sleeper it leaves behind.
        let mut leader = spawn_in(
            &cg,
            "i=0; while [ $i -lt 50000 ]; do i=$((i+1)); done; sleep 1000 & echo $!",
        );
        let sleeper: u32 = read_lines(&mut leader, 1)[0].parse().unwrap();
        assert!(leader.0.wait().unwrap().success());
        // Populated: listed, and the figures are live.
        assert_eq!(cg.members().unwrap(), vec![sleeper]);
        let live = cg.usage().unwrap();
        assert!(live.cpu > Duration::ZERO);

        let watch = cg.watch_populated();
        assert!(watch.populated().unwrap());
        cg.kill().unwrap();
        assert!(watch.wait_empty_timeout(PATIENCE).unwrap());
        assert_eq!(cg.members().unwrap(), Vec::<u32>::new());
        let seen_empty = cg.usage().unwrap();
        assert!(seen_empty.cpu >= live.cpu);
        // Kept, not read again: by the removal, and after it.
        cg.remove().unwrap();
        assert!(!cg.path().exists());
        assert_eq!(cg.usage().unwrap(), seen_empty);
    }

    #[test]
    fn populated_watch_wakes_once_when_the_last_member_exits() {
        let Some(tp) = TestParent::new("watch") else {
            return;
        };
        let cg = tp.parent.create_child(None).unwrap();
        let mut leader = spawn_in(&cg, "sleep 1000 & echo $!; exec cat >/dev/null");
        let sleeper: u32 = read_lines(&mut leader, 1)[0].parse().unwrap();
        let sleeper_fd = sys::pidfd::open(sleeper).unwrap();

        let watch = Arc::new(cg.watch_populated());
        assert!(watch.populated().unwrap());
        // A bounded wait on a populated cgroup times out after one read and one
        // poll, not a loop of reads.
        assert!(!watch.wait_empty_timeout(Duration::from_millis(50)).unwrap());
        let reads_at_start = watch.reads();
        assert_eq!(reads_at_start, 2);

        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = {
            let watch = Arc::clone(&watch);
            std::thread::spawn(move || tx.send(watch.wait_empty_timeout(PATIENCE)).unwrap())
        };
        // The first member to exit does not end the wait: the kernel notifies
        // only when the whole tree is empty.
        sys::process::kill(sleeper, libc::SIGKILL).unwrap();
        wait_exit(&sleeper_fd);
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
        assert!(
            watch.reads() <= reads_at_start + 1,
            "{} reads",
            watch.reads()
        );

        drop(leader.0.stdin.take()); // cat sees EOF: the last member exits
        let empty = rx.recv_timeout(PATIENCE).expect("woken").unwrap();
        assert!(empty);
        waiter.join().unwrap();
        // Its first read, then one after the single notification.
        assert!(
            watch.reads() <= reads_at_start + 2,
            "{} reads",
            watch.reads()
        );
        assert!(leader.0.wait().unwrap().success());
        assert!(!watch.populated().unwrap());
    }

    #[test]
    fn the_background_threads_poller_reports_the_emptying_once() {
        let Some(tp) = TestParent::new("epoll") else {
            return;
        };
        let cg = tp.parent.create_child(None).unwrap();
        let mut leader = spawn_in(&cg, "exec cat >/dev/null");
        let watch = cg.watch_populated();
        // The very poller and registration brood's background thread uses.
        let (wake, _wake_write) = sys::fd::nonblocking_pipe().unwrap();
        let poller = Poller::new(wake.as_raw_fd()).unwrap();
        poller.watch_changes(watch.as_fd().as_raw_fd(), 7).unwrap();
        let mut tokens = Vec::new();
        // A descriptor that never read the file reports a change when armed
        // (kernfs records what a descriptor has seen when it reads), so the
        // thread's first look comes at once.
        assert!(!poller.wait(&mut tokens, 50).unwrap());
        assert_eq!(tokens, [7]);
        assert!(watch.populated().unwrap());
        // Read: nothing more until a change. The file always polls readable,
        // which must not be reported.
        tokens.clear();
        assert!(!poller.wait(&mut tokens, 50).unwrap());
        assert_eq!(tokens, Vec::<u64>::new());

        drop(leader.0.stdin.take());
        poller
            .wait(&mut tokens, PATIENCE.as_millis() as i32)
            .unwrap();
        assert_eq!(tokens, [7]);
        assert!(!watch.populated().unwrap());
        // Edge-triggered: reported once, not again.
        tokens.clear();
        poller.wait(&mut tokens, 50).unwrap();
        assert_eq!(tokens, Vec::<u64>::new());
        assert!(leader.0.wait().unwrap().success());
    }

    /// Validation must fail with `what` in the message, naming `path`, and
    /// leave no descriptor behind.
    fn assert_rejected(path: &Path, what: &str) -> io::Error {
        let before = fds_at_or_under(path);
        let err = CgroupParent::open(path).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&path.display().to_string()),
            "{message} does not name {}",
            path.display()
        );
        assert!(message.contains(what), "{message} does not say {what:?}");
        assert_eq!(fds_at_or_under(path), before);
        err
    }

    #[test]
    fn invalid_parents_are_rejected_with_the_reason() {
        let Some(tp) = TestParent::new("validate") else {
            return;
        };
        let before = tp.listing();

        let missing = tp.path.join("does-not-exist");
        let err = assert_rejected(&missing, "does not exist");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(!missing.exists());

        assert_rejected(Path::new("/tmp"), "is not on a cgroup v2 file system");
        let err = assert_rejected(&tp.path.join("cgroup.procs"), "is not a directory");
        assert_eq!(err.kind(), io::ErrorKind::NotADirectory);

        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        if let Some(v1) = discover::first_cgroup1_mount(&mountinfo) {
            assert_rejected(&v1, "cgroup v1");
        }

        // A threaded subtree: its children start `domain invalid`.
        let threaded_root = tp.mkdir("thr");
        let threaded = tp.mkdir("thr/t");
        std::fs::write(threaded.join("cgroup.type"), "threaded").unwrap();
        assert_rejected(&threaded_root, "`domain threaded` cgroup");
        assert_rejected(&threaded, "`threaded` cgroup");
        assert_eq!(
            subdirectories(File::open(&threaded).unwrap().as_fd()).unwrap(),
            Vec::<std::ffi::OsString>::new()
        );
        std::fs::remove_dir(&threaded).unwrap();
        std::fs::remove_dir(&threaded_root).unwrap();

        // Not writable, for root too: a read-only bind mount, in a mount
        // namespace private to one thread, so nothing else ever sees it.
        let path = tp.path.clone();
        let read_only = std::thread::spawn(move || {
            cgroupfs::thread_private_read_only_bind(&path)?;
            let err = assert_rejected(&path, "read-only mount");
            assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
            io::Result::Ok(())
        })
        .join()
        .unwrap();
        if let Err(e) = read_only {
            let _: Option<()> = skip(&format!("cannot make a private read-only bind mount: {e}"));
        }
        // The bind mount went away with the thread.
        assert!(CgroupParent::open(&tp.path).is_ok());
        assert_eq!(tp.listing(), before);
    }

    #[test]
    fn a_failed_creation_leaves_nothing_behind() {
        let Some(tp) = TestParent::new("limit") else {
            return;
        };
        std::fs::write(tp.path.join("cgroup.max.descendants"), "0").unwrap();
        let err = tp.parent.create_child(None).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("cgroup.max.descendants"), "{message}");
        assert!(
            message.contains(&tp.path.display().to_string()),
            "{message}"
        );
        assert!(tp.listing().is_empty());
        assert_eq!(fds_under(&tp.path), Vec::<PathBuf>::new());
    }

    /// A name as another brood process would have made it.
    fn brood_name(pid_namespace: u64, pid: u32, start_time: u64, sequence: u64) -> String {
        CgroupName {
            creator: Creator {
                pid_namespace,
                pid,
                start_time,
            },
            sequence,
        }
        .format()
    }

    #[test]
    fn stale_sweep_removes_only_empty_cgroups_of_gone_creators() {
        let Some(tp) = TestParent::new("stale") else {
            return;
        };
        let me = name::this_process().unwrap();
        let ns = me.pid_namespace;
        let dead = {
            let mut child = Command::new("true").spawn().unwrap();
            let pid = child.id();
            child.wait().unwrap();
            pid
        };
        let sleeper = Proc(Command::new("sleep").arg("1000").spawn().unwrap());
        let sleeper_pid = sleeper.0.id();
        let sleeper_start = name::start_time_of(sleeper_pid).unwrap().unwrap();

        let reused_pid = brood_name(ns, me.pid, me.start_time + 1, 0);
        let dead_creator = brood_name(ns, dead, 1, 0);
        let nested = brood_name(ns, dead, 1, 1);
        let live_creator = brood_name(ns, sleeper_pid, sleeper_start, 0);
        let other_namespace = brood_name(ns + 1, dead, 1, 0);
        let still_running = brood_name(ns, dead, 1, 2);
        let ours = brood_name(ns, me.pid, me.start_time, 999_999);
        for dir in [
            &reused_pid,
            &dead_creator,
            &nested,
            &live_creator,
            &other_namespace,
            &still_running,
            &ours,
            "brood-test-1-2-3",
            "unrelated",
        ] {
            tp.mkdir(dir);
        }
        tp.mkdir(&format!("{nested}/inner"));
        tp.mkdir(&format!("{nested}/inner/deeper"));
        // A job that outlived its crashed brood: its cgroup stays.
        let holder = File::options()
            .write(true)
            .open(tp.path.join(&still_running).join("cgroup.procs"))
            .unwrap();
        let mut cmd = Command::new("sleep");
        cmd.arg("1000");
        let _job = Proc(spawn_placed(&mut cmd, holder.as_fd()));

        assert_eq!(tp.parent.sweep_stale().unwrap(), 3);
        let mut kept = vec![
            live_creator,
            other_namespace,
            still_running,
            ours,
            "brood-test-1-2-3".to_string(),
            "unrelated".to_string(),
        ];
        kept.sort();
        assert_eq!(tp.listing(), kept);
        drop(sleeper);
    }

    #[test]
    fn the_first_creation_in_a_directory_sweeps_it_once() {
        let Some(tp) = TestParent::new("first-use") else {
            return;
        };
        let me = name::this_process().unwrap();
        let stale = brood_name(me.pid_namespace, me.pid, me.start_time + 1, 0);
        tp.mkdir(&stale);
        // Another value for the same directory: the sweep is per directory.
        let same_dir = Arc::new(CgroupParent::open(&tp.path).unwrap());
        let first = same_dir.create_child(None).unwrap();
        assert_eq!(tp.listing(), vec![first.name().to_string()]);
        // Left later, it is not swept again by this process.
        let later = brood_name(me.pid_namespace, me.pid, me.start_time + 2, 0);
        tp.mkdir(&later);
        let second = tp.parent.create_child(None).unwrap();
        assert!(tp.path.join(&later).exists());
        drop((first, second));
        assert_eq!(tp.listing(), vec![later]);
    }

    /// Ends a tenancy as the background thread does once the tree is empty.
    fn retire_once_empty(cg: &ChildCgroup) {
        assert!(cg.watch_populated().wait_empty_timeout(PATIENCE).unwrap());
        cg.retire().unwrap();
        assert!(cg.is_removed(), "the tenancy is over");
    }

    #[test]
    fn a_pooled_cgroup_is_reused_and_counts_its_own_tree_alone() {
        let Some(tp) = TestParent::new("pool-reuse") else {
            return;
        };
        let pool = Arc::new(Pool::new(2));
        let first = tp.parent.child_cgroup(Some(&pool)).unwrap();
        let name = first.name().to_owned();
        // A tree that burns some CPU and ends.
        let mut busy = spawn_in(&first, "i=0; while [ $i -lt 50000 ]; do i=$((i+1)); done");
        assert!(busy.0.wait().unwrap().success());
        retire_once_empty(&first);
        let spent = first.usage().unwrap();
        assert!(spent.cpu > Duration::from_millis(1), "{spent:?}");
        assert_eq!(pool.idle(), 1);
        assert_eq!(tp.listing(), vec![name.clone()], "kept, not removed");

        // The next tenant gets the same directory, with its figures from zero.
        let second = tp.parent.child_cgroup(Some(&pool)).unwrap();
        assert_eq!(second.name(), name);
        assert_eq!(pool.idle(), 0);
        let fresh = second.usage().unwrap();
        assert!(
            fresh.cpu < spent.cpu / 2,
            "{fresh:?} counts the last tree's {spent:?}"
        );
        let mut sleeper = spawn_in(&second, "echo $$; exec sleep 1000");
        let pid: u32 = read_lines(&mut sleeper, 1)[0].parse().unwrap();

        // The last tenant can no longer touch it: no stop reaches the new tree.
        assert_eq!(first.kill().unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(
            first
                .signal_members(libc::SIGKILL, PATIENCE)
                .unwrap_err()
                .kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(first.members().unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(first.usage().unwrap(), spent, "its own figures stay");
        first.remove().unwrap();
        drop(first);
        assert!(tp.path.join(&name).exists());
        assert_eq!(second.members().unwrap(), vec![pid]);

        second.kill().unwrap();
        assert!(sleeper.0.wait().unwrap().signal() == Some(libc::SIGKILL));
        retire_once_empty(&second);
        assert_eq!(pool.idle(), 1);
        // Closing the pool removes what it keeps, and descriptors with it.
        pool.close();
        assert_eq!(pool.idle(), 0);
        drop(second);
        assert!(tp.listing().is_empty());
        assert_eq!(fds_under(&tp.path), Vec::<PathBuf>::new());
    }

    #[test]
    fn a_pool_keeps_only_clean_cgroups_and_no_more_than_it_may() {
        let Some(tp) = TestParent::new("pool-clean") else {
            return;
        };
        let pool = Arc::new(Pool::new(1));
        let [nested, frozen, kept, extra] =
            [(); 4].map(|_| tp.parent.child_cgroup(Some(&pool)).unwrap());
        // A cgroup the tree made inside its own: removed with it, not kept.
        cgroupfs::mkdir_at(nested.dir_fd(), Path::new("inner"), 0o755).unwrap();
        nested.retire().unwrap();
        assert!(!nested.path().exists());
        // Frozen (by its tree, say): not kept.
        frozen.freeze(PATIENCE).unwrap();
        frozen.retire().unwrap();
        assert!(!frozen.path().exists());
        assert_eq!(pool.idle(), 0);
        // One clean one is kept; the next finds the pool full.
        kept.retire().unwrap();
        extra.retire().unwrap();
        assert_eq!(pool.idle(), 1);
        assert_eq!(tp.listing(), vec![kept.name().to_owned()]);
        // A process moved in from outside while it was kept: not reused, and
        // left (it cannot be removed while populated) to the stale sweep.
        let mut stranger = spawn_in(&kept, "echo; exec sleep 1000");
        read_lines(&mut stranger, 1);
        let next = tp.parent.child_cgroup(Some(&pool)).unwrap();
        assert_ne!(next.name(), kept.name());
        assert_eq!(pool.idle(), 0);
        drop(stranger);
        // A closed pool keeps nothing: the cgroup is removed as without one.
        pool.close();
        next.retire().unwrap();
        assert!(!next.path().exists());
        assert_eq!(tp.listing(), vec![kept.name().to_owned()]);
    }
}
