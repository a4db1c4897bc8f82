//! Containment (issue 12): every stop brood makes reaches a contained
//! child's whole tree, escapees included; placement is atomic; nothing is
//! left behind; bad input fails cleanly.
//!
//! The cgroup tests need a writable cgroup v2 hierarchy. Each works in a
//! private parent under this process's cgroup
//! (`brood_testkit::cgroup::PrivateParent`), killed and removed when the
//! test ends. Where no writable hierarchy exists they print
//! `BROOD-CGROUP-SKIP: <reason>` to stderr and pass; with
//! `BROOD_REQUIRE_CGROUP=1` (CI sets it) they fail instead.
//!
//! Grandchildren are watched through pidfds opened while they run, so a
//! recycled pid (this machine's `pid_max` is small) never passes for a
//! survivor, and "gone" means exited: a zombie that init has not reaped yet
//! counts as gone. Tests that count a process group's members run in a
//! worker process that is a subreaper, since the sandbox's init reaps
//! orphans late.
#![cfg(target_os = "linux")]

use brood::{Child, ChildStdout, Command, Containment, WaitDelayExceeded};
use brood_testkit::cgroup::{self, populated, PrivateParent};
use brood_testkit::fds::open_fd_targets;
use brood_testkit::pidfd::{assert_all_gone, Watched};
use brood_testkit::procfs::{aim_next_pid, cgroup_of, child_pids, stat_state_ppid};
use brood_testkit::runtime::current_thread;
use brood_testkit::seccomp::{self, Deny};
use brood_testkit::{bounded, bounded_test, eventually, eventually_blocking, worker};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The bound on every wait in these tests; generous for a loaded machine.
const PATIENCE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// Helpers: trees read from the job, scripts, workers.

/// Reads `n` lines `role pid` from a child's stdout and watches each pid.
async fn read_tree(stdout: &mut ChildStdout, n: usize) -> HashMap<String, Watched> {
    let mut lines = BufReader::new(stdout).lines();
    let mut tree = HashMap::new();
    while tree.len() < n {
        let line = bounded(PATIENCE, lines.next_line())
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("stdout closed after {} lines", tree.len()));
        let (role, pid) = line.split_once(' ').unwrap();
        tree.insert(role.to_string(), Watched::open(pid.parse().unwrap()));
    }
    tree
}

/// Reads `n` lines `role pid` from a file the tree writes (for stops that
/// consume the `Child`), waiting until they are there.
async fn read_tree_file(path: &Path, n: usize) -> HashMap<String, Watched> {
    let complete = eventually(PATIENCE, || {
        std::fs::read_to_string(path).is_ok_and(|t| t.lines().count() >= n)
    })
    .await;
    let text = std::fs::read_to_string(path).unwrap_or_default();
    assert!(complete, "the tree wrote only {text:?}");
    text.lines()
        .map(|line| {
            let (role, pid) = line.split_once(' ').unwrap();
            (role.to_string(), Watched::open(pid.parse().unwrap()))
        })
        .collect()
}

/// A scratch directory for pid files and scripts, removed on drop.
fn scratch(label: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("brood-contain-{label}-"))
        .tempdir()
        .unwrap()
}

/// A job whose tree escapes its process group twice: a grandchild that
/// called `setsid`, and a double-forked daemon (its parent exits at once, so
/// init adopts it). Each prints `role pid`; the leader prints last.
const ESCAPEES: &str = r#"
    setsid sh -c 'echo setsid $$; exec sleep 1000' &
    sh -c 'sh -c "echo daemon \$\$; exec sleep 1000" &'
    # the daemon's parent was waited for above; wait for its line too
    sleep 0.1
    echo leader $$
    exec sleep 1000
"#;

/// ESCAPEES plus a grandchild that ignores SIGTERM (ignored signals stay
/// ignored across exec), so only the final SIGKILL stops it.
const ESCAPEES_AND_STUBBORN: &str = r#"
    setsid sh -c 'echo setsid $$; exec sleep 1000' &
    sh -c 'sh -c "echo daemon \$\$; exec sleep 1000" &'
    sh -c 'trap "" TERM; echo stubborn $$; exec sleep 1000' &
    sleep 0.1
    echo leader $$
    exec sleep 1000
"#;

/// ESCAPEES, writing its lines to the file `$1` instead (for stops that
/// consume the `Child`); the leader writes last, once the others have.
const ESCAPEES_TO_FILE: &str = r#"
    PIDS="$1"
    setsid sh -c 'echo setsid $$ >>"$0"; exec sleep 1000' "$PIDS" &
    sh -c 'sh -c "echo daemon \$\$ >>\"\$0\"; exec sleep 1000" "$0" &' "$PIDS"
    while [ "$(wc -l <"$PIDS")" -lt 2 ]; do sleep 0.01; done
    echo leader $$ >>"$PIDS"
    exec sleep 1000
"#;

/// ESCAPEES_AND_STUBBORN, writing its lines to the file `$1`.
const ESCAPEES_AND_STUBBORN_TO_FILE: &str = r#"
    PIDS="$1"
    setsid sh -c 'echo setsid $$ >>"$0"; exec sleep 1000' "$PIDS" &
    sh -c 'sh -c "echo daemon \$\$ >>\"\$0\"; exec sleep 1000" "$0" &' "$PIDS"
    sh -c 'trap "" TERM; echo stubborn $$ >>"$0"; exec sleep 1000' "$PIDS" &
    while [ "$(wc -l <"$PIDS")" -lt 3 ]; do sleep 0.01; done
    echo leader $$ >>"$PIDS"
    exec sleep 1000
"#;

/// A contained command running `script` with `sh -c`, its stdout piped.
fn job(parent: &PrivateParent, script: &str) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(script)
        .stdout(std::process::Stdio::piped())
        .contain(Containment::Cgroup)
        .cgroup_parent(&parent.path);
    command
}

/// Runs this test again in a worker process (this binary, filtered to the
/// test), with `env` changed, and requires it to pass; a skip in the worker
/// is printed as the parent's.
fn run_worker(env: &[(&str, Option<&str>)]) {
    let run = worker::run(env);
    run.assert_ok();
    cgroup::forward_skip(&run);
}

/// The leader's own pid, as the tree printed it.
fn leader(tree: &HashMap<String, Watched>) -> u32 {
    tree["leader"].pid
}

// ---------------------------------------------------------------------------
// The API: what a child got, its members, its tree's end and figures.

bounded_test!(
    #[tokio::test]
    async fn containment_is_what_the_child_got() {
        let plain = Command::new("true").spawn().unwrap();
        assert_eq!(plain.containment(), None);
        let mut group = Command::new("sleep")
            .arg("1000")
            .contain(Containment::Group)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        assert_eq!(group.containment(), Some(Containment::Group));
        let pid = group.id().unwrap();
        assert_eq!(
            Watched::open(pid).stat_field(5),
            u64::from(pid),
            "its own group"
        );
        assert_eq!(group.members().unwrap(), vec![pid]);
        assert_eq!(group.tree_usage(), None);
        group.kill().await.unwrap();
        drop(plain);

        let Some(parent) = PrivateParent::new("kinds") else {
            return;
        };
        for asked in [Containment::Cgroup, Containment::Auto] {
            let mut child = Command::new("sleep")
                .arg("1000")
                .contain(asked)
                .cgroup_parent(&parent.path)
                .spawn()
                .unwrap();
            assert_eq!(child.containment(), Some(Containment::Cgroup), "{asked:?}");
            assert_eq!(child.members().unwrap(), vec![child.id().unwrap()]);
            assert!(child.tree_usage().is_some());
            assert_eq!(child.handle().containment(), Some(Containment::Cgroup));
            child.terminate(Duration::from_secs(5)).await.unwrap();
        }
        parent.wait_cgroups_removed(PATIENCE).await;
    }
);

