//! Process trees and signals: timeouts stop whole groups, Ctrl-C and SIGTERM
//! stop every job gracefully, a second Ctrl-C kills at once, and no job
//! process outlives brood.

use crate::support::{bin, brood, Field, TempDir, LIMIT};
use brood_testkit::{eventually_blocking, jsonl, procfs};
use predicates::str::contains;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A job script that starts two background sleeps (grandchildren of brood),
/// writes their pids and its own to `pids`, marks itself started, and waits.
fn tree_script(dir: &TempDir, extra: &str) -> String {
    format!(
        "{extra} sleep 30 & echo $! >> {p}; sleep 30 & echo $! >> {p}; echo $$ >> {p}; touch {d}/started-$0; wait",
        p = dir.s("pids"),
        d = dir.s(""),
    )
}

fn started(dir: &TempDir) -> usize {
    std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("started-")
        })
        .count()
}

fn send(child: &Child, sig: nix::sys::signal::Signal) {
    crate::support::kill(child.id(), sig).unwrap();
}

/// Waits for `child` with a deadline; kills it on expiry.
fn wait_bounded(child: &mut Child, limit: Duration) -> ExitStatus {
    if !eventually_blocking(limit, || child.try_wait().unwrap().is_some()) {
        let _ = child.kill();
        panic!("brood did not exit within {limit:?}");
    }
    child.wait().unwrap()
}

