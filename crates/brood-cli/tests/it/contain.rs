//! Contained jobs (issue 14, section 1): every stop brood makes (a
//! timeout, `--halt now`, Ctrl-C, the engine's SIGTERM with its
//! `--termseq` and `--signal-grace`) reaches the whole tree, grandchildren
//! that called `setsid` or double-forked included; a job is done once its
//! leader has exited and its output is closed, or `--wait-delay` later;
//! leftovers are counted and stopped (or kept); the job log has the whole
//! tree's CPU.
//!
//! Every process of a job tree carries a [`Marker`] in its environment, so
//! that `/proc` finds them all after brood has exited, however they
//! detached, and a recycled pid never passes for a survivor. brood must
//! have stopped its trees *before* it exits, so survivors are looked for
//! at once, not after a grace (a zombie that init has not reaped yet
//! counts as gone: this sandbox's init reaps orphans about a second late).
//!
//! The cgroup tests give brood a [`PrivateParent`] cgroup as `--cgroup-parent`
//! and check that nothing is left in it when brood exits. Where no
//! writable cgroup v2 exists they print `BROOD-CGROUP-SKIP: <reason>` and
//! pass; under `BROOD_REQUIRE_CGROUP=1` (CI) they fail instead.

use crate::support::{bin, brood, kill, Field, TempDir, LIMIT};
use brood_testkit::cgroup::PrivateParent;
use brood_testkit::procfs::{self, Marker};
use brood_testkit::{eventually_blocking, jsonl};
use nix::sys::signal::Signal;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A job (`sh tree.sh DIR NAME [ignore]`) whose tree has two escapees: a
/// grandchild that called `setsid` and keeps the job's stdout and stderr,
/// and a daemon that double-forked into a session of its own (its output
/// to /dev/null, its parent gone, so it is brood's, the subreaper's,
/// child). Both outlive SIGTERM: they note it in `DIR/term.NAME` and go on.
/// Each writes its pid to `DIR/pids.NAME`; the job waits until both have,
/// adds its own, marks itself started (`DIR/started.NAME`) and sleeps.
/// With `ignore`, the job itself ignores SIGTERM too.
const TREE: &str = r#"d=$1 n=$2
if [ "$3" = ignore ]; then trap '' TERM; fi
escapee='trap "echo TERM >> \"$2\"" TERM; echo $$ >> "$1"; while :; do sleep 300 & wait; done'
setsid sh -c "$escapee" sh "$d/pids.$n" "$d/term.$n" &
( setsid sh -c "$escapee" sh "$d/pids.$n" "$d/term.$n" </dev/null >/dev/null 2>&1 & )
while [ "$(cat "$d/pids.$n" 2>/dev/null | wc -l)" -lt 2 ]; do sleep 0.01; done
echo $$ >> "$d/pids.$n"
touch "$d/started.$n"
sleep 300 & wait
"#;

/// Writes [`TREE`] into `dir`; returns the job's command before its name.
fn tree_job(dir: &TempDir) -> Vec<String> {
    std::fs::write(dir.join("tree.sh"), TREE).unwrap();
    vec!["sh".into(), dir.s("tree.sh"), dir.s("")]
}

/// The pids the tree jobs wrote, all jobs together.
fn tree_pids(dir: &TempDir) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with("pids.") {
            pids.extend(procfs::read_pids(&entry.path()));
        }
    }
    pids
}

/// The SIGTERMs the escapees noted, all jobs together.
fn escapee_terms(dir: &TempDir) -> usize {
    std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("term."))
        .map(|e| crate::support::lines_of(&e.path()).len())
        .sum()
}

fn started(dir: &TempDir) -> usize {
    std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("started."))
        .count()
}

/// `brood` carrying `marker`, which every job process inherits.
fn marked_brood(marker: &Marker) -> assert_cmd::Command {
    let mut cmd = brood();
    cmd.env(Marker::VAR, marker.value());
    cmd
}

/// The job log's only record.
fn only_record(log: &Path) -> serde_json::Value {
    let mut records = jsonl::read_file(log);
    assert_eq!(records.len(), 1, "{records:?}");
    records.pop().unwrap()
}