bounded_test!(
    #[tokio::test]
    async fn members_include_escapees_and_wait_tree_waits_for_them() {
        let Some(parent) = PrivateParent::new("members") else {
            return;
        };
        let mut child = job(&parent, ESCAPEES).spawn().unwrap();
        let tree = read_tree(child.stdout.as_mut().unwrap(), 3).await;
        let mut members = child.members().unwrap();
        members.sort();
        let mut expected: Vec<u32> = tree.values().map(|w| w.pid).collect();
        expected.sort();
        assert_eq!(members, expected);
        // They did escape: a session of their own, and another parent.
        let setsid = &tree["setsid"];
        assert_eq!(setsid.stat_field(6), u64::from(setsid.pid), "session id");
        assert_ne!(
            tree["daemon"].stat_field(4),
            u64::from(leader(&tree)),
            "parent"
        );
        assert_ne!(
            tree["daemon"].stat_field(5),
            u64::from(leader(&tree)),
            "group"
        );

        // The leader exits: wait_tree still waits for the escapees.
        child.signal(brood::Signal::KILL).unwrap();
        let status = child.wait().await.unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        let status = {
            let wait = child.wait_tree();
            tokio::pin!(wait);
            assert!(
                tokio::time::timeout(Duration::from_millis(300), &mut wait)
                    .await
                    .is_err(),
                "wait_tree resolved while escapees ran"
            );
            let mut members = child_members_now(&parent);
            members.sort();
            let mut escapees = vec![tree["setsid"].pid, tree["daemon"].pid];
            escapees.sort();
            assert_eq!(members, escapees);
            // Kill them behind brood's back: wait_tree notices the tree's end.
            for role in ["setsid", "daemon"] {
                tree[role].kill();
            }
            bounded(PATIENCE, wait).await.unwrap()
        };
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert_all_gone(&tree, Duration::ZERO);
        assert_eq!(child.members().unwrap(), Vec::<u32>::new());
        parent.wait_cgroups_removed(PATIENCE).await;
    }
);

/// The members of the one brood cgroup in `parent`, read from the file
/// system (not through brood).
fn child_members_now(parent: &PrivateParent) -> Vec<u32> {
    let cgroups = parent.brood_cgroups();
    assert_eq!(cgroups.len(), 1, "{cgroups:?}");
    std::fs::read_to_string(parent.path.join(&cgroups[0]).join("cgroup.procs"))
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

bounded_test!(
    #[tokio::test]
    async fn tree_usage_counts_cpu_burnt_after_the_leader_exited_and_is_kept() {
        let Some(parent) = PrivateParent::new("usage") else {
            return;
        };
        // The grandchild holds the stdout pipe and burns CPU after the leader
        // exited, then reports its own CPU time (`times`: user and system of
        // the shell and its children).
        let mut child = job(
            &parent,
            r#"(i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; times) &
               exit 0"#,
        )
        .spawn()
        .unwrap();
        let handle = child.handle();
        let status = child.wait().await.unwrap();
        assert!(status.success());
        let live = child.tree_usage().expect("contained in a cgroup");
        let mut stdout = child.stdout.take().unwrap();
        let status = bounded(PATIENCE, child.wait_tree()).await.unwrap();
        assert!(status.success());

        let mut report = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut report)
            .await
            .unwrap();
        let seconds = |field: &str| -> Duration {
            let (m, s) = field.trim_end_matches('s').split_once('m').unwrap();
            Duration::from_secs(m.parse::<u64>().unwrap() * 60)
                + Duration::from_secs_f64(s.parse().unwrap())
        };
        let first = report.lines().next().unwrap();
        let mut fields = first.split_whitespace();
        let reported = seconds(fields.next().unwrap()) + seconds(fields.next().unwrap());
        assert!(reported >= Duration::from_millis(50), "{report}");

        parent.wait_cgroups_removed(PATIENCE).await;
        let kept = child
            .tree_usage()
            .expect("kept after the cgroup was removed");
        assert!(
            kept.user_time() + kept.system_time() >= reported,
            "the tree's {kept:?} < the grandchild's own {reported:?}"
        );
        assert!(kept.user_time() >= live.user_time());
        assert_eq!(
            kept.peak_memory(),
            None,
            "no memory controller below our cgroup"
        );
        // The same figures again, and through the handle.
        assert_eq!(child.tree_usage(), Some(kept));
        assert_eq!(handle.tree_usage(), Some(kept));
    }
);

bounded_test!(
    #[tokio::test]
    async fn wait_tree_is_cancel_safe_and_works_through_handles_after_the_drop() {
        let Some(parent) = PrivateParent::new("handle") else {
            return;
        };
        let mut child = job(&parent, "sleep 1000 & echo sleeper $!; exit 0")
            .spawn()
            .unwrap();
        let tree = read_tree(child.stdout.as_mut().unwrap(), 1).await;
        let handle = child.handle();
        for _ in 0..3 {
            // Dropped before the end: nothing is lost.
            assert!(
                tokio::time::timeout(Duration::from_millis(50), child.wait_tree())
                    .await
                    .is_err()
            );
        }
        drop(child);
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let handle = handle.clone();
                tokio::spawn(async move { handle.wait_tree().await })
            })
            .collect();
        assert_eq!(handle.members().unwrap(), vec![tree["sleeper"].pid]);
        tree["sleeper"].kill();
        for waiter in waiters {
            let status = bounded(PATIENCE, waiter).await.unwrap().unwrap();
            assert!(status.success());
        }
        assert_eq!(handle.members().unwrap(), Vec::<u32>::new());
        parent.wait_cgroups_removed(PATIENCE).await;
    }
);

// ---------------------------------------------------------------------------
// 1. Every stop brood makes reaches every member.

bounded_test!(
    #[tokio::test]
    async fn kill_on_drop_without_grace_kills_the_whole_tree_at_once() {
        let Some(parent) = PrivateParent::new("drop-kill") else {
            return;
        };
        let mut child = job(&parent, ESCAPEES_AND_STUBBORN)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let tree = read_tree(child.stdout.as_mut().unwrap(), 4).await;
        let dropped = Instant::now();
        drop(child);
        assert_all_gone(&tree, PATIENCE);
        // cgroup.kill at once: nobody waited out a grace period.
        assert!(
            dropped.elapsed() < Duration::from_secs(5),
            "{:?}",
            dropped.elapsed()
        );
        parent.wait_cgroups_removed(PATIENCE).await;
    }
);

bounded_test!(
    #[tokio::test]
    async fn kill_on_drop_with_grace_terms_every_member_then_kills_the_rest() {
        let Some(parent) = PrivateParent::new("drop-grace") else {
            return;
        };
        let grace = Duration::from_secs(5);
        let mut child = job(&parent, ESCAPEES_AND_STUBBORN)
            .kill_on_drop(true)
            .grace(grace)
            .spawn()
            .unwrap();
        let mut tree = read_tree(child.stdout.as_mut().unwrap(), 4).await;
        let stubborn = tree.remove("stubborn").unwrap();
        let dropped = Instant::now();
        drop(child);
        // SIGTERM reaches the leader and both escapees well before the grace ends.
        assert_all_gone(&tree, grace / 2);
        assert!(dropped.elapsed() < grace);
        assert!(
            !stubborn.gone(),
            "the stubborn member was killed before the grace ended"
        );
        // The final cgroup.kill comes from the background thread after the grace.
        assert!(stubborn.gone_within(grace + PATIENCE));
        assert!(dropped.elapsed() >= grace, "{:?}", dropped.elapsed());
        parent.wait_cgroups_removed(PATIENCE).await;
    }
);

