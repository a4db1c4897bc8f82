//! brood stopped by a cluster engine: Slurm's `scancel` and time limit
//! signal brood and every one of its jobs at about the same moment, then
//! SIGKILL after KillWait. Jobs cut short so must be logged `stopped` (so
//! that `--resume` runs them again), the trees stopped, and the log whole,
//! within the engine's window.

use crate::support::{bin, brood_in_engine, kill, lines_of, Background, Field, TempDir, LIMIT};
use brood_testkit::{eventually_blocking, jsonl, procfs};
use nix::sys::signal::Signal;
use std::io::{BufRead, BufReader};
use std::process::Command;
use std::time::{Duration, Instant};

fn outcomes(path: &std::path::Path) -> Vec<(String, String)> {
    let mut got: Vec<(String, String)> = jsonl::read_file(path)
        .iter()
        .map(|r| {
            (
                r.field("input").str().to_string(),
                r.field("outcome").str().to_string(),
            )
        })
        .collect();
    got.sort();
    got
}

#[test]
fn a_job_killed_by_a_signal_brood_did_not_send_is_stopped() {
    let dir = TempDir::new("outside-kill");
    let log = dir.s("log.jsonl");
    let job = [
        "sh",
        "-c",
        "echo \"$1\" >> \"$2\"; case $1 in cut) kill -TERM $$;; esac",
        "sh",
        "{}",
        &dir.s("ran"),
    ];
    let out = brood_in_engine(&[])
        .args(["run", "--joblog", &log, "--"])
        .args(job)
        .args([":::", "ok", "cut"])
        .output()
        .unwrap();
    // Not a success: it counts as a failure for the exit status.
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("was killed by SIGTERM, which brood did not send"),
        "{err}"
    );
    assert_eq!(
        outcomes(&dir.join("log.jsonl")),
        [("cut".into(), "stopped".into()), ("ok".into(), "ok".into())]
    );
    let cut = jsonl::read_file(&dir.join("log.jsonl"))
        .into_iter()
        .find(|r| r.field("input").str() == "cut")
        .unwrap();
    assert_eq!(cut.field("signal").num(), 15.0);
    // --resume runs it again, and only it.
    std::fs::remove_file(dir.join("ran")).unwrap();
    brood_in_engine(&[])
        .args(["run", "--resume", "--joblog", &log, "--"])
        .args(job)
        .args([":::", "ok", "cut"])
        .output()
        .unwrap();
    assert_eq!(lines_of(&dir.join("ran")), ["cut"]);
}

#[test]
fn a_failure_just_before_brood_is_stopped_is_logged_stopped() {
    // The engine's SIGTERM reaches a job first; it handles it by exiting 3,
    // and brood handles that before its own SIGTERM arrives. The job was
    // stopped, not failed: logged so, --resume runs it again. A failure
    // from well before the stop stays a failure.
    let dir = TempDir::new("hold");
    let log = dir.s("log.jsonl");
    // `keep` runs on, so that brood is still running when `late` ends.
    let script = format!(
        "case $1 in early) exit 2;; late) trap 'exit 3' TERM; echo $$ > {p};; esac; \
         while :; do sleep 0.05; done",
        p = dir.s("pid")
    );
    let mut brood = Background::spawn(
        Command::new(bin())
            .args([
                "run", "-j", "3", "--joblog", &log, "--", "sh", "-c", &script,
            ])
            .args(["sh", "{}", ":::", "early", "late", "keep"]),
    );
    // The early failure is written once its hold is over, with no stop.
    let logged = |input: &str| {
        std::fs::read_to_string(dir.join("log.jsonl"))
            .unwrap_or_default()
            .contains(&format!("\"input\":\"{input}\""))
    };
    assert!(
        eventually_blocking(LIMIT, || logged("early")),
        "no record of early"
    );
    assert!(eventually_blocking(LIMIT, || procfs::read_pids(
        &dir.join("pid")
    )
    .len()
        == 1));
    let late = procfs::read_pids(&dir.join("pid"))[0];
    let stderr = brood.child().stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    kill(late, Signal::SIGTERM).unwrap();
    // brood reports the failure as it handles the job's end: from then on
    // only the held record can still make it a stop.
    let end = Instant::now() + LIMIT;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("brood never reported late's failure");
        if line.contains("failed with exit status 3") {
            break;
        }
    }
    kill(brood.child().id(), Signal::SIGTERM).unwrap();
    let (code, _, _) = brood.finish();
    assert_eq!(code, Some(143));
    let records = jsonl::read_file(&dir.join("log.jsonl"));
    let late_record = records
        .iter()
        .find(|r| r.field("input").str() == "late")
        .unwrap();
    assert_eq!(late_record.field("exit_code").num(), 3.0);
    assert_eq!(
        outcomes(&dir.join("log.jsonl")),
        [
            ("early".into(), "failed".into()),
            ("keep".into(), "stopped".into()),
            ("late".into(), "stopped".into())
        ]
    );
}