/// Checks what must hold once brood has exited after stopping tree jobs:
/// every job started both escapees, and no process of any tree is left
/// (nor, with a cgroup, anything in it).
fn assert_trees_gone(dir: &TempDir, jobs: usize, marker: &Marker, cgroups: Option<&PrivateParent>) {
    let pids = tree_pids(dir);
    assert_eq!(pids.len(), 3 * jobs, "each job writes 3 pids: {pids:?}");
    if let Some(cgroups) = cgroups {
        let members = cgroups.members();
        assert!(
            !cgroups.populated(),
            "processes left in the jobs' cgroups: {members:?}"
        );
    }
    marker.assert_none_left("once brood has exited");
}

#[test]
fn a_timeout_stops_setsid_and_double_forked_grandchildren() {
    let Some(cgroups) = PrivateParent::new("timeout") else {
        return;
    };
    let dir = TempDir::new("contain-timeout");
    let marker = Marker::new("contain-timeout");
    let log = dir.s("log.jsonl");
    let t0 = Instant::now();
    marked_brood(&marker)
        .args([
            "run",
            "--timeout",
            "2s",
            "--joblog",
            &log,
            "--cgroup-parent",
        ])
        .arg(&cgroups.path)
        .arg("--")
        .args(tree_job(&dir))
        .args(["{}", ":::", "a", "b"])
        .assert()
        .code(2);
    assert_trees_gone(&dir, 2, &marker, Some(&cgroups));
    // The rest of the sequence began with SIGTERM to every member, the
    // escapees included; SIGKILL followed.
    assert_eq!(escapee_terms(&dir), 4);
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    for record in jsonl::read_file(&dir.join("log.jsonl")) {
        assert_eq!(record.field("outcome").str(), "timed_out", "{record}");
        assert_eq!(record.field("containment").str(), "cgroup", "{record}");
        // The escapees at least were left once the leader had exited.
        assert!(record.field("leftovers").num() >= 2.0, "{record}");
    }
}

#[test]
fn with_only_a_process_group_the_escapees_survive() {
    // The control for the cgroup tests: with `--contain group` the same
    // timeout stops the job's group, and the grandchildren that left it
    // live on (the marker finds them, so the other tests' checks can
    // fail).
    let dir = TempDir::new("contain-group");
    let marker = Marker::new("contain-group");
    let log = dir.s("log.jsonl");
    marked_brood(&marker)
        .args(["run", "--contain", "group", "--timeout", "2s"])
        .args(["--wait-delay", "200ms", "--joblog", &log, "--"])
        .args(tree_job(&dir))
        .args(["{}", ":::", "a"])
        .assert()
        .code(1);
    let pids = tree_pids(&dir);
    assert_eq!(pids.len(), 3, "{pids:?}");
    let survivors = marker.live();
    // The two escapees (and the sleeps they run).
    assert!(
        pids[..2].iter().all(|pid| survivors.contains(pid)),
        "{pids:?} {survivors:?}"
    );
    assert_eq!(escapee_terms(&dir), 0, "no stop reached them");
    let record = only_record(&dir.join("log.jsonl"));
    assert_eq!(record.field("containment").str(), "group");
    assert!(record.field("tree_user_s").is_null());
    // `marker` kills them on drop.
}