bounded_test!(
    #[tokio::test]
    async fn kill_on_drop_stops_a_tree_that_outlived_its_leader() {
        let Some(parent) = PrivateParent::new("drop-after") else {
            return;
        };
        let mut child = job(&parent, ESCAPEES).kill_on_drop(true).spawn().unwrap();
        let mut tree = read_tree(child.stdout.as_mut().unwrap(), 3).await;
        child.start_kill().unwrap();
        child.wait().await.unwrap();
        tree.remove("leader");
        assert!(tree.values().all(|w| !w.gone()));
        drop(child);
        assert_all_gone(&tree, PATIENCE);
        parent.wait_cgroups_removed(PATIENCE).await;
    }
);

/// A script file in `scratch`, made executable.
fn script(scratch: &TempDir, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = scratch.path().join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

bounded_test!(
    #[tokio::test]
    async fn terminate_terms_every_member_present_while_frozen() {
        let Some(parent) = PrivateParent::new("terminate-all") else {
            return;
        };
        // 30 quiet members, both escapees, and a member that forks as fast as
        // it can (bounded). Every one dies of SIGTERM, so the tree is gone long
        // before the grace ends, unless a process forked past the signal (the
        // freeze prevents that) or a member was missed: then only the
        // cgroup.kill at the end of the 30 s grace would stop it.
        let grace = Duration::from_secs(30);
        let mut child = job(
            &parent,
            r#"i=0; while [ $i -lt 30 ]; do sleep 1000 & i=$((i+1)); done
               sh -c 'i=0; while [ $i -lt 2000 ]; do sleep 1000 & i=$((i+1)); done; wait' &
               setsid sh -c 'echo setsid $$; exec sleep 1000' &
               sh -c 'sh -c "echo daemon \$\$; exec sleep 1000" &'
               sleep 0.1
               echo leader $$
               wait"#,
        )
        .spawn()
        .unwrap();
        let tree = read_tree(child.stdout.as_mut().unwrap(), 3).await;
        let started = Instant::now();
        let status = bounded(grace + PATIENCE, child.terminate(grace))
            .await
            .unwrap();
        let took = started.elapsed();
        assert_eq!(status.signal(), Some(libc::SIGTERM), "{status}");
        assert!(
            took < grace / 2,
            "terminate took {took:?}: a member missed the SIGTERM"
        );
        // Resolved only once the whole tree was gone.
        assert_all_gone(&tree, Duration::ZERO);
        assert_eq!(child.members().unwrap(), Vec::<u32>::new());
        parent.wait_cgroups_removed(PATIENCE).await;
    }
);

bounded_test!(
    #[tokio::test]
    async fn terminate_kills_after_the_grace_even_members_forked_during_it() {
        let Some(parent) = PrivateParent::new("terminate-grace") else {
            return;
        };
        let scratch = scratch("terminate-grace");
        // On SIGTERM this member forks a new one that ignores SIGTERM, and
        // carries on.
        let forker = script(
            &scratch,
            "forker",
            r#"exec 2>/dev/null # the shell's notes on its killed sleeps
               trap 'sh -c "trap \"\" TERM; echo late \$\$; exec sleep 1000" &' TERM
               echo forker $$
               while :; do sleep 0.05; done"#,
        );
        let grace = Duration::from_secs(1);
        let mut child = job(
            &parent,
            &format!(
                "'{}' & sh -c 'trap \"\" TERM; echo stubborn $$; exec sleep 1000' & sleep 0.1; echo leader $$; wait",
                forker.display()
            ),
        )
        .spawn()
        .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut tree = read_tree(&mut stdout, 3).await;
        let started = Instant::now();
        let status = bounded(PATIENCE, child.terminate(grace)).await.unwrap();
        assert!(started.elapsed() >= grace, "{:?}", started.elapsed());
        // The leader's own shell died of SIGTERM at once.
        assert_eq!(status.signal(), Some(libc::SIGTERM), "{status}");
        assert_all_gone(&tree, Duration::ZERO);
        // A member was forked during the grace (it said so), inside the cgroup,
        // and terminate returned only once the cgroup was empty: it is gone too.
        let mut rest = String::new();
        bounded(
            PATIENCE,
            tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut rest),
        )
        .await
        .unwrap();
        assert!(rest.lines().any(|l| l.starts_with("late ")), "{rest:?}");
        assert_eq!(child.members().unwrap(), Vec::<u32>::new());
        tree.clear();
        parent.wait_cgroups_removed(PATIENCE).await;
    }
);

bounded_test!(
    #[tokio::test]
    async fn a_timeout_stops_every_member() {
        let Some(parent) = PrivateParent::new("timeout") else {
            return;
        };
        let scratch = scratch("timeout");
        let pids = scratch.path().join("pids");
        for (round, grace) in [None, Some(Duration::from_millis(300))]
            .into_iter()
            .enumerate()
        {
            let pids = pids.with_extension(round.to_string());
            let mut command = job(&parent, ESCAPEES_AND_STUBBORN_TO_FILE);
            command.arg("sh").arg(&pids).timeout(Duration::from_secs(2));
            if let Some(grace) = grace {
                command.grace(grace);
            }
            let status = command.status();
            let tree = read_tree_file(&pids, 4).await;
            let err = bounded(PATIENCE, status).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
            // The stop waited for the cgroup to empty.
            assert_all_gone(&tree, Duration::ZERO);
            parent.wait_cgroups_removed(PATIENCE).await;
        }
    }
);

bounded_test!(
    #[tokio::test]
    async fn max_output_stops_every_member() {
        let Some(parent) = PrivateParent::new("max-output") else {
            return;
        };
        let scratch = scratch("max-output");
        let pids = scratch.path().join("pids");
        // An escapee floods the pipe once the tree is complete.
        let script = r#"
            PIDS="$1"
            setsid sh -c 'echo setsid $$ >>"$0"; while [ "$(wc -l <"$0")" -lt 3 ]; do sleep 0.01; done; exec yes' "$PIDS" &
            sh -c 'sh -c "echo daemon \$\$ >>\"\$0\"; exec sleep 1000" "$0" &' "$PIDS"
            echo leader $$ >>"$PIDS"
            exec sleep 1000
        "#;
        let mut command = job(&parent, script);
        command.arg("sh").arg(&pids).max_output(1 << 16);
        let output = command.output();
        let tree = read_tree_file(&pids, 3).await;
        let err = bounded(PATIENCE, output).await.unwrap_err();
        let over = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<brood::OutputLimitExceeded>())
            .unwrap_or_else(|| panic!("{err}"));
        assert_eq!(over.stdout().len(), 1 << 16);
        assert_all_gone(&tree, Duration::ZERO);
        parent.wait_cgroups_removed(PATIENCE).await;
    }
);

bounded_test!(
    #[tokio::test]
    async fn the_wait_delay_expiry_stops_the_rest_of_the_tree() {
        let Some(parent) = PrivateParent::new("wait-delay") else {
            return;
        };
        let scratch = scratch("wait-delay");
        let pids = scratch.path().join("pids");
        // The leader prints and exits; an escapee keeps stdout open.
        let script =
            "echo hello; setsid sh -c 'echo setsid $$ >\"$0\"; exec sleep 1000' \"$1\" & exit 3";
        let delay = Duration::from_millis(300);
        let mut command = job(&parent, script);
        command.arg("sh").arg(&pids).wait_delay(delay);
        let started = Instant::now();
        let output = command.output();
        let tree = read_tree_file(&pids, 1).await;
        let err = bounded(PATIENCE, output).await.unwrap_err();
        assert!(started.elapsed() >= delay);
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        let late = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<WaitDelayExceeded>())
            .unwrap_or_else(|| panic!("{err}"));
        assert_eq!(late.output().status.code(), Some(3));
        assert_eq!(late.output().stdout, b"hello\n");
        assert_eq!(late.wait_delay(), delay);
        assert_all_gone(&tree, PATIENCE);
        parent.wait_cgroups_removed(PATIENCE).await;
    }
);

