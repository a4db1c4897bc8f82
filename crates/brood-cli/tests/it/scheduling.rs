//! -j forms, --delay, --halt (exit statuses as GNU parallel's), --termseq,
//! --retries, --retry-delay, --timeout N%, SIGHUP drains.

use crate::support::{bin, brood, parallel, read_joblog, wait_for, Field, TempDir, LIMIT};
use std::time::{Duration, Instant};

#[test]
fn jobs_forms() {
    // Each job prints how many jobs ran at its start; -j1 and -j 1% (one
    // CPU at least) run one at a time, so none sees another.
    for j in ["1", "1%", "-1000"] {
        let dir = TempDir::new("jforms");
        let script = format!(
            "mkdir {l} || exit 1; sleep 0.05; rmdir {l}",
            l = dir.s("lock")
        );
        brood()
            .args(["run", "-j", j, "sh", "-c", &script, ":::", "1", "2", "3"])
            .assert()
            .success();
    }
    brood()
        .args(["run", "-j", "0", "true", ":::", "a", "b"])
        .assert()
        .success();
    brood()
        .args(["run", "-j", "50%", "true", ":::", "a"])
        .assert()
        .success();
}

#[test]
fn delay_paces_starts() {
    let t0 = Instant::now();
    brood()
        .args([
            "run", "-j", "4", "--delay", "300ms", "true", ":::", "a", "b", "c",
        ])
        .assert()
        .success();
    assert!(
        t0.elapsed() >= Duration::from_millis(600),
        "{:?}",
        t0.elapsed()
    );
}

#[test]
fn load_and_memfree_admit_jobs() {
    brood()
        .args([
            "run",
            "--load",
            "1000",
            "--memfree",
            "1k",
            "true",
            ":::",
            "a",
        ])
        .assert()
        .success();
    brood()
        .args(["run", "--memfree", "lots", "true", ":::", "a"])
        .assert()
        .code(255);
}

/// Exit statuses as GNU parallel gives them, run side by side.
#[test]
fn halt_matches_gnu_parallel() {
    let codes = ["0", "3", "0", "4", "0", "5", "0", "0", "0", "0"];
    for h in [
        "now,fail=1",
        "soon,fail=1",
        "now,fail=2",
        "now,success=1",
        "soon,done=2",
        "soon,fail=30%",
        "now,fail=50%",
        "1",
        "2",
        "-1",
        "25%",
        "never",
    ] {
        let mut args = vec!["-j1", "--halt", h, "sh", "-c", "exit $0", ":::"];
        args.extend(codes);
        let ours = brood()
            .arg("run")
            .args(&args)
            .output()
            .unwrap()
            .status
            .code();
        let mut theirs_args = vec!["-j1", "--halt", h, "exit {}", ":::"];
        theirs_args.extend(codes);
        let (theirs, _) = parallel(&theirs_args);
        assert_eq!(ours, theirs, "--halt {h}");
    }
}

#[test]
fn halt_now_stops_running_jobs() {
    let dir = TempDir::new("halt-now");
    let log = dir.s("log.jsonl");
    let t0 = Instant::now();
    brood()
        .args([
            "run",
            "-j",
            "2",
            "--halt",
            "now,fail=1",
            "--joblog",
            &log,
            "sh",
            "-c",
        ])
        .args([
            "if [ $0 = fail ]; then sleep 0.2; exit 1; else sleep 30; fi",
            ":::",
            "slow",
            "fail",
            "never",
        ])
        .assert()
        .code(1);
    assert!(t0.elapsed() < Duration::from_secs(10));
    let recs = read_joblog(dir.join("log.jsonl").as_path());
    assert_eq!(recs.len(), 2);
    let slow = recs
        .iter()
        .find(|r| r.field("input").str() == "slow")
        .unwrap();
    assert_eq!(slow.field("signal").num(), 15.0);
    assert_eq!(slow.field("outcome").str(), "stopped");
}

