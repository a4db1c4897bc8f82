//! The JSON Lines job log, GNU parallel's TSV, and restarts keyed by
//! content.

use crate::support::{brood, lines_of, parallel, Field, TempDir};
use brood_testkit::jsonl;
use std::collections::BTreeSet;

fn ran(dir: &TempDir) -> Vec<String> {
    lines_of(&dir.join("ran"))
}

#[test]
fn records_have_every_documented_field() {
    let dir = TempDir::new("fields");
    let log = dir.s("log.jsonl");
    brood()
        .args([
            "run",
            "--joblog",
            &log,
            "sh",
            "-c",
            "echo hi; exit $0",
            ":::",
            "0",
            "2",
        ])
        .assert()
        .code(1);
    let recs = jsonl::read_file(dir.join("log.jsonl").as_path());
    assert_eq!(recs.len(), 2);
    let want: BTreeSet<&str> = [
        "seq",
        "key",
        "input",
        "argv",
        "start",
        "runtime_s",
        "exit_code",
        "signal",
        "timed_out",
        "retries",
        "user_s",
        "sys_s",
        "max_rss_bytes",
        "tree_user_s",
        "tree_sys_s",
        "tree_peak_bytes",
        "stdout_bytes",
        "stderr_bytes",
        "containment",
        "leftovers",
        "outcome",
    ]
    .into();
    for r in &recs {
        let got: BTreeSet<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(got, want);
        let key = r.field("key").str();
        assert_eq!(key.len(), 32);
        assert_eq!(r.field("stdout_bytes").num(), 3.0);
        assert!(r.field("start").str().ends_with('Z'));
    }
    // The key is SHA-256 over the argv, each word NUL-terminated.
    let r = recs.iter().find(|r| r.field("input").str() == "0").unwrap();
    let argv: Vec<&str> = r.field("argv").arr().iter().map(|v| v.str()).collect();
    let mut bytes = Vec::new();
    for w in &argv {
        bytes.extend_from_slice(w.as_bytes());
        bytes.push(0);
    }
    let out = assert_cmd::Command::new("sha256sum")
        .write_stdin(bytes)
        .output()
        .unwrap();
    assert_eq!(
        &String::from_utf8_lossy(&out.stdout)[..32],
        r.field("key").str()
    );
    assert_eq!(r.field("outcome").str(), "ok");
}

#[test]
fn tsv_matches_gnu_parallels_columns() {
    let dir = TempDir::new("tsv");
    let ours = dir.s("ours.tsv");
    let theirs = dir.s("theirs.tsv");
    brood()
        .args([
            "run",
            "-j1",
            "--joblog",
            &ours,
            "--joblog-format",
            "tsv",
            "sh",
            "-c",
            "exit $0",
            ":::",
            "0",
            "3",
        ])
        .assert()
        .code(1);
    parallel(&["-j1", "--joblog", &theirs, "exit {}", ":::", "0", "3"]);
    let read = |p: &str| std::fs::read_to_string(p).unwrap();
    let (o, t) = (read(&ours), read(&theirs));
    assert_eq!(o.lines().next(), t.lines().next(), "header");
    let epoch = regex::Regex::new(r"^\d{10}\.\d{3}$").unwrap();
    for (a, b) in o.lines().skip(1).zip(t.lines().skip(1)) {
        let a: Vec<&str> = a.split('\t').collect();
        let b: Vec<&str> = b.split('\t').collect();
        assert_eq!(a.len(), b.len());
        // Seq, Host, Send, Receive, Exitval, Signal agree; times differ.
        for i in [0, 1, 4, 5, 6, 7] {
            assert_eq!(a[i], b[i], "column {i}");
        }
        assert_eq!(a[3].len(), b[3].len(), "JobRuntime is %10.3f");
        assert!(
            epoch.is_match(a[2]) && epoch.is_match(b[2]),
            "Starttime: {a:?} {b:?}"
        );
    }
}

/// Resume keyed by content: reordering and inserting inputs runs exactly
/// the new ones (GNU parallel, keyed by position, runs the wrong jobs).
#[test]
fn resume_survives_reordering_and_insertion() {
    let dir = TempDir::new("resume");
    let log = dir.s("log.jsonl");
    let script = format!("echo $0 >> {}", dir.s("ran"));
    brood()
        .args([
            "run", "--joblog", &log, "sh", "-c", &script, ":::", "a", "b", "c",
        ])
        .assert()
        .success();
    assert_eq!(ran(&dir).len(), 3);
    std::fs::remove_file(dir.join("ran")).unwrap();
    brood()
        .args([
            "run", "--resume", "--joblog", &log, "sh", "-c", &script, ":::", "c", "new1", "a", "b",
            "new2",
        ])
        .assert()
        .success();
    let mut again = ran(&dir);
    again.sort();
    assert_eq!(again, ["new1", "new2"]);
    // The log now holds all five, once each.
    let keys: BTreeSet<String> = jsonl::read_file(dir.join("log.jsonl").as_path())
        .iter()
        .map(|r| r.field("key").str().to_string())
        .collect();
    assert_eq!(keys.len(), 5);
}

#[test]
fn resume_failed_and_retry_failed() {
    let dir = TempDir::new("rfailed");
    let log = dir.s("log.jsonl");
    let flag = dir.s("fixed");
    // Fails for input "bad" until the flag file exists.
    let script = format!(
        "echo $0 >> {r}; [ $0 != bad ] || [ -e {flag} ]",
        r = dir.s("ran")
    );
    brood()
        .args([
            "run", "--joblog", &log, "sh", "-c", &script, ":::", "good", "bad",
        ])
        .assert()
        .code(1);
    std::fs::remove_file(dir.join("ran")).unwrap();
    // --resume skips both (both finished).
    brood()
        .args([
            "run", "--resume", "--joblog", &log, "sh", "-c", &script, ":::", "good", "bad",
        ])
        .assert()
        .success();
    assert!(ran(&dir).is_empty());
    // --resume-failed runs the failed one and the new one.
    brood()
        .args([
            "run",
            "--resume-failed",
            "--joblog",
            &log,
            "sh",
            "-c",
            &script,
            ":::",
            "good",
            "bad",
            "new",
        ])
        .assert()
        .code(1);
    let mut r = ran(&dir);
    r.sort();
    assert_eq!(r, ["bad", "new"]);
    std::fs::remove_file(dir.join("ran")).unwrap();
    // --retry-failed runs the logged argv of the failed job, ignoring the
    // command line.
    std::fs::write(&flag, "").unwrap();
    brood()
        .args(["run", "--retry-failed", "--joblog", &log])
        .assert()
        .success();
    assert_eq!(ran(&dir), ["bad"]);
}

#[test]
fn stopped_jobs_run_again_on_resume() {
    let dir = TempDir::new("stopped");
    let log = dir.s("log.jsonl");
    brood()
        .args([
            "run",
            "-j2",
            "--halt",
            "now,fail=1",
            "--joblog",
            &log,
            "sh",
            "-c",
        ])
        .args(["if [ $0 = f ]; then exit 1; fi; sleep 20", ":::", "s", "f"])
        .assert()
        .code(1);
    let recs = jsonl::read_file(dir.join("log.jsonl").as_path());
    assert!(recs.iter().any(|r| r.field("outcome").str() == "stopped"));
    let script = format!("echo $0 >> {}", dir.s("ran"));
    // A different command: nothing matches, all run.
    brood()
        .args([
            "run", "--resume", "--joblog", &log, "sh", "-c", &script, ":::", "s",
        ])
        .assert()
        .success();
    assert_eq!(ran(&dir), ["s"]);
}