/// brood running `TREE` jobs in the background with `args`, stopped by
/// `signals` (each sent once the previous one was reported on stderr) once
/// `jobs` of them have started. Returns brood's exit status and stderr.
fn signalled_run(
    marker: &Marker,
    dir: &TempDir,
    args: &[&str],
    jobs: usize,
    signals: &[(Signal, &str)],
) -> (Option<i32>, String) {
    let mut child = Command::new(bin())
        .env(Marker::VAR, marker.value())
        .arg("run")
        .args(args)
        .arg("--")
        .args(tree_job(dir))
        .arg("{}")
        .arg(":::")
        .args(["a", "b", "c", "d"].iter().take(jobs + 1))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let up = eventually_blocking(LIMIT, || started(dir) == jobs);
    if !up {
        let _ = child.kill();
        panic!("the jobs did not start");
    }
    for &(sig, _) in signals {
        kill(child.id(), sig).unwrap();
    }
    let ended = eventually_blocking(LIMIT, || child.try_wait().unwrap().is_some());
    if !ended {
        let _ = child.kill();
        panic!("brood did not exit within {LIMIT:?}");
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    for &(_, said) in signals {
        assert!(err.contains(said), "no {said:?} in {err}");
    }
    (out.status.code(), err)
}

#[test]
fn ctrl_c_stops_every_tree() {
    let Some(cgroups) = PrivateParent::new("sigint") else {
        return;
    };
    let dir = TempDir::new("contain-sigint");
    let marker = Marker::new("contain-sigint");
    let parent = cgroups.path.to_str().unwrap();
    let t0 = Instant::now();
    let (code, _) = signalled_run(
        &marker,
        &dir,
        &["-j", "2", "--cgroup-parent", parent],
        2,
        &[(Signal::SIGINT, "got SIGINT")],
    );
    assert_eq!(code, Some(130));
    assert_trees_gone(&dir, 2, &marker, Some(&cgroups));
    assert_eq!(escapee_terms(&dir), 4);
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
}

#[test]
fn the_engines_sigterm_stops_every_tree_within_the_signal_grace() {
    // Slurm's stop: SIGTERM, then SIGKILL after KillWait. The jobs ignore
    // SIGTERM, their own included, and the --termseq would wait a minute:
    // --signal-grace cuts it to one second, then every tree is killed.
    let Some(cgroups) = PrivateParent::new("sigterm") else {
        return;
    };
    let dir = TempDir::new("contain-sigterm");
    let marker = Marker::new("contain-sigterm");
    std::fs::write(dir.join("tree.sh"), TREE).unwrap();
    let parent = cgroups.path.to_str().unwrap();
    let log = dir.s("log.jsonl");
    let mut child = Command::new(bin())
        .env(Marker::VAR, marker.value())
        .args(["run", "-j", "2", "--termseq", "TERM,60000,KILL,25"])
        .args(["--signal-grace", "1s", "--cgroup-parent", parent])
        .args(["--joblog", &log, "--", "sh", &dir.s("tree.sh"), &dir.s("")])
        .args(["{}", "ignore", ":::", "a", "b", "c"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if !eventually_blocking(LIMIT, || started(&dir) == 2) {
        let _ = child.kill();
        panic!("the jobs did not start");
    }
    let t0 = Instant::now();
    kill(child.id(), Signal::SIGTERM).unwrap();
    if !eventually_blocking(LIMIT, || child.try_wait().unwrap().is_some()) {
        let _ = child.kill();
        panic!("brood did not exit within {LIMIT:?}");
    }
    let stopped_in = t0.elapsed();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{err}");
    assert!(err.contains("--signal-grace (1.00s) is over"), "{err}");
    assert_trees_gone(&dir, 2, &marker, Some(&cgroups));
    // One second of grace, then SIGKILL: well inside Slurm's KillWait.
    assert!(
        stopped_in >= Duration::from_secs(1) && stopped_in < Duration::from_secs(10),
        "{stopped_in:?}"
    );
    let records = jsonl::read_file(&dir.join("log.jsonl"));
    assert_eq!(records.len(), 2);
    for record in records {
        assert_eq!(record.field("outcome").str(), "stopped", "{record}");
        assert_eq!(record.field("signal").num(), 9.0, "{record}");
    }
}

#[test]
fn halt_now_stops_the_trees_of_the_other_jobs() {
    let Some(cgroups) = PrivateParent::new("halt") else {
        return;
    };
    let dir = TempDir::new("contain-halt");
    let marker = Marker::new("contain-halt");
    std::fs::write(dir.join("tree.sh"), TREE).unwrap();
    // Job `fail` waits until the tree job has started, then fails.
    let job = format!(
        "case $1 in fail) while [ ! -e {d}/started.tree ]; do sleep 0.01; done; exit 3;; \
         *) exec sh {d}/tree.sh {d} \"$1\";; esac",
        d = dir.s("")
    );
    marked_brood(&marker)
        .args(["run", "-j", "2", "--halt", "now,fail=1", "--cgroup-parent"])
        .arg(&cgroups.path)
        .args(["--", "sh", "-c", &job, "sh", "{}", ":::", "tree", "fail"])
        .assert()
        .code(3);
    assert_trees_gone(&dir, 1, &marker, Some(&cgroups));
}

#[test]
fn a_shell_that_exits_0_while_a_background_child_holds_stdout_succeeds() {
    // The leader is done; the background sleep holds its stdout. After
    // --wait-delay (2 s by default) the job is done: a success, not a
    // timeout, and the sleep (left over) is stopped. Any containment
    // reaches it: it stayed in the job's group.
    let dir = TempDir::new("contain-holder");
    let marker = Marker::new("contain-holder");
    let log = dir.s("log.jsonl");
    let out = marked_brood(&marker)
        .args(["run", "--timeout", "20s", "--joblog", &log, "--"])
        .args(["sh", "-c", "echo hi; sleep 300 & exit 0", ":::", "a"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    marker.assert_none_left("after the job");
    let record = only_record(&dir.join("log.jsonl"));
    assert_eq!(record.field("outcome").str(), "ok", "{record}");
    assert!(!record.field("timed_out").bool());
    assert_eq!(record.field("exit_code").num(), 0.0);
    assert_eq!(record.field("leftovers").num(), 1.0, "{record}");
    let runtime = record.field("runtime_s").num();
    assert!((2.0..10.0).contains(&runtime), "{record}");
}

#[test]
fn wait_delay_bounds_the_wait_and_leftovers_keep_leaves_them() {
    let dir = TempDir::new("contain-keep");
    let marker = Marker::new("contain-keep");
    let log = dir.s("log.jsonl");
    let out = marked_brood(&marker)
        .args(["run", "--wait-delay", "300ms", "--leftovers", "keep"])
        .args(["--joblog", &log, "--"])
        .args(["sh", "-c", "echo hi; sleep 300 & exit 0", ":::", "a"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    let record = only_record(&dir.join("log.jsonl"));
    assert_eq!(record.field("outcome").str(), "ok", "{record}");
    assert_eq!(record.field("leftovers").num(), 1.0, "{record}");
    let runtime = record.field("runtime_s").num();
    assert!((0.3..2.0).contains(&runtime), "{record}");
    // Kept: the sleep runs on after brood (the marker kills it on drop).
    let kept = marker.live();
    assert_eq!(kept.len(), 1, "{kept:?}");
}

#[test]
fn a_leftover_that_writes_without_pause_is_cut_off() {
    // `yes` keeps the pipe always ready: the cut-off still wins.
    let marker = Marker::new("contain-yes");
    let t0 = Instant::now();
    let out = marked_brood(&marker)
        .args(["run", "--output", "none", "--wait-delay", "300ms", "--"])
        .args(["sh", "-c", "yes & exit 0", ":::", "a"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    marker.assert_none_left("after the job");
}

#[test]
fn a_leftover_off_the_pipes_is_stopped_as_soon_as_the_job_is_done() {
    let dir = TempDir::new("contain-leftover");
    let marker = Marker::new("contain-leftover");
    let log = dir.s("log.jsonl");
    let t0 = Instant::now();
    marked_brood(&marker)
        .args(["run", "--joblog", &log, "--"])
        .args(["sh", "-c", "sleep 300 >/dev/null 2>&1 & exit 0", ":::", "a"])
        .assert()
        .success();
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    marker.assert_none_left("after the job");
    let record = only_record(&dir.join("log.jsonl"));
    assert_eq!(record.field("leftovers").num(), 1.0, "{record}");
    assert!(record.field("runtime_s").num() < 1.0, "{record}");
}

#[test]
fn tree_figures_count_a_detached_grandchilds_cpu() {
    // The leader double-forks a grandchild that burns about a second of
    // CPU (RLIMIT_CPU ends it, however loaded the machine is) and waits for
    // it to finish, burning next to nothing itself: its own figures miss
    // the grandchild (nobody in its tree waited for it), the cgroup's have
    // it. The burner's exact CPU time is what its own parent shell got from
    // wait4 (`times`): RLIMIT_CPU is checked against tick-sampled time, so
    // under load the burner may have run well under a second when it fires.
    let Some(cgroups) = PrivateParent::new("cpu") else {
        return;
    };
    let dir = TempDir::new("contain-cpu");
    let log = dir.s("log.jsonl");
    let job = format!(
        "( setsid sh -c 'sh -c \"ulimit -t 1; while :; do :; done\"; times > {d}/times; \
         touch {d}/burnt' </dev/null >/dev/null 2>&1 & ); \
         while [ ! -e {d}/burnt ]; do sleep 0.05; done",
        d = dir.s("")
    );
    brood()
        .args(["run", "--joblog", &log, "--cgroup-parent"])
        .arg(&cgroups.path)
        .args(["--", "sh", "-c", &job, ":::", "a"])
        .assert()
        .success();
    let record = only_record(&dir.join("log.jsonl"));
    let burner = children_cpu_of_times(&std::fs::read_to_string(dir.join("times")).unwrap());
    let leader = record.field("user_s").num() + record.field("sys_s").num();
    let tree = record.field("tree_user_s").num() + record.field("tree_sys_s").num();
    assert!(burner >= 0.5, "the burner's CPU: {burner}");
    // The cgroup counts in microseconds, wait4 too: allow their rounding.
    assert!(
        tree >= burner - 0.001,
        "the tree's CPU, burner {burner}: {record}"
    );
    assert!(leader < burner / 2.0, "the leader's own CPU: {record}");
    // No memory controller below the private parent: no tree peak.
    assert!(record.field("tree_peak_bytes").is_null(), "{record}");
    assert!(record.field("max_rss_bytes").num() > 0.0);
    // `brood log report` counts the tree's CPU, not the leader's.
    let out = brood()
        .args(["log", "report", "--json", &log])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let report = jsonl::parse_strict(&String::from_utf8_lossy(&out.stdout));
    let cpu = report.field("cpu");
    assert_eq!(cpu.field("whole_tree_jobs").num(), 1.0, "{report}");
    assert!(cpu.field("total_s").num() >= burner - 0.001, "{report}");
}

/// The children's CPU seconds (user + system) from a POSIX shell's `times`
/// (`0m0.990000s 0m0.004000s` on its second line).
fn children_cpu_of_times(times: &str) -> f64 {
    let line = times
        .lines()
        .nth(1)
        .unwrap_or_else(|| panic!("times: {times:?}"));
    line.split_whitespace()
        .map(|t| {
            let (m, s) = t.trim_end_matches('s').split_once('m').unwrap();
            m.parse::<f64>().unwrap() * 60.0 + s.parse::<f64>().unwrap()
        })
        .sum()
}

#[test]
fn the_default_is_a_cgroup_where_one_can_be_made() {
    // Under brood's own cgroup, the default parent.
    if PrivateParent::new("default-probe").is_none() {
        return;
    }
    let dir = TempDir::new("contain-default");
    let log = dir.s("log.jsonl");
    brood()
        .args(["run", "--joblog", &log, "--", "true", ":::", "a"])
        .assert()
        .success();
    let record = only_record(&dir.join("log.jsonl"));
    assert_eq!(record.field("containment").str(), "cgroup", "{record}");
    assert_eq!(record.field("leftovers").num(), 0.0, "{record}");
    assert!(record.field("tree_user_s").num() >= 0.0);
}

#[test]
fn contain_none_and_group_log_what_they_know() {
    let dir = TempDir::new("contain-none");
    for (how, containment) in [("none", None), ("group", Some("group"))] {
        let log = dir.s(&format!("{how}.jsonl"));
        brood()
            .args([
                "run",
                "--contain",
                how,
                "--joblog",
                &log,
                "--",
                "true",
                ":::",
                "a",
            ])
            .assert()
            .success();
        let record = only_record(Path::new(&log));
        for field in ["tree_user_s", "tree_sys_s", "tree_peak_bytes"] {
            assert!(record.field(field).is_null(), "{how}: {record}");
        }
        match containment {
            None => {
                assert!(record.field("containment").is_null(), "{record}");
                assert!(record.field("leftovers").is_null(), "{record}");
            }
            Some(name) => {
                assert_eq!(record.field("containment").str(), name, "{record}");
                assert_eq!(record.field("leftovers").num(), 0.0, "{record}");
            }
        }
    }
}

#[test]
fn a_bad_cgroup_parent_is_one_error_before_any_job() {
    // Under `cgroup` and `auto` alike: a parent named on purpose is no place
    // for `auto` to fall back quietly to process groups.
    let dir = TempDir::new("contain-bad-parent");
    let missing = dir.s("no-such-cgroup");
    let not_cgroup = dir.s("");
    let log = dir.s("log.jsonl");
    let ran = dir.s("ran");
    for (contain, parent, reason) in [
        ("cgroup", &missing, "does not exist"),
        ("auto", &missing, "does not exist"),
        ("auto", &not_cgroup, "is not on a cgroup v2 file system"),
    ] {
        let out = brood()
            .args(["run", "--contain", contain, "--cgroup-parent", parent])
            .args(["--joblog", &log, "--", "touch", &ran, ":::", "a", "b", "c"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{contain} {parent}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.starts_with("brood: error: cgroup parent "), "{err}");
        assert!(err.contains(parent.trim_end_matches('/')), "{err}");
        assert!(err.contains(reason), "{err}");
        assert!(!Path::new(&ran).exists(), "a job ran: {err}");
        assert!(!Path::new(&log).exists(), "the job log was opened: {err}");
    }
    // A cgroup parent is for cgroups only.
    brood()
        .args(["run", "--contain", "group", "--cgroup-parent", &missing])
        .args(["--", "true", ":::", "a"])
        .assert()
        .code(255)
        .stderr(predicates::str::contains(
            "--cgroup-parent needs --contain auto or cgroup",
        ));
}

#[test]
fn each_slot_reuses_the_cgroup_its_last_job_left_and_none_is_left_behind() {
    // 24 jobs that print the cgroup they ran in, two at a time. A job whose
    // leader was the last of its tree gives its cgroup back when the leader
    // is reaped, before its slot takes the next job: the run makes no more
    // cgroups than it has slots, and removes them before it exits.
    let Some(cgroups) = PrivateParent::new("reused") else {
        return;
    };
    let inputs: Vec<String> = (1..=24).map(|n| n.to_string()).collect();
    let out = brood()
        .args(["run", "-j", "2", "--cgroup-parent"])
        .arg(&cgroups.path)
        .args([
            "--",
            "sh",
            "-c",
            "exec cat /proc/self/cgroup",
            "sh",
            "{}",
            ":::",
        ])
        .args(&inputs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut seen: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("0::")).collect();
    assert_eq!(seen.len(), 24, "{text}");
    let parent_name = cgroups.path.file_name().unwrap().to_str().unwrap();
    assert!(
        seen.iter()
            .all(|c| c.contains(&format!("/{parent_name}/brood-"))),
        "{text}"
    );
    seen.sort_unstable();
    seen.dedup();
    assert!(
        seen.len() <= 2,
        "{} cgroups for 2 slots: {seen:?}",
        seen.len()
    );
    assert_eq!(cgroups.listing(), Vec::<String>::new());
}

#[test]
fn no_cgroup_is_left_behind() {
    // Every job's cgroup, and the check's, is removed before brood exits,
    // not left to a later brood's sweep: short jobs, a job with a leftover
    // that is stopped, and a failing one.
    let Some(cgroups) = PrivateParent::new("removed") else {
        return;
    };
    // `true` exits before brood has read its `populated 0`: without the
    // wait for it, most of these cgroups outlived brood.
    brood()
        .args(["run", "-j", "4", "--cgroup-parent"])
        .arg(&cgroups.path)
        .args(["--", "true", ":::", "1", "2", "3", "4", "5", "6", "7", "8"])
        .assert()
        .success();
    assert_eq!(cgroups.listing(), Vec::<String>::new());
    brood()
        .args(["run", "-j", "4", "--cgroup-parent"])
        .arg(&cgroups.path)
        .args([
            "--",
            "sh",
            "-c",
            "case $1 in 1) sleep 300 & ;; 2) exit 1;; esac",
            "sh",
        ])
        .args([":::", "1", "2", "3", "4"])
        .assert()
        .code(1);
    assert_eq!(cgroups.listing(), Vec::<String>::new());
}