bounded_test!(
    #[tokio::test]
    async fn wait_delay_without_containment_closes_the_pipes_and_without_it_nothing_changes() {
        let scratch = scratch("wait-delay-plain");
        let pids = scratch.path().join("pids");
        // Not contained: the grandchild is not stopped, but the pipes are
        // closed and the call returns.
        let script =
            "echo hello; sh -c 'echo grandchild $$ >\"$0\"; exec sleep 1000' \"$1\" & exit 0";
        let output = Command::new("sh")
            .args(["-c", script, "sh"])
            .arg(&pids)
            .wait_delay(Duration::from_millis(200))
            .output();
        let tree = read_tree_file(&pids, 1).await;
        let err = bounded(PATIENCE, output).await.unwrap_err();
        let late = err
            .into_inner()
            .unwrap()
            .downcast::<WaitDelayExceeded>()
            .unwrap();
        let output = late.into_output();
        assert!(output.status.success());
        assert_eq!(output.stdout, b"hello\n");
        let grandchild = &tree["grandchild"];
        assert!(
            !grandchild.gone(),
            "an uncontained grandchild is not brood's to stop"
        );
        grandchild.kill();
        assert!(grandchild.gone_within(PATIENCE));

        // Without a wait delay: wait for EOF, however late it comes.
        let output = Command::new("sh")
            .args(["-c", "echo hello; (sleep 0.3; echo late) & exit 0"])
            .output();
        let output = bounded(PATIENCE, output).await.unwrap();
        assert_eq!(output.stdout, b"hello\nlate\n");
    }
);

// ---------------------------------------------------------------------------
// 2. Escapees are stopped too: a setsid grandchild and a double-forked
// daemon, for a timeout and for kill_on_drop.

bounded_test!(
    #[tokio::test]
    async fn escapees_are_stopped_on_timeout() {
        let Some(parent) = PrivateParent::new("escape-timeout") else {
            return;
        };
        let scratch = scratch("escape-timeout");
        let pids = scratch.path().join("pids");
        let mut command = job(&parent, ESCAPEES_TO_FILE);
        command.arg("sh").arg(&pids).timeout(Duration::from_secs(1));
        let status = command.status();
        let tree = read_tree_file(&pids, 3).await;
        let lead = leader(&tree);
        assert_eq!(tree["setsid"].stat_field(6), u64::from(tree["setsid"].pid));
        assert_ne!(tree["daemon"].stat_field(5), u64::from(lead));
        assert_ne!(tree["daemon"].stat_field(4), u64::from(lead));
        let err = bounded(PATIENCE, status).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_all_gone(&tree, Duration::ZERO);
        parent.wait_cgroups_removed(PATIENCE).await;
    }
);

bounded_test!(
    #[tokio::test]
    async fn escapees_are_stopped_on_kill_on_drop() {
        let Some(parent) = PrivateParent::new("escape-drop") else {
            return;
        };
        for grace in [None, Some(Duration::from_millis(200))] {
            let mut command = job(&parent, ESCAPEES);
            command.kill_on_drop(true);
            if let Some(grace) = grace {
                command.grace(grace);
            }
            let mut child = command.spawn().unwrap();
            let tree = read_tree(child.stdout.as_mut().unwrap(), 3).await;
            assert_eq!(tree["setsid"].stat_field(6), u64::from(tree["setsid"].pid));
            assert_ne!(tree["daemon"].stat_field(5), u64::from(leader(&tree)));
            drop(child);
            assert_all_gone(&tree, PATIENCE);
            parent.wait_cgroups_removed(PATIENCE).await;
        }
    }
);

// ---------------------------------------------------------------------------
// 4. Placement is atomic.

/// Reads the whole of a child's stdout.
async fn read_all(child: &mut Child) -> String {
    let mut text = String::new();
    let mut stdout = child.stdout.take().unwrap();
    bounded(
        PATIENCE,
        tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut text),
    )
    .await
    .unwrap();
    text
}

/// Spawns `cat /proc/self/cgroup` built by `build`, and returns the cgroup
/// the program started in.
async fn placed(parent: &PrivateParent, build: impl FnOnce(&mut Command)) -> String {
    let mut command = Command::new("cat");
    command.arg("/proc/self/cgroup");
    build(&mut command);
    command
        .stdout(std::process::Stdio::piped())
        .contain(Containment::Cgroup)
        .cgroup_parent(&parent.path);
    let (cgroup, _) = ran_in(command.spawn().unwrap()).await;
    parent.wait_cgroups_removed(PATIENCE).await;
    cgroup
}

/// The cgroup v2 line (`0::PATH`) of a `/proc/PID/cgroup` text, as PATH.
fn cgroup_v2_of(text: &str) -> &str {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_else(|| panic!("no 0:: line in {text:?}"))
}

/// Asserts that `cgroup` (as /proc/<pid>/cgroup names it) is a per-child
/// cgroup brood made directly under `parent`.
fn assert_in_a_child_cgroup_of(parent: &PrivateParent, cgroup: &str) {
    let ours = cgroup_of(std::process::id()).unwrap();
    let parent_name = parent.path.file_name().unwrap().to_str().unwrap();
    let expected_prefix = format!("{}/{parent_name}/brood-", ours.trim_end_matches('/'));
    assert!(
        cgroup.starts_with(&expected_prefix) && !cgroup[expected_prefix.len()..].contains('/'),
        "{cgroup} is not a child cgroup of {}",
        parent.path.display()
    );
}

bounded_test!(
    #[tokio::test]
    async fn a_child_starts_in_its_cgroup_however_it_is_spawned() {
        let Some(parent) = PrivateParent::new("placed") else {
            return;
        };
        // Read back by brood's own spawn (clone3 with CLONE_INTO_CGROUP).
        let started_in = placed(&parent, |_| {}).await;
        assert_in_a_child_cgroup_of(&parent, &started_in);
        assert!(!brood::test_hooks::clone3_unavailable_for_cgroups());
        // Reachable as a std builder: std's spawn with brood's placement hook.
        let started_in = placed(&parent, |c| {
            c.as_std_mut().env("FROM_STD", "1");
        })
        .await;
        assert_in_a_child_cgroup_of(&parent, &started_in);
        // Built as a std command and converted.
        let mut std_command = std::process::Command::new("cat");
        std_command.arg("/proc/self/cgroup");
        let child = Command::from(std_command)
            .stdout(std::process::Stdio::piped())
            .contain(Containment::Cgroup)
            .cgroup_parent(&parent.path)
            .spawn()
            .unwrap();
        let (started_in, _) = ran_in(child).await;
        assert_in_a_child_cgroup_of(&parent, &started_in);
        parent.wait_cgroups_removed(PATIENCE).await;
    }
);

/// The cgroup a contained child ran `cat /proc/self/cgroup` in (the last
/// line of its output), once its tree has ended.
async fn ran_in(mut child: Child) -> (String, Child) {
    let seen = read_all(&mut child).await;
    assert!(child.wait_tree().await.unwrap().success());
    (cgroup_v2_of(&seen).to_string(), child)
}