#[test]
fn termseq_signals_in_order() {
    // The job logs each signal it gets and ignores them; KILL ends it.
    let dir = TempDir::new("termseq");
    let sigs = dir.s("sigs");
    let script = format!("trap 'echo INT >> {sigs}' INT; trap 'echo USR1 >> {sigs}' USR1; while :; do sleep 0.01; done");
    let t0 = Instant::now();
    brood()
        .args([
            "run",
            "--timeout",
            "200ms",
            "--termseq",
            "INT,300,USR1,300,KILL,25",
            "sh",
            "-c",
            &script,
            ":::",
            "x",
        ])
        .assert()
        .code(1);
    let elapsed = t0.elapsed();
    assert!(elapsed >= Duration::from_millis(800), "{elapsed:?}");
    assert_eq!(std::fs::read_to_string(&sigs).unwrap(), "INT\nUSR1\n");
}

#[test]
fn retries_count_attempts_in_all() {
    let dir = TempDir::new("retries");
    let runs = dir.s("runs");
    let count = format!("echo run >> {runs}; exit 4");
    let log = dir.s("log.jsonl");
    brood()
        .args([
            "run",
            "--retries",
            "3",
            "--joblog",
            &log,
            "sh",
            "-c",
            &count,
            ":::",
            "x",
        ])
        .assert()
        .code(1);
    assert_eq!(std::fs::read_to_string(&runs).unwrap().lines().count(), 3);
    assert_eq!(
        read_joblog(dir.join("log.jsonl").as_path())[0]
            .field("retries")
            .num(),
        2.0
    );
    // As GNU parallel: --retries 3 runs a failing job 3 times.
    let prun = dir.s("prun");
    parallel(&[
        "--retries",
        "3",
        &format!("echo run >> {prun}; exit 4"),
        ":::",
        "x",
    ]);
    assert_eq!(std::fs::read_to_string(&prun).unwrap().lines().count(), 3);
}

#[test]
fn retry_delay_backs_off() {
    let dir = TempDir::new("backoff");
    let stamps = dir.s("stamps");
    let script = format!("date +%s.%N >> {stamps}; exit 1");
    brood()
        .args([
            "run",
            "--retries",
            "3",
            "--retry-delay",
            "200ms",
            "sh",
            "-c",
            &script,
            ":::",
            "x",
        ])
        .assert()
        .code(1);
    let t: Vec<f64> = std::fs::read_to_string(&stamps)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(t.len(), 3);
    assert!(t[1] - t[0] >= 0.2, "{t:?}");
    assert!(t[2] - t[1] >= 0.4, "{t:?}");
}

#[test]
fn timeout_relative_to_median() {
    let dir = TempDir::new("pct");
    let log = dir.s("log.jsonl");
    // Three quick jobs set the median near 0.1 s; at 300% the slow one is
    // stopped long before its 20 s.
    let t0 = Instant::now();
    brood()
        .args([
            "run",
            "-j1",
            "--timeout",
            "300%",
            "--joblog",
            &log,
            "sleep",
            ":::",
            "0.1",
            "0.1",
            "0.1",
            "20",
        ])
        .assert()
        .code(1);
    assert!(t0.elapsed() < Duration::from_secs(10));
    let recs = read_joblog(dir.join("log.jsonl").as_path());
    let slow = recs
        .iter()
        .find(|r| r.field("input").str() == "20")
        .unwrap();
    assert!(slow.field("timed_out").bool());
    brood()
        .args(["run", "--timeout", "1h30m", "true", ":::", "a"])
        .assert()
        .success();
    brood()
        .args(["run", "--timeout", "2.5", "true", ":::", "a"])
        .assert()
        .success();
}

#[test]
fn sighup_drains() {
    let dir = TempDir::new("hup");
    let script = format!("touch {d}/started-$0; sleep 1; echo done $0", d = dir.s(""));
    let child = std::process::Command::new(bin())
        .args([
            "run", "-j", "2", "sh", "-c", &script, ":::", "a", "b", "c", "d",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for(LIMIT, || dir.join("started-a").exists()
        && dir.join("started-b").exists()));
    crate::support::kill(child.id(), nix::sys::signal::Signal::SIGHUP).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().count(),
        2,
        "running jobs finish, no new ones: {text}"
    );
    assert!(!dir.join("started-c").exists());
}