/// brood's stderr, line by line, from a thread.
fn stderr_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_line(rx: &mpsc::Receiver<String>, needle: &str) -> Vec<String> {
    let end = Instant::now() + LIMIT;
    let mut seen = Vec::new();
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let hit = line.contains(needle);
                seen.push(line);
                if hit {
                    return seen;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no line with {needle:?} on stderr; saw {seen:?}");
}

#[test]
fn timeout_kills_the_whole_tree() {
    let dir = TempDir::new("tree");
    let log = dir.s("log.jsonl");
    let t0 = Instant::now();
    brood()
        .args([
            "run",
            "--summary",
            "--timeout",
            "1s",
            "--grace",
            "500ms",
            "--joblog",
            &log,
        ])
        .args(["--", "sh", "-c", &tree_script(&dir, ""), ":::", "a", "b"])
        .assert()
        .code(2)
        .stderr(contains("2 failed (2 timed out)"));
    assert!(t0.elapsed() < Duration::from_secs(15));
    assert_eq!(started(&dir), 2);
    // 2 jobs × (2 sleeps + the shell).
    procfs::assert_all_dead(&dir.join("pids"), 6);
    for rec in jsonl::read_file(dir.join("log.jsonl").as_path()) {
        assert!(rec.field("timed_out").bool());
        assert_eq!(rec.field("signal").num(), 15.0);
    }
}

#[test]
fn timeout_kills_grandchildren_that_ignore_sigterm() {
    // The whole tree ignores SIGTERM; the group's SIGKILL after the grace
    // period must still reach the grandchildren.
    let dir = TempDir::new("tree-ignore");
    brood()
        .args(["run", "--timeout", "500ms", "--grace", "300ms"])
        .args([
            "--",
            "sh",
            "-c",
            &tree_script(&dir, "trap '' TERM;"),
            ":::",
            "a",
        ])
        .assert()
        .code(1);
    procfs::assert_all_dead(&dir.join("pids"), 3);
}

#[test]
fn leader_exiting_on_term_does_not_save_stragglers() {
    // The shell dies on SIGTERM at once, its background children ignore it
    // and do not hold brood's pipes: brood must still SIGKILL them at the end
    // of the grace period before it exits.
    let dir = TempDir::new("stragglers");
    let script = format!(
        "(trap '' TERM; exec sleep 30) >/dev/null 2>&1 & echo $! >> {p}; echo $$ >> {p}; sleep 30",
        p = dir.s("pids")
    );
    brood()
        .args(["run", "--timeout", "500ms", "--grace", "500ms"])
        .args(["--", "sh", "-c", &script, ":::", "a"])
        .assert()
        .code(1);
    procfs::assert_all_dead(&dir.join("pids"), 2);
}

fn interrupted_run(sig: nix::sys::signal::Signal, code: i32) {
    let dir = TempDir::new("sigint");
    let log = dir.s("log.jsonl");
    let mut child = Command::new(bin())
        .args([
            "run",
            "-j",
            "2",
            "--summary",
            "--grace",
            "1s",
            "--joblog",
            &log,
        ])
        .args([
            "--",
            "sh",
            "-c",
            &tree_script(&dir, ""),
            ":::",
            "a",
            "b",
            "c",
            "d",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stderr_lines(&mut child);
    let ok = eventually_blocking(LIMIT, || started(&dir) == 2);
    if !ok {
        let _ = child.kill();
        panic!("jobs did not start");
    }
    let t0 = Instant::now();
    send(&child, sig);
    let status = wait_bounded(&mut child, LIMIT);
    assert_eq!(status.code(), Some(code));
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    let seen = wait_line(&lines, "not started");
    let all = seen.join("\n");
    assert!(all.contains("stopping 2 running jobs"), "{all}");
    assert!(all.contains("2 stopped by brood, 2 not started"), "{all}");
    // The job log was flushed: one complete record per started job.
    let recs = jsonl::read_file(dir.join("log.jsonl").as_path());
    assert_eq!(recs.len(), 2);
    for rec in &recs {
        assert_eq!(rec.field("signal").num(), 15.0);
        assert!(!rec.field("timed_out").bool());
    }
    procfs::assert_all_dead(&dir.join("pids"), 6);
}

#[test]
fn sigint_stops_jobs_and_exits_130() {
    interrupted_run(nix::sys::signal::Signal::SIGINT, 130);
}

#[test]
fn sigterm_stops_jobs_and_exits_143() {
    interrupted_run(nix::sys::signal::Signal::SIGTERM, 143);
}

#[test]
fn second_sigint_kills_at_once() {
    let dir = TempDir::new("sigint2");
    let log = dir.s("log.jsonl");
    // Jobs ignore SIGTERM and the grace period is long: only the second
    // Ctrl-C (SIGKILL to the groups) ends them quickly.
    let mut child = Command::new(bin())
        .args(["run", "-j", "2", "--grace", "60s", "--joblog", &log])
        .args([
            "--",
            "sh",
            "-c",
            &tree_script(&dir, "trap '' TERM;"),
            ":::",
            "a",
            "b",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stderr_lines(&mut child);
    if !eventually_blocking(LIMIT, || started(&dir) == 2) {
        let _ = child.kill();
        panic!("jobs did not start");
    }
    let t0 = Instant::now();
    send(&child, nix::sys::signal::Signal::SIGINT);
    wait_line(&lines, "got SIGINT");
    send(&child, nix::sys::signal::Signal::SIGINT);
    let status = wait_bounded(&mut child, LIMIT);
    assert_eq!(status.code(), Some(130));
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    wait_line(&lines, "killing every job");
    let recs = jsonl::read_file(dir.join("log.jsonl").as_path());
    assert_eq!(recs.len(), 2);
    for rec in &recs {
        assert_eq!(rec.field("signal").num(), 9.0);
    }
    procfs::assert_all_dead(&dir.join("pids"), 6);
}

#[test]
fn jobs_are_in_their_own_process_groups() {
    // Each job leads its own group: its pgid is its pid, not brood's.
    let out = brood()
        .args([
            "run",
            "-j",
            "2",
            "--",
            "sh",
            "-c",
            "echo $$ $(cut -d' ' -f5 /proc/$$/stat)",
            ":::",
            "a",
            "b",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
    for row in rows {
        assert_eq!(row[0], row[1], "{text}");
    }
}
