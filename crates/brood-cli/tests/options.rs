//! Every option of `brood run`, the input sources, templating, output modes
//! and exit statuses.

mod common;

use common::{brood, parse_json, read_joblog, TempDir};
use predicates::prelude::*;
use predicates::str::contains;
use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn stdout_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text.lines().map(String::from).collect();
    v.sort();
    v
}

#[test]
fn help_and_version() {
    brood()
        .arg("--help")
        .assert()
        .success()
        .stdout(contains("brood run [OPTIONS]").and(contains("--halt-on-error[=now]")));
    brood()
        .arg("--version")
        .assert()
        .success()
        .stdout(contains("brood "));
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
        .args(["run", "-j1", "echo", "x", "{#}", ":::", "in1", "in2"])
        .assert()
        .success()
        .stdout("x 1 in1\nx 2 in2\n");
}

#[test]
fn inputs_from_stdin() {
    brood()
        .args(["run", "-j1", "--", "echo", "got"])
        .write_stdin("one\ntwo words\n\nlast")
        .assert()
        .success()
        .stdout("got one\ngot two words\ngot \ngot last\n");
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
fn no_shell_no_injection() {
    let dir = TempDir::new("inject");
    let evil = format!("; touch {0}; $(touch {0}) `touch {0}`", dir.s("pwned"));
    brood()
        .args(["run", "--", "echo", "{}", ":::", &evil])
        .assert()
        .success()
        .stdout(format!("{evil}\n"));
    // --shell quotes the input, so it stays one literal word.
    brood()
        .args([
            "run",
            "--shell",
            "--",
            "echo {} | cat",
            ":::",
            &evil,
            "it's",
        ])
        .args(["-j1"])
        .assert()
        .success();
    let out = brood()
        .args([
            "run",
            "-j1",
            "--shell",
            "--",
            "printf '%s\\n' {} | tr a-z A-Z",
            ":::",
            &evil,
            "it's",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout_of(&out), format!("{}\nIT'S\n", evil.to_uppercase()));
    assert!(!dir.join("pwned").exists(), "an input was run as a command");
}

#[test]
fn shell_mode_appends_quoted_input() {
    brood()
        .args([
            "run", "-j1", "--shell", "--", "echo", "n={#}", "&&", "echo", ":::", "a b", "$HOME",
        ])
        .assert()
        .success()
        .stdout("n=1\na b\nn=2\n$HOME\n");
}

#[test]
fn jobs_run_concurrently_up_to_j() {
    // Each job marks itself started, then waits (bounded) until three have
    // started: only possible if three run at once.
    let dir = TempDir::new("jobs");
    let script = format!(
        "touch {d}/$0; i=0; while [ $(ls {d} | wc -l) -lt 3 ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; [ $(ls {d} | wc -l) -ge 3 ]",
        d = dir.s("")
    );
    brood()
        .args([
            "run", "-j", "3", "--", "sh", "-c", &script, ":::", "a", "b", "c",
        ])
        .assert()
        .success();
}

#[test]
fn j1_runs_one_at_a_time() {
    // A job fails if it finds another one holding the lock.
    let dir = TempDir::new("j1");
    let script = format!(
        "mkdir {l} || exit 1; sleep 0.05; rmdir {l}",
        l = dir.s("lock")
    );
    brood()
        .args([
            "run", "-j", "1", "--", "sh", "-c", &script, ":::", "1", "2", "3", "4", "5",
        ])
        .assert()
        .success();
}

#[test]
fn default_jobs_is_cpu_count() {
    // With the default -j, at least available_parallelism() jobs overlap.
    let n = std::thread::available_parallelism().unwrap().get();
    let dir = TempDir::new("defaultj");
    let script = format!(
        "touch {d}/$0; i=0; while [ $(ls {d} | wc -l) -lt {n} ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; [ $(ls {d} | wc -l) -ge {n} ]",
        d = dir.s("")
    );
    let inputs: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    brood()
        .args(["run", "--", "sh", "-c", &script, ":::"])
        .args(&inputs)
        .assert()
        .success();
}

#[test]
fn timeout_stops_slow_job() {
    let t0 = Instant::now();
    brood()
        .args(["run", "--timeout", "300ms", "--", "sleep", ":::", "20"])
        .assert()
        .code(1)
        .stderr(contains("job 1 timed out").and(contains("1 timed out")));
    assert!(t0.elapsed() < Duration::from_secs(10));
}

#[test]
fn grace_is_waited_between_term_and_kill() {
    // The job ignores SIGTERM (and so does its sleep): only SIGKILL, after
    // the grace period, ends it.
    let dir = TempDir::new("grace");
    let log = dir.s("log.jsonl");
    brood()
        .args([
            "run",
            "--timeout",
            "200ms",
            "--grace",
            "1.2s",
            "--joblog",
            &log,
        ])
        .args(["--", "sh", "-c", "trap '' TERM; sleep 20", ":::", "x"])
        .assert()
        .code(1);
    let rec = &read_joblog(dir.join("log.jsonl").as_path())[0];
    let runtime = rec.get("runtime_s").num();
    assert!(runtime >= 1.35, "runtime {runtime}");
    assert_eq!(rec.get("signal").num(), 9.0);
    assert!(rec.get("timed_out").bool());
    // Grace 0: SIGKILL right away.
    brood()
        .args([
            "run",
            "--timeout",
            "200ms",
            "--grace",
            "0",
            "--joblog",
            &log,
        ])
        .args(["--", "sh", "-c", "trap '' TERM; sleep 20", ":::", "x"])
        .assert()
        .code(1);
    let rec = &read_joblog(dir.join("log.jsonl").as_path())[0];
    assert!(rec.get("runtime_s").num() < 1.0);
    // A job that exits on SIGTERM ends without waiting for the grace period
    // (brood itself may still wait it out before exiting, for stragglers in
    // the job's process group).
    let t0 = Instant::now();
    brood()
        .args([
            "run",
            "--timeout",
            "200ms",
            "--grace",
            "3s",
            "--joblog",
            &log,
            "--",
            "sleep",
            ":::",
            "20",
        ])
        .assert()
        .code(1);
    let rec = &read_joblog(dir.join("log.jsonl").as_path())[0];
    assert!(rec.get("runtime_s").num() < 2.0, "{rec:?}");
    assert_eq!(rec.get("signal").num(), 15.0);
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
}

#[test]
fn retries_rerun_failed_jobs() {
    let dir = TempDir::new("retries");
    let log = dir.s("log.jsonl");
    // Fails the first time only.
    let flaky = format!(
        "if [ -e {f} ]; then echo second; else touch {f}; echo first; exit 1; fi",
        f = dir.s("flag")
    );
    brood()
        .args([
            "run",
            "--retries",
            "2",
            "--joblog",
            &log,
            "--",
            "sh",
            "-c",
            &flaky,
            ":::",
            "x",
        ])
        .assert()
        .success()
        .stdout("second\n");
    let rec = &read_joblog(dir.join("log.jsonl").as_path())[0];
    assert_eq!(rec.get("retries").num(), 1.0);
    assert_eq!(rec.get("exit_code").num(), 0.0);
    // Always fails: 1 + 2 runs.
    let count = format!("echo run >> {}; exit 4", dir.s("runs"));
    brood()
        .args([
            "run",
            "--retries",
            "2",
            "--joblog",
            &log,
            "--",
            "sh",
            "-c",
            &count,
            ":::",
            "x",
        ])
        .assert()
        .code(1)
        .stderr(contains("after 2 retries"));
    assert_eq!(
        std::fs::read_to_string(dir.join("runs"))
            .unwrap()
            .lines()
            .count(),
        3
    );
    let rec = &read_joblog(dir.join("log.jsonl").as_path())[0];
    assert_eq!(rec.get("retries").num(), 2.0);
    assert_eq!(rec.get("exit_code").num(), 4.0);
    // Timeouts are retried too.
    brood()
        .args([
            "run",
            "--retries",
            "1",
            "--timeout",
            "100ms",
            "--joblog",
            &log,
            "--",
            "sleep",
            ":::",
            "20",
        ])
        .assert()
        .code(1);
    let rec = &read_joblog(dir.join("log.jsonl").as_path())[0];
    assert_eq!(rec.get("retries").num(), 1.0);
    assert!(rec.get("timed_out").bool());
}

#[test]
fn keep_order_prints_in_input_order() {
    // Later inputs finish first.
    let args = [
        "--",
        "sh",
        "-c",
        "sleep 0.$0; echo $0",
        ":::",
        "4",
        "3",
        "2",
        "1",
    ];
    brood()
        .args(["run", "-j", "4", "--keep-order"])
        .args(args)
        .assert()
        .success()
        .stdout("4\n3\n2\n1\n");
    // Same in line and tag modes.
    brood()
        .args(["run", "-j", "4", "-k", "--output", "line"])
        .args(args)
        .assert()
        .success()
        .stdout("4\n3\n2\n1\n");
    brood()
        .args(["run", "-j", "4", "-k", "--output", "tag"])
        .args(args)
        .assert()
        .success()
        .stdout("4\t4\n3\t3\n2\t2\n1\t1\n");
    // Without -k the fastest comes first.
    let out = brood()
        .args(["run", "-j", "4"])
        .args(args)
        .output()
        .unwrap();
    assert_eq!(sorted_lines(&stdout_of(&out)), ["1", "2", "3", "4"]);
}

#[test]
fn group_output_keeps_each_job_whole() {
    let out = brood()
        .args(["run", "-j", "3", "--output", "group", "--", "sh", "-c"])
        .args([
            "echo $0-1; sleep 0.2; echo $0-2; echo $0-err >&2",
            ":::",
            "a",
            "b",
            "c",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let lines: Vec<String> = stdout_of(&out).lines().map(String::from).collect();
    assert_eq!(lines.len(), 6);
    for pair in lines.chunks(2) {
        let job = &pair[0][..1];
        assert_eq!(pair, [format!("{job}-1"), format!("{job}-2")], "{lines:?}");
    }
    let err = String::from_utf8_lossy(&out.stderr);
    for job in ["a", "b", "c"] {
        assert!(err.contains(&format!("{job}-err\n")), "{err}");
    }
}

/// Line mode prints a line while its job still runs: the job waits for a
/// file that the test creates only after reading the line from brood.
#[test]
fn line_output_streams_while_job_runs() {
    for (mode, expect) in [("line", "first"), ("tag", "in\tfirst")] {
        let dir = TempDir::new("line");
        let script = format!(
            "echo first; i=0; while [ ! -e {f} ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; echo second",
            f = dir.s("go")
        );
        let mut child = std::process::Command::new(common::bin())
            .args([
                "run", "--output", mode, "--", "sh", "-c", &script, ":::", "in",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let t0 = Instant::now();
        out.read_line(&mut line).unwrap();
        assert_eq!(line, format!("{expect}\n"));
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "the first line came only at the end"
        );
        std::fs::write(dir.join("go"), "").unwrap();
        let mut rest = String::new();
        out.read_to_string(&mut rest).unwrap();
        assert!(rest.ends_with("second\n"), "{rest:?}");
        assert!(child.wait().unwrap().success());
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
    let rec = &read_joblog(dir.join("log.jsonl").as_path())[0];
    assert_eq!(rec.get("stdout_bytes").num(), 6.0);
    assert_eq!(rec.get("stderr_bytes").num(), 2.0);
}

#[test]
fn joblog_records_every_field() {
    let dir = TempDir::new("joblog");
    let log = dir.s("log.jsonl");
    let burn = "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo burnt";
    let t0 = std::time::SystemTime::now();
    brood()
        .args([
            "run",
            "-j",
            "2",
            "--timeout",
            "5s",
            "--joblog",
            &log,
            "--",
            "sh",
            "-c",
            "{}",
            ":::",
        ])
        .args([burn, "kill -KILL $$", "exit 3", "printf 'a\"\\\\\\n'"])
        .assert()
        .code(2);
    let mut recs = read_joblog(dir.join("log.jsonl").as_path());
    assert_eq!(recs.len(), 4);
    recs.sort_by_key(|r| r.get("seq").num() as u64);
    let keys = [
        "seq",
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
        "stdout_bytes",
        "stderr_bytes",
    ];
    for r in &recs {
        let common::Json::Obj(map) = r else { panic!() };
        let mut got: Vec<&str> = map.keys().map(String::as_str).collect();
        let mut want = keys.to_vec();
        got.sort();
        want.sort();
        assert_eq!(got, want);
        // RFC 3339 UTC, e.g. 2024-05-01T12:34:56.789Z, near now.
        let start = r.get("start").str();
        assert_eq!(start.len(), 24, "{start}");
        assert!(start.ends_with('Z') && &start[10..11] == "T", "{start}");
        let year: u64 = start[..4].parse().unwrap();
        let now_year =
            1970 + t0.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() / 31_556_952;
        assert!(year.abs_diff(now_year) <= 1, "{start}");
        assert_eq!(r.get("retries").num(), 0.0);
        assert!(!r.get("timed_out").bool());
        assert_eq!(r.get("argv").arr()[0].str(), "sh");
    }
    let burn_rec = &recs[0];
    assert_eq!(burn_rec.get("input").str(), burn);
    assert_eq!(burn_rec.get("exit_code").num(), 0.0);
    assert!(burn_rec.get("signal").is_null());
    assert!(burn_rec.get("user_s").num() > 0.0, "{burn_rec:?}");
    assert!(burn_rec.get("sys_s").num() >= 0.0);
    assert!(
        burn_rec.get("max_rss_bytes").num() > 1024.0 * 1024.0,
        "{burn_rec:?}"
    );
    assert!(burn_rec.get("runtime_s").num() > 0.0);
    assert_eq!(burn_rec.get("stdout_bytes").num(), 6.0);
    let killed = &recs[1];
    assert!(killed.get("exit_code").is_null());
    assert_eq!(killed.get("signal").num(), 9.0);
    assert_eq!(recs[2].get("exit_code").num(), 3.0);
    // Escaping survives a round trip through a JSON parser.
    assert_eq!(recs[3].get("input").str(), "printf 'a\"\\\\\\n'");
    assert_eq!(recs[3].get("stdout_bytes").num(), 4.0);
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
    let rec = parse_json(text.trim_end());
    assert_eq!(rec.get("input").str(), awkward);
    assert_eq!(rec.get("argv").arr()[1].str(), awkward);
}

#[test]
fn halt_on_error_starts_no_new_jobs() {
    let dir = TempDir::new("halt");
    let script = format!("touch {d}/$0; [ $0 != 1 ]", d = dir.s(""));
    brood()
        .args([
            "run",
            "-j",
            "1",
            "--halt-on-error",
            "--",
            "sh",
            "-c",
            &script,
            ":::",
            "1",
            "2",
            "3",
        ])
        .assert()
        .code(1)
        .stderr(contains("2 not started"));
    assert!(dir.join("1").exists());
    assert!(!dir.join("2").exists() && !dir.join("3").exists());
}

#[test]
fn halt_on_error_soon_lets_running_jobs_finish() {
    let dir = TempDir::new("halt-soon");
    let log = dir.s("log.jsonl");
    // Job "slow" is running when job "fail" fails; it finishes normally.
    let script = "if [ $0 = fail ]; then sleep 0.2; exit 1; else sleep 1; fi";
    brood()
        .args([
            "run",
            "-j",
            "2",
            "--halt-on-error",
            "--joblog",
            &log,
            "--",
            "sh",
            "-c",
            script,
            ":::",
            "slow",
            "fail",
            "never",
        ])
        .assert()
        .code(1);
    let recs = read_joblog(dir.join("log.jsonl").as_path());
    assert_eq!(recs.len(), 2);
    let slow = recs
        .iter()
        .find(|r| r.get("input").str() == "slow")
        .unwrap();
    assert_eq!(slow.get("exit_code").num(), 0.0);
}

#[test]
fn halt_on_error_now_stops_running_jobs() {
    let dir = TempDir::new("halt-now");
    let log = dir.s("log.jsonl");
    let script = "if [ $0 = fail ]; then sleep 0.2; exit 1; else sleep 30; fi";
    let t0 = Instant::now();
    brood()
        .args([
            "run",
            "-j",
            "2",
            "--halt-on-error=now",
            "--grace",
            "5s",
            "--joblog",
            &log,
        ])
        .args(["--", "sh", "-c", script, ":::", "slow", "fail", "never"])
        .assert()
        .code(1)
        .stderr(contains("1 stopped by brood").and(contains("1 not started")));
    assert!(t0.elapsed() < Duration::from_secs(10));
    let recs = read_joblog(dir.join("log.jsonl").as_path());
    assert_eq!(recs.len(), 2);
    let slow = recs
        .iter()
        .find(|r| r.get("input").str() == "slow")
        .unwrap();
    assert_eq!(slow.get("signal").num(), 15.0);
}

#[test]
fn dry_run_runs_nothing() {
    let dir = TempDir::new("dry");
    let marker = dir.s("m");
    brood()
        .args([
            "run",
            "--dry-run",
            "--",
            "touch",
            "{}",
            "a b",
            ":::",
            &marker,
        ])
        .assert()
        .success()
        .stdout(format!("touch {marker} 'a b'\n"));
    assert!(!dir.join("m").exists());
    brood()
        .args([
            "run",
            "--dry-run",
            "--shell",
            "--",
            "echo",
            "{}",
            ":::",
            "it's",
        ])
        .assert()
        .success()
        .stdout("sh -c 'echo '\\''it'\\''\\'\\'''\\''s'\\'''\n");
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
    let rec = &read_joblog(dir.join("log.jsonl").as_path())[0];
    assert_eq!(rec.get("exit_code").num(), 127.0);
}

#[test]
fn summary_on_stderr() {
    brood()
        .args([
            "run",
            "--timeout",
            "300ms",
            "--",
            "sh",
            "-c",
            "sleep $0",
            ":::",
            "0",
            "0.1",
            "20",
            "x",
        ])
        .assert()
        .code(2)
        .stderr(
            contains("brood: 4 jobs in")
                .and(contains("2 ok, 2 failed (1 timed out)"))
                .and(contains("cpu "))
                .and(contains("peak rss "))
                .and(contains("slowest:"))
                .and(contains("sh -c 'sleep $0' 20")),
        );
}

#[test]
fn broken_stdout_pipe_is_a_clean_exit() {
    // 600 KB of output: far more than a pipe holds.
    let inputs: Vec<String> = (0..3000)
        .map(|i| format!("line {i} {}", "x".repeat(200)))
        .collect();
    let mut child = std::process::Command::new(common::bin())
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
    assert!(common::wait_for(Duration::from_secs(25), || child
        .try_wait()
        .unwrap()
        .is_some()));
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

mod errors {
    use super::*;

    /// A usage error: one line on stderr, status 255, nothing run.
    fn rejects(args: &[&str], message: &str) {
        let dir = TempDir::new("err");
        let marker = dir.s("ran");
        // MARKER is a file that a job would create.
        let full: Vec<String> = args.iter().map(|s| s.replace("MARKER", &marker)).collect();
        let out = brood().args(&full).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{full:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{full:?}: {err}");
        assert!(err.starts_with("brood: error: "), "{err}");
        assert!(
            err.contains(message),
            "{full:?}: expected {message:?} in {err}"
        );
        assert!(out.stdout.is_empty());
        assert!(!dir.join("ran").exists(), "{full:?} started a job");
    }

    #[test]
    fn unknown_flag() {
        rejects(
            &["run", "--frobnicate", "--", "touch", "MARKER", ":::", "x"],
            "unknown flag --frobnicate",
        );
        rejects(
            &["run", "-Z", "--", "touch", "MARKER", ":::", "x"],
            "unknown flag -Z",
        );
        rejects(&["--jobs", "2", "touch", "MARKER"], "unknown flag --jobs");
        rejects(&["frobnicate"], "unknown command");
    }

    #[test]
    fn bad_duration() {
        rejects(
            &[
                "run",
                "--timeout",
                "soon",
                "--",
                "touch",
                "MARKER",
                ":::",
                "x",
            ],
            "invalid duration \"soon\"",
        );
        rejects(
            &[
                "run",
                "--timeout",
                "-1s",
                "--",
                "touch",
                "MARKER",
                ":::",
                "x",
            ],
            "invalid duration",
        );
        rejects(
            &[
                "run",
                "--timeout=1.2.3s",
                "--",
                "touch",
                "MARKER",
                ":::",
                "x",
            ],
            "invalid duration",
        );
        rejects(
            &[
                "run",
                "--grace",
                "5 minutes",
                "--",
                "touch",
                "MARKER",
                ":::",
                "x",
            ],
            "invalid duration",
        );
        rejects(
            &["run", "--timeout", "0", "--", "touch", "MARKER", ":::", "x"],
            "greater than zero",
        );
    }

    #[test]
    fn empty_command() {
        rejects(&["run"], "empty command");
        rejects(&["run", "--"], "empty command");
        rejects(&["run", "-j", "2", "--", ":::", "MARKER"], "empty command");
        rejects(&["run", "", ":::", "MARKER"], "empty command");
    }

    #[test]
    fn unreadable_arg_file() {
        rejects(
            &[
                "run",
                "-a",
                "/nonexistent/brood/inputs.txt",
                "--",
                "touch",
                "MARKER",
            ],
            "cannot read input file /nonexistent/brood/inputs.txt",
        );
        let dir = TempDir::new("dir-as-file");
        rejects(
            &[
                "run",
                "-a",
                dir.path().to_str().unwrap(),
                "--",
                "touch",
                "MARKER",
            ],
            "cannot read input file",
        );
    }

    #[test]
    fn zero_jobs() {
        rejects(
            &["run", "-j", "0", "--", "touch", "MARKER", ":::", "x"],
            "--jobs must be at least 1",
        );
        rejects(
            &["run", "--jobs=0", "--", "touch", "MARKER", ":::", "x"],
            "--jobs must be at least 1",
        );
        rejects(
            &["run", "-j", "x", "--", "touch", "MARKER", ":::", "x"],
            "invalid --jobs",
        );
    }

    #[test]
    fn other_bad_values() {
        rejects(
            &[
                "run", "--output", "loud", "--", "touch", "MARKER", ":::", "x",
            ],
            "invalid --output",
        );
        rejects(
            &[
                "run",
                "--retries",
                "many",
                "--",
                "touch",
                "MARKER",
                ":::",
                "x",
            ],
            "invalid --retries",
        );
        rejects(
            &[
                "run",
                "--halt-on-error=later",
                "--",
                "touch",
                "MARKER",
                ":::",
                "x",
            ],
            "--halt-on-error",
        );
        rejects(&["run", "--timeout"], "needs a value");
        rejects(
            &[
                "run",
                "--joblog",
                "/nonexistent/dir/log.jsonl",
                "--",
                "touch",
                "MARKER",
                ":::",
                "x",
            ],
            "cannot create job log",
        );
        rejects(
            &["run", "--", "touch", "MARKER", ":::", "a", ":::", "b"],
            "only one :::",
        );
    }
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
