//! -j forms, --delay, --halt (exit statuses as GNU parallel's), --termseq,
//! --retries, --retry-delay, --timeout N%, SIGHUP drains.

use crate::support::{bin, brood, lines_of, max_slot, parallel, Background, Field, TempDir, LIMIT};
use brood_testkit::{eventually_blocking, jsonl};
use std::time::{Duration, Instant};

/// `-j N`, `N%`, `+N`, `-N`: as many jobs at once as GNU parallel runs.
#[test]
fn jobs_forms_match_gnu_parallel() {
    let cpus = std::thread::available_parallelism().unwrap().get();
    let forms = [
        ("1", 1),
        ("3", 3),
        ("+1", cpus + 1),
        ("-1", cpus.saturating_sub(1).max(1)),
        ("150%", cpus * 3 / 2),
        ("1%", 1),
    ];
    let threads: Vec<_> = forms
        .into_iter()
        .map(|(j, want)| {
            std::thread::spawn(move || {
                let ours = max_slot(false, j, want, "");
                let theirs = max_slot(true, j, want, "");
                (j, want, ours, theirs)
            })
        })
        .collect();
    for t in threads {
        let (j, want, ours, theirs) = t.join().unwrap();
        assert_eq!((ours, theirs), (want, want), "-j {j}: brood, GNU parallel");
    }
    // Below 1: "then 1 will be used", as parallel's manual says (parallel
    // 20221122 itself stops with "Cannot run any jobs").
    assert_eq!(max_slot(false, "-1000", 1, ""), 1);
}

/// `-j 0`: as many as RLIMIT_NPROC allows (less 64 for brood and the
/// rest of the user's processes), here 6; the soft RLIMIT_NOFILE of 80
/// alone would allow 4 (four descriptors a job, 64 kept back), but brood
/// raises it to the hard limit first.
#[test]
fn jobs_zero_is_capped_by_rlimit_nproc() {
    let uid = std::process::Command::new("id").arg("-u").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "this test lowers RLIMIT_NPROC, which would block a non-root user's \
         other forks: run it as root (CI does)"
    );
    assert_eq!(
        max_slot(false, "0", 6, "ulimit -S -u 70; ulimit -S -n 80;"),
        6
    );
}

/// `-j 0` under a hard RLIMIT_NOFILE of 96: (96 - 64) / 4 = 8 at once.
#[test]
fn jobs_zero_is_capped_by_rlimit_nofile() {
    assert_eq!(max_slot(false, "0", 8, "ulimit -n 96;"), 8);
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

/// What `--load` and `--memfree` do is in `admission.rs`; here, their
/// values are checked before any job runs.
#[test]
fn load_and_memfree_values_are_checked() {
    for (opt, bad) in [
        ("--memfree", "lots"),
        ("--memfree", "1X"),
        ("--load", "high"),
    ] {
        brood()
            .args(["run", opt, bad, "true", ":::", "a"])
            .assert()
            .code(255);
    }
}

/// Exit statuses as GNU parallel gives them, run side by side (each form
/// in its own thread: parallel takes most of a second to start).
#[test]
fn halt_matches_gnu_parallel() {
    const CODES: [&str; 10] = ["0", "3", "0", "4", "0", "5", "0", "0", "0", "0"];
    let forms = [
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
    ];
    let threads: Vec<_> = forms
        .into_iter()
        .map(|h| {
            std::thread::spawn(move || {
                let mut args = vec!["-j1", "--halt", h, "sh", "-c", "exit $0", ":::"];
                args.extend(CODES);
                let ours = brood()
                    .arg("run")
                    .args(&args)
                    .output()
                    .unwrap()
                    .status
                    .code();
                let mut theirs_args = vec!["-j1", "--halt", h, "exit {}", ":::"];
                theirs_args.extend(CODES);
                (h, ours, parallel(&theirs_args).0)
            })
        })
        .collect();
    for t in threads {
        let (h, ours, theirs) = t.join().unwrap();
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
            "if [ $0 = fail ]; then exit 1; else sleep 30; fi",
            ":::",
            "slow",
            "fail",
            "never",
        ])
        .assert()
        .code(1);
    assert!(t0.elapsed() < Duration::from_secs(10));
    let recs = jsonl::read_file(dir.join("log.jsonl").as_path());
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
        jsonl::read_file(dir.join("log.jsonl").as_path())[0]
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

/// Three quick jobs set the median near 0.1 s; at 1000% (a margin for a
/// loaded machine's slower quick jobs) the slow one is stopped long before
/// its 20 s. Side by side with GNU parallel: the same
/// job log rows but for the times (timed out: Exitval -1, Signal 15).
#[test]
fn timeout_relative_to_median() {
    let dir = TempDir::new("pct");
    let (ours, theirs) = (dir.s("ours.tsv"), dir.s("theirs.tsv"));
    let args = |log: &str| {
        let mut a = vec!["-j1", "--timeout", "1000%", "--joblog", log];
        a.extend(["sleep", ":::", "0.1", "0.1", "0.1", "20"]);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let (a, b) = (args(&ours), args(&theirs));
    let parallel_run =
        std::thread::spawn(move || parallel(&b.iter().map(String::as_str).collect::<Vec<_>>()).0);
    let t0 = Instant::now();
    brood()
        .args(["run", "--joblog-format", "tsv"])
        .args(&a)
        .assert()
        .code(1);
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(parallel_run.join().unwrap(), Some(1));
    let rows = |p: &str| -> Vec<Vec<String>> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                [0, 1, 4, 5, 6, 7, 8]
                    .iter()
                    .map(|&i| f[i].to_string())
                    .collect()
            })
            .collect()
    };
    assert_eq!(rows(&ours), rows(&theirs));
    assert_eq!(rows(&ours)[4][4..6], ["-1", "15"]);
    for d in ["1h30m", "2.5"] {
        brood()
            .args(["run", "--timeout", d, "true", ":::", "a"])
            .assert()
            .success();
    }
}