bounded_test!(
    #[tokio::test]
    async fn a_cgroup_pool_hands_an_ended_trees_cgroup_to_the_next_child_and_removes_it_when_dropped(
    ) {
        let Some(parent) = PrivateParent::new("pool") else {
            return;
        };
        let pool = brood::CgroupPool::new(2);
        let pooled = |script: &str| {
            let mut command = job(&parent, script);
            command.cgroup_pool(&pool).kill_on_drop(true);
            command
        };
        // A first tree that burns some CPU.
        let busy = "i=0; while [ $i -lt 50000 ]; do i=$((i+1)); done; cat /proc/self/cgroup";
        let (first_cgroup, first) = ran_in(pooled(busy).spawn().unwrap()).await;
        assert_in_a_child_cgroup_of(&parent, &first_cgroup);
        let spent = first.tree_usage().unwrap();
        assert_eq!(parent.brood_cgroups().len(), 1, "kept for the next child");

        // The next child starts in the same cgroup, and counts its own tree.
        // Its tree ends with its leader: the reap alone gives the cgroup
        // back, with no wait for the tree.
        let mut second = pooled("cat /proc/self/cgroup").spawn().unwrap();
        let seen = read_all(&mut second).await;
        assert!(second.wait().await.unwrap().success());
        let second_cgroup = cgroup_v2_of(&seen);
        assert_eq!(second_cgroup, first_cgroup);
        assert_eq!(parent.brood_cgroups().len(), 1, "given back, not removed");
        let own = second.tree_usage().unwrap();
        let cpu = |u: brood::TreeUsage| u.user_time() + u.system_time();
        assert!(cpu(own) < cpu(spent) / 2, "{own:?} counts {spent:?}");
        assert_eq!(
            first.tree_usage(),
            Some(spent),
            "the first tree's figures stay"
        );

        // Stops of an ended tree never reach the cgroup's next tenant.
        let mut third = pooled("echo leader $$; exec sleep 1000").spawn().unwrap();
        let tree = read_tree(third.stdout.as_mut().unwrap(), 1).await;
        assert_eq!(cgroup_of(leader(&tree)).unwrap(), first_cgroup);
        drop((first, second)); // kill_on_drop
        assert!(!tree["leader"].gone_within(Duration::from_millis(100)));
        assert_eq!(third.members().unwrap(), vec![leader(&tree)]);
        third.kill().await.unwrap();
        assert!(third.wait_tree().await.unwrap().signal() == Some(libc::SIGKILL));
        assert_eq!(parent.brood_cgroups().len(), 1);

        // Dropping the pool removes what it keeps.
        drop(pool);
        assert_eq!(parent.brood_cgroups(), Vec::<String>::new());
    }
);

/// A pipe whose write end a `pre_exec` hook writes its view of
/// /proc/self/cgroup to, with only async-signal-safe calls.
fn cgroup_reporting_hook() -> (
    OwnedFd,
    impl FnMut() -> io::Result<()> + Send + Sync + 'static,
) {
    let mut fds = [0; 2];
    // SAFETY: a writable array of two ints.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: fresh descriptors nothing else owns.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let hook = move || {
        let mut buf = [0u8; 512];
        // SAFETY: open/read/write/close with a static path and a stack
        // buffer: all async-signal-safe, nothing allocates.
        unsafe {
            let fd = libc::open(c"/proc/self/cgroup".as_ptr(), libc::O_RDONLY);
            let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
            libc::write(write.as_raw_fd(), buf.as_ptr().cast(), n.max(0) as usize);
            libc::close(fd);
        }
        Ok(())
    };
    (read, hook)
}

bounded_test!(
    #[tokio::test]
    async fn a_pre_exec_hook_runs_inside_the_cgroup() {
        let Some(parent) = PrivateParent::new("pre-exec") else {
            return;
        };
        let (read, hook) = cgroup_reporting_hook();
        let mut command = Command::new("true");
        // SAFETY: the hook only makes async-signal-safe calls.
        unsafe { command.pre_exec(hook) };
        let mut child = command
            .contain(Containment::Cgroup)
            .cgroup_parent(&parent.path)
            .spawn()
            .unwrap();
        assert!(child.wait_tree().await.unwrap().success());
        drop(command); // closes the hook's copy of the write end
        let mut seen = String::new();
        io::Read::read_to_string(&mut std::fs::File::from(read), &mut seen).unwrap();
        let in_hook = cgroup_v2_of(&seen);
        assert_in_a_child_cgroup_of(&parent, in_hook);
        parent.wait_cgroups_removed(PATIENCE).await;
    }
);

/// Fails `clone3` with `errno` on the calling thread (and the processes it
/// spawns) only: glibc makes threads and `posix_spawn` children with clone3
/// and falls back to `clone` only for `ENOSYS`; its `fork` uses `clone`,
/// which stays allowed.
fn deny_clone3_on_this_thread(errno: i32) {
    let clone3 = Deny {
        nr: libc::SYS_clone3,
        arg0: None,
        errno,
    };
    seccomp::install_on_this_thread(&[clone3]).expect("install the seccomp filter");
}

fn clone3_denied_worker(errno: i32) {
    current_thread().block_on(async {
        let Some(parent) = PrivateParent::new("denied") else {
            return;
        };
        // Before the filter: brood's background thread runs, and clone3
        // works.
        let started_in = placed(&parent, |_| {}).await;
        assert_in_a_child_cgroup_of(&parent, &started_in);
        assert!(!brood::test_hooks::clone3_unavailable_for_cgroups());
        // This thread runs the runtime and makes every spawn.
        deny_clone3_on_this_thread(errno);
        // Twice: the first spawn learns that clone3 is denied, the second
        // goes straight to the fork fallback.
        for _ in 0..2 {
            let started_in = placed(&parent, |_| {}).await;
            assert_in_a_child_cgroup_of(&parent, &started_in);
            assert!(brood::test_hooks::clone3_unavailable_for_cgroups());
        }
        // The fallback's trees are stopped like any other.
        let mut child = job(&parent, ESCAPEES).kill_on_drop(true).spawn().unwrap();
        let tree = read_tree(child.stdout.as_mut().unwrap(), 3).await;
        drop(child);
        assert_all_gone(&tree, PATIENCE);
        parent.wait_cgroups_removed(PATIENCE).await;
    });
}

#[test]
fn clone3_denied_with_enosys_falls_back_to_an_atomic_fork() {
    if worker::is_worker() {
        clone3_denied_worker(libc::ENOSYS);
        return worker::done();
    }
    run_worker(&[]);
}

#[test]
fn clone3_denied_with_eperm_falls_back_to_an_atomic_fork() {
    if worker::is_worker() {
        clone3_denied_worker(libc::EPERM);
        return worker::done();
    }
    run_worker(&[]);
}

// ---------------------------------------------------------------------------
// 5. Nothing is left behind.

bounded_test!(
    #[tokio::test]
    async fn the_cgroup_is_removed_once_the_tree_is_empty_also_after_the_drop() {
        let Some(parent) = PrivateParent::new("removal") else {
            return;
        };
        // Dropped (no kill_on_drop) while an escapee runs on.
        let mut child = job(&parent, "setsid sleep 1000 & echo escapee $!; exit 0")
            .spawn()
            .unwrap();
        let tree = read_tree(child.stdout.as_mut().unwrap(), 1).await;
        assert!(child.wait().await.unwrap().success());
        drop(child);
        assert_eq!(parent.brood_cgroups().len(), 1, "the tree still runs");
        tree["escapee"].kill();
        parent.wait_cgroups_removed(PATIENCE).await;

        // Kept, never asked about its tree: removed once its leader is
        // reaped (the zombie was the tree's last trace), before the wait
        // returns.
        let mut child = job(&parent, "exit 0").spawn().unwrap();
        assert!(child.wait().await.unwrap().success());
        assert_eq!(parent.brood_cgroups(), Vec::<String>::new());
    }
);

