//! The options kept from brood's first CLI: templating, timeouts, grace,
//! output modes, exit statuses.

use crate::support::{brood, Field, TempDir};
use brood_testkit::jsonl;
use predicates::prelude::*;
use predicates::str::contains;
use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn inputs_after_triple_colon_with_placeholders() {
    let out = brood()
        .args([
            "run", "-j", "1", "--", "echo", "{#}:{}", "[{}]", ":::", "a", "b c",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout_of(&out), "1:a [a]\n2:b c [b c]\n");
}

#[test]
fn input_is_appended_without_placeholder() {
    brood()
        .args(["run", "-j1", "echo", "x", ":::", "in1", "in2"])
        .assert()
        .success()
        .stdout("x in1\nx in2\n");
}

#[test]
fn inputs_from_file() {
    let dir = TempDir::new("argfile");
    std::fs::write(dir.join("in.txt"), "x\ny\n").unwrap();
    brood()
        .args(["run", "-j1", "-a", &dir.s("in.txt"), "--", "echo", "{}"])
        .assert()
        .success()
        .stdout("x\ny\n");
    // `-a -` is stdin.
    brood()
        .args(["run", "-j1", "-a", "-", "--", "echo", "{}"])
        .write_stdin("s\n")
        .assert()
        .success()
        .stdout("s\n");
}

#[test]
fn shell_mode_appends_quoted_input() {
    brood()
        .args([
            "run", "-j1", "--shell", "--", "echo", "n=1", "&&", "echo", ":::", "a b", "$HOME",
        ])
        .assert()
        .success()
        .stdout("n=1\na b\nn=1\n$HOME\n");
}

#[test]
fn timeout_stops_slow_job() {
    let t0 = Instant::now();
    brood()
        .args(["run", "--timeout", "300ms", "--", "sleep", ":::", "20"])
        .assert()
        .code(1)
        .stderr(contains("job 1 timed out"));
    assert!(t0.elapsed() < Duration::from_secs(10));
}

/// Runs one job that the timeout stops after 200 ms, with `grace`, and
/// returns its job log record.
fn stopped_with_grace(grace: &str, command: &[&str]) -> serde_json::Value {
    let dir = TempDir::new("grace");
    let log = dir.s("log.jsonl");
    brood()
        .args([
            "run",
            "--timeout",
            "200ms",
            "--grace",
            grace,
            "--joblog",
            &log,
            "--",
        ])
        .args(command)
        .args([":::", "x"])
        .assert()
        .code(1);
    jsonl::read_file(dir.join("log.jsonl").as_path()).remove(0)
}

/// The job ignores SIGTERM (and so does its sleep): only SIGKILL, after
/// the grace period, ends it.
#[test]
fn grace_is_waited_between_term_and_kill() {
    let rec = stopped_with_grace("1.2s", &["sh", "-c", "trap '' TERM; sleep 20"]);
    let runtime = rec.field("runtime_s").num();
    assert!(runtime >= 1.35, "runtime {runtime}");
    assert_eq!(rec.field("signal").num(), 9.0);
    assert!(rec.field("timed_out").bool());
}

#[test]
fn grace_zero_kills_at_once() {
    let rec = stopped_with_grace("0", &["sh", "-c", "trap '' TERM; sleep 20"]);
    assert!(rec.field("runtime_s").num() < 1.0, "{rec}");
    assert_eq!(rec.field("signal").num(), 9.0);
}

/// A job that exits on SIGTERM ends without waiting for the grace period
/// (brood itself still waits it out before exiting, for stragglers in the
/// job's process group).
#[test]
fn a_job_ending_on_sigterm_skips_the_grace() {
    let t0 = Instant::now();
    let rec = stopped_with_grace("1s", &["sh", "-c", "sleep 20"]);
    assert!(rec.field("runtime_s").num() < 0.9, "{rec}");
    assert_eq!(rec.field("signal").num(), 15.0);
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
}

/// Jobs that end in reverse input order: input N waits (bounded) for
/// input N - 1 to be done, so `1` ends first and `4` last, and -k must
/// hold the others back until `4` has printed.
fn reverse_finishing(dir: &TempDir) -> Vec<String> {
    let script = format!(
        "p=$(($0 - 1)); i=0; while [ $p -gt 0 ] && [ ! -e {d}/done-$p ] && [ $i -lt 400 ]; do \
         sleep 0.05; i=$((i+1)); done; echo $0; touch {d}/done-$0",
        d = dir.s("")
    );
    ["--", "sh", "-c", &script, ":::", "4", "3", "2", "1"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

#[test]
fn keep_order_prints_in_input_order() {
    for (mode, expect) in [
        (&["--keep-order"][..], "4\n3\n2\n1\n"),
        (&["-k", "--output", "line"], "4\n3\n2\n1\n"),
        (&["-k", "--output", "tag"], "4\t4\n3\t3\n2\t2\n1\t1\n"),
    ] {
        let dir = TempDir::new("keep-order");
        brood()
            .args(["run", "-j", "4"])
            .args(mode)
            .args(reverse_finishing(&dir))
            .assert()
            .success()
            .stdout(expect);
    }
    // Without -k, in the order brood sees them end: every one, once.
    let dir = TempDir::new("keep-order");
    let out = brood()
        .args(["run", "-j", "4"])
        .args(reverse_finishing(&dir))
        .output()
        .unwrap();
    let mut lines: Vec<String> = stdout_of(&out).lines().map(String::from).collect();
    lines.sort();
    assert_eq!(lines, ["1", "2", "3", "4"]);
}

/// Each job prints a line, waits until every job has printed its first,
/// then prints a second: unless held whole, the lines would interleave.
#[test]
fn group_output_keeps_each_job_whole() {
    let dir = TempDir::new("group");
    let script = format!(
        "echo $0-1; echo $0-err >&2; touch {d}/$0; i=0; \
         while [ $(ls {d} | wc -l) -lt 3 ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; echo $0-2",
        d = dir.s("")
    );
    for mode in [&["--group"][..], &["--output", "group"], &[]] {
        for f in std::fs::read_dir(dir.path()).unwrap() {
            std::fs::remove_file(f.unwrap().path()).unwrap();
        }
        let out = brood()
            .args(["run", "-j", "3"])
            .args(mode)
            .args(["--", "sh", "-c", &script, ":::", "a", "b", "c"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let lines: Vec<String> = stdout_of(&out).lines().map(String::from).collect();
        assert_eq!(lines.len(), 6);
        for pair in lines.chunks(2) {
            let job = &pair[0][..1];
            assert_eq!(
                pair,
                [format!("{job}-1"), format!("{job}-2")],
                "{mode:?}: {lines:?}"
            );
        }
        let err = String::from_utf8_lossy(&out.stderr);
        for job in ["a", "b", "c"] {
            assert!(err.contains(&format!("{job}-err\n")), "{err}");
        }
    }
}

/// Line mode prints a line while its job still runs, and `-u` even a
/// partial one: the job waits for a file that the test creates only after
/// reading from brood. Every spelling of the two modes.
#[test]
fn output_streams_while_the_job_runs() {
    for (mode, first) in [
        (&["--line-buffer"][..], "first\n"),
        (&["--lb"], "first\n"),
        (&["--output", "line"], "first\n"),
        (&["--output", "tag"], "in\tfirst\n"),
        (&["--line-buffer", "--tag"], "in\tfirst\n"),
        // -u passes bytes through as they come: no newline needed.
        (&["-u"], "first"),
        (&["--ungroup"], "first"),
        (&["--output", "ungroup"], "first"),
    ] {
        let dir = TempDir::new("line");
        let script = format!(
            "echo first; printf first; i=0; while [ ! -e {f} ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; echo second",
            f = dir.s("go")
        );
        // Line modes see the first line; -u then also the partial line.
        let script = if first.ends_with('\n') {
            script.replacen("printf first; ", "", 1)
        } else {
            script.replacen("echo first; ", "", 1)
        };
        let mut child = std::process::Command::new(crate::support::bin())
            .arg("run")
            .args(mode)
            .args(["--", "sh", "-c", &script, ":::", "in"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut got = vec![0u8; first.len()];
        out.read_exact(&mut got).unwrap();
        assert_eq!(String::from_utf8_lossy(&got), first, "{mode:?}");
        std::fs::write(dir.join("go"), "").unwrap();
        let mut rest = String::new();
        out.read_to_string(&mut rest).unwrap();
        assert!(rest.ends_with("second\n"), "{mode:?}: {rest:?}");
        assert!(child.wait().unwrap().success(), "{mode:?}");
    }
}

#[test]
fn tag_output_prefixes_input() {
    brood()
        .args([
            "run",
            "-j1",
            "--output",
            "tag",
            "--",
            "sh",
            "-c",
            "echo out; printf 'no newline'; echo err >&2",
            ":::",
            "a b",
        ])
        .assert()
        .success()
        .stdout("a b\tout\na b\tno newline\n")
        .stderr(contains("a b\terr\n"));
}

#[test]
fn none_output_discards_but_counts() {
    let dir = TempDir::new("none");
    let log = dir.s("log.jsonl");
    brood()
        .args([
            "run",
            "--output",
            "none",
            "--joblog",
            &log,
            "--",
            "sh",
            "-c",
            "echo hello; echo e >&2",
            ":::",
            "x",
        ])
        .assert()
        .success()
        .stdout("")
        .stderr(predicate::function(|err: &str| {
            !err.lines().any(|l| l == "hello" || l == "e")
        }));
    let rec = &jsonl::read_file(dir.join("log.jsonl").as_path())[0];
    assert_eq!(rec.field("stdout_bytes").num(), 6.0);
    assert_eq!(rec.field("stderr_bytes").num(), 2.0);
}

#[test]
fn joblog_escapes_awkward_inputs() {
    let dir = TempDir::new("escape");
    let log = dir.s("log.jsonl");
    let awkward = "tab\there \"quoted\" back\\slash nl\nctl\u{1}é";
    brood()
        .args([
            "run", "--output", "none", "--joblog", &log, "--", "true", ":::", awkward,
        ])
        .assert()
        .success();
    let text = std::fs::read_to_string(dir.join("log.jsonl")).unwrap();
    assert_eq!(text.lines().count(), 1, "a record spans lines: {text:?}");
    let rec = jsonl::parse_strict(text.trim_end());
    assert_eq!(rec.field("input").str(), awkward);
    assert_eq!(rec.field("argv").arr()[1].str(), awkward);
}

#[test]
fn exit_status_counts_failures_capped_at_101() {
    brood()
        .args([
            "run", "--", "sh", "-c", "exit $0", ":::", "0", "1", "2", "0", "5",
        ])
        .assert()
        .code(3);
    let inputs: Vec<String> = (0..105).map(|i| i.to_string()).collect();
    brood()
        .args(["run", "--output", "none", "--", "false", ":::"])
        .args(&inputs)
        .assert()
        .code(101);
    brood()
        .args(["run", "--", "true", ":::"])
        .assert()
        .success();
}

#[test]
fn missing_program_is_a_job_failure() {
    let dir = TempDir::new("missing");
    let log = dir.s("log.jsonl");
    brood()
        .args([
            "run",
            "--joblog",
            &log,
            "--",
            "brood-no-such-program",
            ":::",
            "x",
        ])
        .assert()
        .code(1)
        .stderr(contains("could not start brood-no-such-program"));
    let rec = &jsonl::read_file(dir.join("log.jsonl").as_path())[0];
    assert_eq!(rec.field("exit_code").num(), 127.0);
}

#[test]
fn broken_stdout_pipe_is_a_clean_exit() {
    // 600 KB of output: far more than a pipe holds.
    let inputs: Vec<String> = (0..3000)
        .map(|i| format!("line {i} {}", "x".repeat(200)))
        .collect();
    let mut child = std::process::Command::new(crate::support::bin())
        .args(["run", "-j", "2", "--", "echo", ":::"])
        .args(&inputs)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(first.starts_with("line "));
    drop(out);
    let t0 = Instant::now();
    assert!(brood_testkit::eventually_blocking(
        Duration::from_secs(25),
        || child.try_wait().unwrap().is_some()
    ));
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked") && !err.contains("error"), "{err}");
    assert!(
        err.contains("not started"),
        "brood went on starting jobs: {err}"
    );
    assert!(t0.elapsed() < Duration::from_secs(25));
}

#[test]
fn path_placeholders_reach_the_job() {
    brood()
        .args([
            "run",
            "-k",
            "--",
            "printf",
            "%s %s %s %s\\n",
            "{.}",
            "{/}",
            "{//}",
            "{/.}",
            ":::",
            "photos/cat.jpg",
            "notes",
        ])
        .assert()
        .success()
        .stdout("photos/cat cat.jpg photos cat\nnotes notes . notes\n");
}
