//! `--memfree` and `--load` against what the kernel reports, faked: brood
//! reads `/proc/meminfo` and `/proc/stat`, and these tests bind-mount
//! their own versions over them for brood alone (see [`FakeProc`]).
//!
//! GNU parallel documents `--memfree SIZE` as: no job starts while less
//! than SIZE is free; below half of SIZE the youngest job is killed (as
//! per `--term-seq`) and put back on the queue, `--retries` deciding how
//! often it runs again.

use crate::support::{lines_of, Background, FakeProc, Field, TempDir, LIMIT};
use brood_testkit::{eventually_blocking, jsonl};
use std::path::Path;
use std::time::Duration;

/// How long a thing that must not happen is watched for: several of
/// brood's 100 ms looks at memory and load.
const QUIET: Duration = Duration::from_millis(600);

fn meminfo(mib: u64) -> String {
    format!("MemAvailable: {:>20} kB\n", mib * 1024)
}

fn stat(running: u32) -> String {
    format!("procs_running {running:>10}\nprocs_blocked {:>10}\n", 0)
}

fn count(events: &Path, line: &str) -> usize {
    lines_of(events).iter().filter(|l| *l == line).count()
}

#[test]
fn memfree_holds_starts_and_evicts_the_youngest_job() {
    let dir = TempDir::new("memfree");
    let mem = FakeProc::new(&dir, "/proc/meminfo", &meminfo(500));
    let (events, go, log) = (dir.join("events"), dir.join("go"), dir.s("log.jsonl"));
    // Job b, once evicted, leaves memory between half of SIZE and SIZE: no
    // more evictions, and no new start either.
    let script = format!(
        "echo start $0 >> {ev}; \
         trap 'echo term $0 >> {ev}; [ $0 = b ] && printf \"MemAvailable: %20d kB\\n\" {mid} \
         | dd of={mem} conv=notrunc status=none; exit 1' TERM; \
         i=0; while [ ! -e {go} ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; \
         echo end $0 >> {ev}",
        ev = events.display(),
        go = go.display(),
        mem = mem.path().display(),
        mid = 400 * 1024,
    );
    let run = Background::spawn(&mut mem.brood(&[
        "run",
        "-j2",
        "--memfree",
        "600M",
        "--retries",
        "2",
        "--joblog",
        &log,
        "sh",
        "-c",
        &script,
        ":::",
        "a",
        "b",
    ]));
    // 500 MiB of 600: nothing starts.
    assert!(
        !eventually_blocking(QUIET, || events.exists()),
        "a job started below SIZE"
    );
    mem.set(&meminfo(1000));
    assert!(eventually_blocking(LIMIT, || count(&events, "start a")
        == 1
        && count(&events, "start b") == 1));
    // Below half of SIZE: the youngest (b) is stopped, a is not.
    mem.set(&meminfo(200));
    assert!(eventually_blocking(LIMIT, || count(&events, "term b") == 1));
    // At 400 MiB, b waits for SIZE to run again; a runs on.
    assert!(
        !eventually_blocking(QUIET, || count(&events, "start b") == 2),
        "b ran again below SIZE"
    );
    assert_eq!(count(&events, "term a"), 0, "{:?}", lines_of(&events));
    mem.set(&meminfo(1000));
    assert!(eventually_blocking(LIMIT, || count(&events, "start b") == 2));
    std::fs::write(&go, "").unwrap();
    let (code, _, err) = run.finish();
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("job 2 stopped: less than half of --memfree is available"),
        "{err}"
    );
    let recs = jsonl::read_file(Path::new(&log));
    let b = recs.iter().find(|r| r.field("input").str() == "b").unwrap();
    assert_eq!(
        (b.field("retries").num(), b.field("outcome").str()),
        (1.0, "ok")
    );
}

/// Without an attempt left the evicted job fails (parallel: exit -1 in
/// the job log); brood logs it `low_memory`, and `--resume` runs it again.
#[test]
fn memfree_eviction_without_retries_fails_the_job() {
    let dir = TempDir::new("memfree-fail");
    let mem = FakeProc::new(&dir, "/proc/meminfo", &meminfo(1000));
    let (log, tsv) = (dir.s("log.jsonl"), dir.s("log.tsv"));
    // The job eats the memory itself, unless told it may finish.
    let script = format!(
        "[ -e {ok} ] && exit 0; printf 'MemAvailable: %20d kB\\n' {low} \
         | dd of={mem} conv=notrunc status=none; sleep 20",
        ok = dir.s("ok"),
        mem = mem.path().display(),
        low = 100 * 1024,
    );
    let run = |extra: &[&str], log: &str| {
        let mut args = vec!["run", "--memfree", "600M", "--joblog", log];
        args.extend_from_slice(extra);
        args.extend(["sh", "-c", &script, ":::", "x"]);
        let (code, _, err) = Background::spawn(&mut mem.brood(&args)).finish();
        (code, err)
    };
    let (code, err) = run(&[], &log);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("job 1 was stopped: less than half of --memfree was available"),
        "{err}"
    );
    let rec = &jsonl::read_file(Path::new(&log))[0];
    assert_eq!(rec.field("outcome").str(), "low_memory");
    assert_eq!(rec.field("signal").num(), 15.0);
    // GNU parallel's TSV: Exitval -1.
    mem.set(&meminfo(1000));
    assert_eq!(run(&["--joblog-format", "tsv"], &tsv).0, Some(1));
    let row = std::fs::read_to_string(&tsv).unwrap();
    let fields: Vec<&str> = row.lines().nth(1).unwrap().split('\t').collect();
    assert_eq!((fields[6], fields[7]), ("-1", "15"), "{row}");
    // --resume runs it again.
    mem.set(&meminfo(1000));
    std::fs::write(dir.join("ok"), "").unwrap();
    assert_eq!(run(&["--resume"], &log).0, Some(0));
    let recs = jsonl::read_file(Path::new(&log));
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[1].field("outcome").str(), "ok");
}

/// `--load MAX`: no job starts while MAX or more processes are runnable.
#[test]
fn load_holds_starts() {
    let dir = TempDir::new("load");
    let proc_stat = FakeProc::new(&dir, "/proc/stat", &stat(50));
    let ran = dir.join("ran");
    let run = Background::spawn(&mut proc_stat.brood(&[
        "run",
        "--load",
        "4",
        "sh",
        "-c",
        &format!("echo $0 >> {}", ran.display()),
        ":::",
        "x",
    ]));
    assert!(
        !eventually_blocking(QUIET, || ran.exists()),
        "started at load 50"
    );
    proc_stat.set(&stat(3));
    let (code, _, err) = run.finish();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(lines_of(&ran), ["x"]);
}