/// SIGHUP drains, as in GNU parallel: no new jobs, the running ones
/// finish, the usual exit status. A retry is a new start, so a job that
/// fails after the SIGHUP is not retried either.
#[test]
fn sighup_drains() {
    let dir = TempDir::new("hup");
    let (events, go) = (dir.join("events"), dir.join("go"));
    let script = format!(
        "echo start $0 >> {ev}; i=0; while [ ! -e {go} ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; \
         echo done $0; [ $0 != b ]",
        ev = events.display(),
        go = go.display(),
    );
    let mut run = Background::spawn(std::process::Command::new(bin()).args([
        "run",
        "-k",
        "-j",
        "2",
        "--retries",
        "3",
        "sh",
        "-c",
        &script,
        ":::",
        "a",
        "b",
        "c",
        "d",
    ]));
    assert!(eventually_blocking(LIMIT, || lines_of(&events).len() == 2));
    crate::support::kill(run.child().id(), nix::sys::signal::Signal::SIGHUP).unwrap();
    // brood says when it has taken the SIGHUP in; only then may the jobs end.
    let mut err = std::io::BufReader::new(run.child().stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut err, &mut line).unwrap();
    assert!(
        line.contains("got SIGHUP: starting no new jobs, waiting for 2 running"),
        "{line}"
    );
    std::fs::write(&go, "").unwrap();
    let (code, stdout, _) = run.finish();
    assert_eq!(code, Some(1), "one job failed");
    assert_eq!(stdout, "done a\ndone b\n");
    let mut started = lines_of(&events);
    started.sort();
    assert_eq!(started, ["start a", "start b"], "no new job, no retry");
}

/// The default --termseq is GNU parallel's TERM,200,TERM,100,TERM,50,KILL,25:
/// a job that ignores SIGTERM gets it (the shell may run its trap fewer than
/// three times, since a pending SIGTERM absorbs the next), then SIGKILL once
/// the 350 ms of the sequence have passed; the same in both tools' job logs
/// (parallel's TSV, brood's as TSV).
#[test]
fn default_termseq_is_gnu_parallels() {
    let dir = TempDir::new("termseq-default");
    let run = |parallel_tool: bool| {
        let name = if parallel_tool { "theirs" } else { "ours" };
        let (sigs, log) = (dir.join(name), dir.s(&format!("{name}.tsv")));
        let script = format!(
            "trap 'echo TERM >> {s}' TERM; echo ready >> {s}; while :; do sleep 0.01; done; :",
            s = sigs.display()
        );
        std::thread::spawn(move || {
            let args = ["--timeout", "1", "--joblog", &log];
            if parallel_tool {
                let mut a = args.to_vec();
                a.extend([script.as_str(), ":::", "x"]);
                parallel(&a);
            } else {
                brood()
                    .args(["run", "--joblog-format", "tsv"])
                    .args(args)
                    .args(["sh", "-c", &script, ":::", "x"])
                    .assert()
                    .code(1);
            }
            let row = std::fs::read_to_string(&log).unwrap();
            let f: Vec<String> = row
                .lines()
                .nth(1)
                .unwrap()
                .split('\t')
                .map(String::from)
                .collect();
            (
                lines_of(&sigs),
                f[3].trim().parse::<f64>().unwrap(),
                f[6].clone(),
                f[7].clone(),
            )
        })
    };
    let (ours, theirs) = (run(false), run(true));
    for (who, t) in [("brood", ours), ("parallel", theirs)] {
        let (sigs, runtime, exitval, signal) = t.join().unwrap();
        assert_eq!(
            sigs.first().map(String::as_str),
            Some("ready"),
            "{who}: {sigs:?}"
        );
        assert!(
            sigs.len() >= 2 && sigs[1..].iter().all(|l| l == "TERM"),
            "{who}: {sigs:?}"
        );
        assert_eq!((exitval.as_str(), signal.as_str()), ("-1", "9"), "{who}");
        assert!(runtime >= 1.0 + 0.35, "{who}: killed after {runtime} s");
        if who == "brood" {
            // Not much after: SIGKILL follows the sequence's last wait
            // (parallel's loop looks at its jobs less often).
            assert!(
                runtime < 1.0 + 0.375 + 0.6,
                "{who}: killed after {runtime} s"
            );
        }
    }
}