bounded_test!(
    #[tokio::test]
    async fn two_hundred_contained_children_leave_the_parent_as_it_was() {
        let Some(parent) = PrivateParent::new("two-hundred") else {
            return;
        };
        std::fs::create_dir(parent.path.join("unrelated")).unwrap();
        let before = parent.listing();
        for batch in 0..10 {
            let mut children: Vec<_> = (0..20)
                .map(|_| {
                    Command::new("true")
                        .contain(Containment::Cgroup)
                        .cgroup_parent(&parent.path)
                        .spawn()
                        .unwrap()
                })
                .collect();
            for child in &mut children {
                let status = bounded(PATIENCE, child.wait_tree()).await.unwrap();
                assert!(status.success(), "batch {batch}: {status}");
            }
        }
        parent.wait_cgroups_removed(PATIENCE).await;
        assert_eq!(parent.listing(), before);
    }
);

#[test]
fn stale_cgroups_of_a_crashed_process_are_removed_at_first_use() {
    const CRASH: &str = "BROOD_CONTAIN_CRASH_IN";
    if worker::is_worker() {
        // The process that crashes: it starts a contained job, reports it,
        // and is killed.
        let parent = std::env::var(CRASH).unwrap();
        let child = Command::new("sleep")
            .arg("1000")
            .contain(Containment::Cgroup)
            .cgroup_parent(&parent)
            .spawn()
            .unwrap();
        println!("job {}", child.id().unwrap());
        worker::done();
        std::thread::sleep(Duration::from_secs(1000));
        return;
    }
    let Some(parent) = PrivateParent::new("stale") else {
        return;
    };
    // A worker, but not run to its end: it is read while it runs, then
    // killed.
    let mut crashing = worker::command()
        .env(CRASH, &parent.path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = io::BufRead::lines(io::BufReader::new(crashing.stdout.take().unwrap()));
    let job: u32 = loop {
        let line = lines.next().expect("the worker reports its job").unwrap();
        // libtest writes `test <name> ... ` first, on the same line.
        if let Some((_, pid)) = line.split_once("job ") {
            break pid.parse().unwrap();
        }
    };
    let job = Watched::open(job);
    // The crash: brood gets no chance to clean up; then the job ends.
    crashing.kill().unwrap();
    crashing.wait().unwrap();
    let stale = parent.brood_cgroups();
    assert_eq!(stale.len(), 1, "{stale:?}");
    std::fs::write(parent.path.join(&stale[0]).join("cgroup.kill"), "1").unwrap();
    assert!(job.gone_within(PATIENCE));
    assert!(eventually_blocking(PATIENCE, || !populated(
        &parent.path.join(&stale[0])
    )));
    assert_eq!(parent.brood_cgroups(), stale, "nobody removed it yet");

    // First use of the directory by this process: the stale cgroup goes.
    current_thread().block_on(async {
        let mut child = Command::new("true")
            .contain(Containment::Cgroup)
            .cgroup_parent(&parent.path)
            .spawn()
            .unwrap();
        assert!(
            !parent.path.join(&stale[0]).exists(),
            "the stale cgroup is still there"
        );
        assert!(child.wait_tree().await.unwrap().success());
        parent.wait_cgroups_removed(PATIENCE).await;
    });
}

// ---------------------------------------------------------------------------
// 6. Bad input gets a clear error, and nothing half-done.

fn bad_parent_worker() {
    let Some(parent) = PrivateParent::new("bad") else {
        return;
    };
    let runtime = current_thread();
    let _guard = runtime.enter();
    // Warm up: the background thread and other once-per-process state exist
    // before the baseline is taken.
    runtime.block_on(async {
        let mut child = job(&parent, "exit 0").spawn().unwrap();
        child.wait_tree().await.unwrap();
        parent.wait_cgroups_removed(PATIENCE).await;
    });
    let threaded = parent.path.join("threaded");
    std::fs::create_dir(&threaded).unwrap();
    std::fs::create_dir(threaded.join("t")).unwrap();
    std::fs::write(threaded.join("t/cgroup.type"), "threaded").unwrap();
    let cases: Vec<(PathBuf, &str, io::ErrorKind)> = vec![
        (
            parent.path.join("missing"),
            "does not exist",
            io::ErrorKind::NotFound,
        ),
        (
            PathBuf::from("/tmp"),
            "is not on a cgroup v2 file system",
            io::ErrorKind::Unsupported,
        ),
        (
            parent.path.join("cgroup.procs"),
            "is not a directory",
            io::ErrorKind::NotADirectory,
        ),
        (
            threaded.join("t"),
            "`threaded` cgroup",
            io::ErrorKind::Unsupported,
        ),
    ];
    let read_only = parent.path.join("read-only");
    std::fs::create_dir(&read_only).unwrap();
    let before_listing = parent.listing();
    // The warm-up child's descriptors (its cgroup's directory and
    // cgroup.events) close when the last reference to it goes, which the
    // background thread may drop a moment after waking the waiter.
    let under_parent = || {
        open_fd_targets()
            .into_iter()
            .filter(|(_, target)| target.starts_with(&parent.path) && *target != parent.path)
            .collect::<Vec<_>>()
    };
    assert!(
        eventually_blocking(PATIENCE, || under_parent().is_empty()),
        "{:?}",
        under_parent()
    );
    let before_fds = open_fd_targets();
    for (path, why, kind) in &cases {
        for _ in 0..3 {
            let err = Command::new("true")
                .contain(Containment::Cgroup)
                .cgroup_parent(path)
                .spawn()
                .unwrap_err();
            let message = err.to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains(why), "{message} does not say {why:?}");
            assert_eq!(err.kind(), *kind, "{message}");
        }
        assert_eq!(child_pids(), Vec::<u32>::new(), "a process was created");
        assert_eq!(open_fd_targets(), before_fds, "descriptors leaked");
        assert_eq!(parent.listing(), before_listing, "a cgroup was left");
    }
    // Not writable, for root too: a read-only bind mount in a mount
    // namespace private to one thread.
    let path = read_only.clone();
    std::thread::spawn(move || {
        // SAFETY: unshare and mount with valid C strings; the namespace
        // (and the mount in it) is this thread's alone and goes with it.
        unsafe {
            assert_eq!(libc::unshare(libc::CLONE_NEWNS), 0);
            let root = c"/";
            assert_eq!(
                libc::mount(
                    std::ptr::null(),
                    root.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null()
                ),
                0
            );
            let dir = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
            assert_eq!(
                libc::mount(
                    dir.as_ptr(),
                    dir.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null()
                ),
                0
            );
            assert_eq!(
                libc::mount(
                    std::ptr::null(),
                    dir.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                    std::ptr::null()
                ),
                0
            );
        }
        let err = Command::new("true")
            .contain(Containment::Cgroup)
            .cgroup_parent(&path)
            .spawn()
            .unwrap_err();
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("read-only"), "{message}");
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        // Auto falls back to a process group.
        let mut child = Command::new("true")
            .contain(Containment::Auto)
            .cgroup_parent(&path)
            .spawn()
            .unwrap();
        assert_eq!(child.containment(), Some(Containment::Group));
        let status = current_thread().block_on(child.wait_tree()).unwrap();
        assert!(status.success());
    })
    .join()
    .unwrap();
    assert_eq!(open_fd_targets(), before_fds, "descriptors leaked");
    // Auto with every bad parent: a group, no cgroup.
    runtime.block_on(async {
        for (path, _, _) in &cases {
            let mut child = Command::new("true")
                .contain(Containment::Auto)
                .cgroup_parent(path)
                .spawn()
                .unwrap();
            assert_eq!(child.containment(), Some(Containment::Group));
            assert!(child.wait_tree().await.unwrap().success());
        }
    });
    assert_eq!(child_pids(), Vec::<u32>::new());
    assert_eq!(parent.listing(), before_listing);
    std::fs::remove_dir(threaded.join("t")).unwrap();
    std::fs::remove_dir(&threaded).unwrap();
    std::fs::remove_dir(&read_only).unwrap();
}