#[test]
fn an_engine_stop_reaches_brood_and_every_job_at_once() {
    // As a plain scancel: SIGCONT and SIGTERM to every process of the task,
    // the jobs before brood. Jobs that die of it, that exit 1 on it, and
    // that ignore it (with a grandchild that ignores it too): all stopped,
    // none failed, nothing left, the log whole, well inside KillWait.
    let dir = TempDir::new("engine-stop");
    let log = dir.s("log.jsonl");
    let script = format!(
        "case $1 in polite) ;; exits) trap 'exit 1' TERM;; stubborn) trap '' TERM; \
         (trap '' TERM; while :; do sleep 0.05; done) & echo $! >> {p};; esac; \
         echo $$ >> {p}; while :; do sleep 0.05; done",
        p = dir.s("pids")
    );
    let mut brood = Background::spawn(
        Command::new(bin())
            .args([
                "run", "-j", "3", "--joblog", &log, "--", "sh", "-c", &script,
            ])
            .args(["sh", "{}", ":::", "polite", "exits", "stubborn"]),
    );
    assert!(
        eventually_blocking(LIMIT, || procfs::read_pids(&dir.join("pids")).len() == 4),
        "the jobs did not start"
    );
    let t0 = Instant::now();
    let mut everyone = procfs::read_pids(&dir.join("pids"));
    everyone.push(brood.child().id());
    for &pid in &everyone {
        let _ = kill(pid, Signal::SIGCONT);
        let _ = kill(pid, Signal::SIGTERM);
    }
    let (code, _, err) = brood.finish();
    assert_eq!(code, Some(143), "{err}");
    // The default --termseq is under half a second; Slurm's KillWait is 30.
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    procfs::assert_all_dead(&dir.join("pids"), 4);
    assert_eq!(
        outcomes(&dir.join("log.jsonl")),
        [
            ("exits".into(), "stopped".into()),
            ("polite".into(), "stopped".into()),
            ("stubborn".into(), "stopped".into())
        ]
    );
}

#[test]
fn signal_grace_bounds_the_stop() {
    // A --termseq longer than the engine waits: --signal-grace cuts it, so
    // brood still stops the job and writes the log before SIGKILL comes.
    let dir = TempDir::new("signal-grace");
    let log = dir.s("log.jsonl");
    let script = format!(
        "trap '' TERM; echo $$ >> {}; while :; do sleep 0.05; done",
        dir.s("pids")
    );
    let mut brood = Background::spawn(
        Command::new(bin())
            .args([
                "run",
                "--termseq",
                "TERM,20000,KILL",
                "--signal-grace",
                "300ms",
            ])
            .args(["--joblog", &log, "--", "sh", "-c", &script, ":::", "a"]),
    );
    assert!(eventually_blocking(LIMIT, || procfs::read_pids(
        &dir.join("pids")
    )
    .len()
        == 1));
    let t0 = Instant::now();
    kill(brood.child().id(), Signal::SIGTERM).unwrap();
    let (code, _, err) = brood.finish();
    assert_eq!(code, Some(143));
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert!(
        err.contains("--signal-grace (300ms) is over: killing every job now"),
        "{err}"
    );
    procfs::assert_all_dead(&dir.join("pids"), 1);
    let records = jsonl::read_file(&dir.join("log.jsonl"));
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].field("outcome").str(), "stopped");
    assert_eq!(records[0].field("signal").num(), 9.0);
}

#[test]
fn a_job_waiting_for_its_next_attempt_is_stopped_not_failed() {
    // It failed, and has attempts left: stopped before it could have them,
    // it is logged stopped (--resume runs it again), not failed.
    let dir = TempDir::new("retry-stop");
    let log = dir.s("log.jsonl");
    let script = format!("echo $$ >> {}; exit 5", dir.s("pids"));
    let mut brood = Background::spawn(
        Command::new(bin())
            .args(["run", "--retries", "3", "--retry-delay", "30s"])
            .args(["--joblog", &log, "--", "sh", "-c", &script, ":::", "a"]),
    );
    assert!(eventually_blocking(LIMIT, || procfs::read_pids(
        &dir.join("pids")
    )
    .len()
        == 1));
    let first = procfs::read_pids(&dir.join("pids"))[0];
    assert!(eventually_blocking(
        LIMIT,
        || !brood_testkit::procfs::alive(first)
    ));
    let t0 = Instant::now();
    kill(brood.child().id(), Signal::SIGTERM).unwrap();
    let (code, _, _) = brood.finish();
    assert_eq!(code, Some(143));
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    let records = jsonl::read_file(&dir.join("log.jsonl"));
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].field("exit_code").num(), 5.0);
    assert_eq!(records[0].field("outcome").str(), "stopped");
    assert_eq!(
        procfs::read_pids(&dir.join("pids")).len(),
        1,
        "no second attempt"
    );
}