#[test]
fn a_bad_cgroup_parent_fails_the_spawn_naming_the_path_and_leaves_nothing() {
    if worker::is_worker() {
        bad_parent_worker();
        return worker::done();
    }
    run_worker(&[]);
}

// ---------------------------------------------------------------------------
// Group: what it reaches, and what it cannot promise.

fn group_worker() {
    // Orphans are re-parented to us and reaped by brood, so a group's
    // member that exited is gone, not a zombie of the sandbox's init.
    brood::become_subreaper().unwrap();
    current_thread().block_on(async {
        // A grandchild in the group outlives the leader: wait_tree waits
        // for it.
        let mut child = Command::new("sh")
            .args(["-c", "sleep 0.3 & echo inside $!; exit 0"])
            .stdout(std::process::Stdio::piped())
            .contain(Containment::Group)
            .spawn()
            .unwrap();
        let tree = read_tree(child.stdout.as_mut().unwrap(), 1).await;
        assert!(child.wait().await.unwrap().success());
        assert!(!tree["inside"].gone(), "the grandchild runs on");
        assert!(bounded(PATIENCE, child.wait_tree())
            .await
            .unwrap()
            .success());
        assert!(tree["inside"].gone());

        // terminate reaches the group, a double-forked daemon included (it
        // keeps the group); a grandchild that called setsid left it.
        let mut child = Command::new("sh")
            .args(["-c", ESCAPEES])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .contain(Containment::Group)
            .spawn()
            .unwrap();
        let tree = read_tree(child.stdout.as_mut().unwrap(), 3).await;
        let mut members = child.members().unwrap();
        members.sort();
        let mut expected = vec![leader(&tree), tree["daemon"].pid];
        expected.sort();
        assert_eq!(members, expected, "the setsid grandchild left the group");
        let status = bounded(PATIENCE, child.terminate(Duration::from_secs(5)))
            .await
            .unwrap();
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        assert!(tree["leader"].gone() && tree["daemon"].gone());
        assert_eq!(child.members().unwrap(), Vec::<u32>::new());
        // What Group cannot promise: the setsid grandchild runs on.
        assert!(!tree["setsid"].gone());
        tree["setsid"].kill();
        assert!(tree["setsid"].gone_within(PATIENCE));
    });
}

#[test]
fn a_group_is_waited_for_and_stopped_but_a_setsid_grandchild_leaves_it() {
    if worker::is_worker() {
        group_worker();
        return worker::done();
    }
    run_worker(&[]);
}

// ---------------------------------------------------------------------------
// 3. No stop reaches a recycled process group: a group stop holds the
// leader's exit unreaped (its zombie keeps the group id) until the stop is
// over, then reaps.

/// A group whose leader dies of SIGTERM and whose member ignores it, so a
/// graceful stop outlives the leader. Prints `stubborn <pid>`, then `leader
/// <pid>`.
const LEADER_AND_STUBBORN: &str = r#"
    sh -c 'trap "" TERM; echo stubborn $$; exec sleep 1000' &
    sleep 0.1
    echo leader $$
    wait
"#;

fn group_job(script: &str) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(script)
        .stdout(std::process::Stdio::piped())
        .contain(Containment::Group);
    command
}

/// Whether `pid` is an unreaped zombie of this process.
fn our_zombie(pid: u32) -> bool {
    stat_state_ppid(pid) == Some(('Z', std::process::id()))
}

/// Whether `pid` stays an unreaped zombie of ours for all of `window`.
async fn stays_our_zombie(pid: u32, window: Duration) -> bool {
    !eventually(window, || !our_zombie(pid)).await
}

/// Whether `pid` is no child of ours any more (reaped, or its pid reused
/// by a process that is not our child).
fn not_our_child(pid: u32) -> bool {
    stat_state_ppid(pid).is_none_or(|(_, ppid)| ppid != std::process::id())
}

bounded_test!(
    /// While `terminate` waits out the grace of a member that ignores
    /// SIGTERM, the leader, dead of the SIGTERM, stays an unreaped zombie:
    /// handles are given its status (no resource usage yet), and once the
    /// stop is over it is reaped and its usage is there.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_stop_holds_the_leader_until_it_is_over_and_waits_get_its_status() {
        let mut child = group_job(LEADER_AND_STUBBORN).spawn().unwrap();
        let tree = read_tree(child.stdout.as_mut().unwrap(), 2).await;
        let lead = leader(&tree);
        let handle = child.handle();
        let grace = Duration::from_secs(2);
        let started = Instant::now();
        let stopping = tokio::spawn(async move {
            let status = child.terminate(grace).await;
            (child, status)
        });
        let status = bounded(PATIENCE, handle.wait()).await.unwrap();
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        assert_eq!(
            handle.status().unwrap().unwrap().signal(),
            Some(libc::SIGTERM)
        );
        assert_eq!(handle.resource_usage(), None, "reaped during the stop");
        assert!(!tree["stubborn"].gone());
        assert!(
            stays_our_zombie(lead, Duration::from_millis(300)).await,
            "the leader was reaped while its group was being stopped"
        );
        assert!(started.elapsed() < grace, "{:?}", started.elapsed());

        let (mut child, status) = bounded(PATIENCE, stopping).await.unwrap();
        assert_eq!(status.unwrap().signal(), Some(libc::SIGTERM));
        assert!(started.elapsed() >= grace, "{:?}", started.elapsed());
        assert_all_gone(&tree, Duration::ZERO);
        assert!(not_our_child(lead), "still unreaped after the stop");
        assert!(handle.resource_usage().is_some());
        let (status, usage) = child.wait_with_rusage().await.unwrap();
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        assert_eq!(Some(usage), handle.resource_usage());
    }
);

bounded_test!(
    /// A `terminate` whose future is dropped hands its stop to the
    /// background thread, which sends the final SIGKILL when the grace
    /// ends and keeps the leader held until then: `wait` and `try_wait` get
    /// its status at once, `wait_with_rusage` only with the reap.
    #[tokio::test]
    async fn a_dropped_terminate_leaves_the_leader_held_until_its_grace_ends() {
        let mut child = group_job(LEADER_AND_STUBBORN).spawn().unwrap();
        let tree = read_tree(child.stdout.as_mut().unwrap(), 2).await;
        let lead = leader(&tree);
        let grace = Duration::from_secs(2);
        let started = Instant::now();
        assert!(
            tokio::time::timeout(Duration::from_millis(200), child.terminate(grace))
                .await
                .is_err(),
            "the stubborn member keeps the stop going"
        );
        assert!(eventually(PATIENCE, || our_zombie(lead)).await);
        let status = child.wait().await.unwrap();
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        assert_eq!(child.try_wait().unwrap(), Some(status));
        assert_eq!(child.id(), None, "the owner saw the exit");
        assert_eq!(child.resource_usage(), None);
        assert!(our_zombie(lead), "reaped before the stop was over");
        assert!(!tree["stubborn"].gone());

        let (again, usage) = bounded(PATIENCE, child.wait_with_rusage()).await.unwrap();
        assert_eq!(again, status);
        assert!(started.elapsed() >= grace, "{:?}", started.elapsed());
        assert!(tree["stubborn"].gone(), "the final SIGKILL");
        assert!(not_our_child(lead));
        assert_eq!(child.resource_usage(), Some(usage));
    }
);

bounded_test!(
    /// kill_on_drop with a grace period: the orphan's stop runs on the
    /// background thread, and the leader stays an unreaped zombie until the
    /// final SIGKILL has been sent and the group is empty; then brood
    /// reaps it.
    #[tokio::test]
    async fn a_kill_on_drop_orphan_is_held_until_its_group_stop_ends() {
        let grace = Duration::from_secs(1);
        let mut child = group_job(LEADER_AND_STUBBORN)
            .kill_on_drop(true)
            .grace(grace)
            .spawn()
            .unwrap();
        let tree = read_tree(child.stdout.as_mut().unwrap(), 2).await;
        let lead = leader(&tree);
        let handle = child.handle();
        let dropped = Instant::now();
        drop(child);
        let status = bounded(PATIENCE, handle.wait()).await.unwrap();
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        assert_eq!(handle.resource_usage(), None);
        assert!(
            stays_our_zombie(lead, Duration::from_millis(300)).await,
            "the orphan was reaped while its group was being stopped"
        );
        assert!(dropped.elapsed() < grace);
        assert!(!tree["stubborn"].gone());
        assert!(tree["stubborn"].gone_within(PATIENCE));
        assert!(dropped.elapsed() >= grace);
        assert!(
            eventually(PATIENCE, || not_our_child(lead)).await,
            "the orphan was not reaped after its stop"
        );
        assert!(handle.resource_usage().is_some());
    }
);

bounded_test!(
    /// `output()` with a time limit holds a group's leader from the spawn:
    /// the leader exits at once, a grandchild holds the pipe, and the
    /// timeout's stop still reaches the group (the leader's zombie kept its
    /// id meanwhile).
    #[tokio::test]
    async fn a_timeout_after_the_leader_exited_still_stops_its_group() {
        let scratch = scratch("group-timeout");
        let pids = scratch.path().join("pids");
        let limit = Duration::from_secs(1);
        let output = Command::new("sh")
            .args([
                "-c",
                r#"sh -c 'echo member $$ >>"$0"; exec sleep 1000' "$1" &
                   while [ ! -s "$1" ]; do sleep 0.01; done
                   echo leader $$ >>"$1""#,
                "sh",
            ])
            .arg(&pids)
            .contain(Containment::Group)
            .timeout(limit)
            .output();
        let started = Instant::now();
        let tree = read_tree_file(&pids, 2).await;
        let lead = leader(&tree);
        assert!(eventually(PATIENCE, || our_zombie(lead)).await);
        assert!(
            stays_our_zombie(lead, Duration::from_millis(200)).await,
            "reaped while a stop of its group may still come"
        );
        assert!(started.elapsed() < limit);
        let err = bounded(PATIENCE, output).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert_all_gone(&tree, Duration::ZERO);
        assert!(not_our_child(lead));
    }
);

bounded_test!(
    /// The group-reuse rule on the real kernel, with pid reuse forced
    /// through `ns_last_pid` (root; the test fails where it cannot force
    /// it): while a kill_on_drop stop holds the dead leader, a process
    /// aimed at its id cannot get it; once the stop is over and brood has
    /// reaped it, a stranger that takes the id and leads a group of its own
    /// gets nothing from any stop of brood's until well past the grace, the
    /// timers of a stop that ended early included (they would send the
    /// final SIGKILL at the end of the grace, to whoever had the id then).
    #[tokio::test]
    async fn no_stop_reaches_a_recycled_process_group() {
        // brood's lazy machinery first, so that its thread's creation does
        // not take the aimed pid.
        Command::new("true").status().await.unwrap();

        // Held: the id stays reserved while the stop runs. The leader dies
        // of the SIGTERM at once and leaves its group empty, but its stop
        // lasts until the final SIGKILL at the end of the grace, and holds
        // its zombie until then: the only thing that keeps the id reserved.
        let grace = Duration::from_secs(1);
        let child = Command::new("sleep")
            .arg("1000")
            .contain(Containment::Group)
            .kill_on_drop(true)
            .grace(grace)
            .spawn()
            .unwrap();
        let pgid = child.id().unwrap();
        let dropped = Instant::now();
        drop(child);
        assert!(eventually(PATIENCE, || our_zombie(pgid)).await);
        let mut other = group_leader_aimed_at(pgid);
        let other_pid = other.id();
        other.kill().unwrap();
        other.wait().unwrap();
        assert_ne!(other_pid, pgid, "a held leader's id was given away");
        assert!(our_zombie(pgid), "reaped during the stop");
        assert!(dropped.elapsed() < grace, "{:?}", dropped.elapsed());
        assert!(eventually(PATIENCE, || not_our_child(pgid)).await);
        assert!(
            dropped.elapsed() >= grace,
            "reaped before the final SIGKILL"
        );
        // Reaped: a stranger may take the id now, and nothing of the stop
        // (which began at the drop) may reach it.
        let until = (dropped + grace + Duration::from_millis(300))
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(300));
        stranger_is_spared(pgid, until).await;

        // A terminate that returns as soon as the group is empty: its stop
        // is over then, and nothing of it comes later, in particular not
        // the final SIGKILL at the end of the grace it did not need.
        let mut child = Command::new("sleep")
            .arg("1000")
            .contain(Containment::Group)
            .spawn()
            .unwrap();
        let pgid = child.id().unwrap();
        let started = Instant::now();
        let status = child.terminate(grace).await.unwrap();
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        assert!(started.elapsed() < grace, "{:?}", started.elapsed());
        assert!(not_our_child(pgid), "terminate returned before the reap");
        let after_the_grace = (started + grace + Duration::from_millis(300))
            .saturating_duration_since(Instant::now());
        stranger_is_spared(pgid, after_the_grace).await;
    }
);

/// A `sleep` spawned with std, leading a new group, with the kernel's next
/// pid aimed at `pid` first (it gets `pid` unless another process is
/// created in between). Fails where the pid cannot be aimed.
fn group_leader_aimed_at(pid: u32) -> std::process::Child {
    assert!(
        aim_next_pid(pid),
        "cannot write /proc/sys/kernel/ns_last_pid (not root in this pid namespace?)"
    );
    std::process::Command::new("sleep")
        .arg("1000")
        .process_group(0)
        .spawn()
        .unwrap()
}

/// Makes a stranger (spawned with std, not brood) take over id `pgid` as
/// the leader of a new group, retrying while other processes grab the pid
/// first, and checks that it lives through `window`. Fails where the reuse
/// cannot be forced, so that the check is never skipped unseen.
async fn stranger_is_spared(pgid: u32, window: Duration) {
    for _ in 0..200 {
        let mut stranger = group_leader_aimed_at(pgid);
        if stranger.id() != pgid {
            stranger.kill().unwrap();
            stranger.wait().unwrap();
            continue;
        }
        let hit = eventually(window, || stranger.try_wait().unwrap().is_some()).await;
        let _ = stranger.kill();
        let status = stranger.wait().unwrap();
        assert!(
            !hit,
            "the stranger leading group {pgid} was stopped: {status}"
        );
        return;
    }
    panic!("other processes took pid {pgid} first 200 times");
}
