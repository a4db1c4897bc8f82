//! Output modes, tags, --results, --files, the summary, and bounded
//! memory for held-back output.

use crate::support::{brood, brood_run, parallel, Field, TempDir, LIMIT};

#[test]
fn tag_and_tagstring_match_gnu_parallel() {
    for args in [
        &["-k", "--tag", "echo", "x", ":::", "a", "b", ":::", "1"][..],
        &["-k", "--tagstring", "<{}>", "echo", "x", ":::", "a"],
        &[
            "-k",
            "--tagstring",
            "{2}:{1}",
            "echo",
            ":::",
            "a",
            ":::",
            "1",
        ],
    ] {
        assert_eq!(brood_run(args), parallel(args), "{args:?}");
    }
}

#[test]
fn output_mode_names() {
    for mode in [
        &["--line-buffer"][..],
        &["--lb"],
        &["-u"],
        &["--ungroup"],
        &["--group"],
        &["--output", "line"],
    ] {
        let out = brood()
            .arg("run")
            .args(mode)
            .args(["-k", "echo", ":::", "a", "b"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{mode:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a\nb\n", "{mode:?}");
    }
    let out = brood()
        .args(["run", "--group", "-u", "echo", ":::", "a"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255));
}

/// Every file under `dir`, with its content (directories with none).
fn tree(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut v = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap() {
            let e = e.unwrap().path();
            let content = if e.is_dir() {
                stack.push(e.clone());
                String::new()
            } else {
                std::fs::read_to_string(&e).unwrap()
            };
            let rel = e.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            v.push((rel, content));
        }
    }
    v.sort();
    v
}

/// `--results` in its three forms: a tree of the arguments, a directory
/// per job (a name with replacement strings ending in /), and a file per
/// job; side by side with GNU parallel.
#[test]
fn results_are_laid_out_as_gnu_parallel_lays_them_out() {
    for name in ["r", "r/my_{}/", "r/my_{1}_{2}"] {
        let ours = TempDir::new("res-ours");
        let theirs = TempDir::new("res-theirs");
        let args = |dir: &TempDir| {
            vec![
                "-k".to_string(),
                "--results".to_string(),
                dir.s(name),
                "echo".into(),
                ":::".into(),
                "a/b".into(),
                "c d".into(),
                ":::".into(),
                "1".into(),
            ]
        };
        let a = args(&ours);
        let (code, stdout) = brood_run(&a.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(code, Some(0), "{name}");
        let b = args(&theirs);
        let (_, their_stdout) = parallel(&b.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(stdout, their_stdout, "{name}: what is printed");
        assert_eq!(tree(&ours.join("r")), tree(&theirs.join("r")), "{name}");
    }
    let dir = TempDir::new("res-tree");
    brood_run(&["--results", &dir.s("r"), "echo", ":::", "a/b"]);
    assert!(dir.join("r/1/a\\_b/stdout").exists());
    let out = brood()
        .args(["run", "--results", "all.csv", "echo", ":::", "a"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--joblog"));
}

#[test]
fn files_prints_names() {
    let out = brood()
        .args(["run", "-k", "--files", "echo", ":::", "a", "b"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = text.lines().collect();
    assert_eq!(names.len(), 2);
    for (name, want) in names.iter().zip(["a\n", "b\n"]) {
        assert_eq!(std::fs::read_to_string(name).unwrap(), want);
        std::fs::remove_file(name).unwrap();
    }
}

#[test]
fn summary_only_on_request_off_a_terminal() {
    let out = brood().args(["run", "echo", ":::", "a"]).output().unwrap();
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = brood()
        .args(["run", "--summary", "echo", ":::", "a"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("brood: 1 job in"));
    let out = brood()
        .args(["run", "--summary", "--quiet", "echo", ":::", "a"])
        .output()
        .unwrap();
    assert!(out.stderr.is_empty());
}

#[test]
fn bar_eta_and_progress_force_the_bar_off_a_terminal() {
    for flag in ["--bar", "--eta", "--progress"] {
        let out = brood()
            .args(["run", flag, "true", ":::", "a", "b"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{flag}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("/2 done,") && err.contains("ETA"),
            "{flag}: {err:?}"
        );
    }
}

/// The ETA counts the running jobs' elapsed time: while the second job
/// runs it goes down with the clock instead of standing still until the
/// next completion (the mean runtime so far, less what runs has done).
#[test]
fn eta_goes_down_while_a_job_runs() {
    let out = brood()
        .args(["run", "-j1", "--eta", "sleep", ":::", "0.6", "1.2"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let line = regex::Regex::new(r"1/2 done, 1 running, 0 failed, ETA (\d+)ms").unwrap();
    let etas: Vec<u64> = line
        .captures_iter(&err)
        .map(|c| c[1].parse().unwrap())
        .collect();
    assert!(etas.len() >= 3, "too few redraws while job 2 ran: {err:?}");
    assert!(
        etas.windows(2).all(|w| w[1] <= w[0]),
        "the ETA climbed: {etas:?}"
    );
    assert!(
        etas[0] >= etas[etas.len() - 1] + 200,
        "the ETA did not go down: {etas:?}"
    );
}

/// `--quiet`: none of brood's own lines (bar, summary, failure and halt
/// messages), but the jobs' output and brood's errors.
#[test]
fn quiet_silences_brood_but_not_jobs_or_errors() {
    let out = brood()
        .args([
            "run",
            "--quiet",
            "--summary",
            "--bar",
            "--halt",
            "soon,fail=1",
            "-j1",
            "sh",
            "-c",
            "echo out; echo err >&2; exit $0",
            ":::",
            "0",
            "3",
            "0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\nout\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\nerr\n");
    let out = brood()
        .args([
            "run",
            "--quiet",
            "--joblog",
            "/nonexistent/log",
            "true",
            ":::",
            "a",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot create job log"));
}

/// brood's peak RSS in MiB running `args`, and its exit status: from
/// wait4(2), through the brood library. The figure is the largest of brood
/// and the jobs it reaped, which here (`head`, `yes`) stay near 2 MiB.
fn peak_rss_mib(args: &[&str]) -> (u64, Option<i32>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut child = brood::Command::new(crate::support::bin())
            .args(args)
            .stdout(brood::Stdio::null())
            .stderr(brood::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let (status, usage) = tokio::time::timeout(LIMIT, child.wait_with_rusage())
            .await
            .expect("brood ran past the time limit")
            .unwrap();
        (usage.max_rss() >> 20, status.code())
    })
}

#[test]
fn group_mode_memory_is_bounded() {
    // 20 jobs of 10 MiB each, held until each ends, with -k: 200 MiB of
    // output through brood.
    let inputs: Vec<String> = (1..=20).map(|i| i.to_string()).collect();
    let mut args = vec![
        "run",
        "-k",
        "-j",
        "20",
        "-N0",
        "head",
        "-c",
        "10485760",
        "/dev/zero",
        ":::",
    ];
    args.extend(inputs.iter().map(String::as_str));
    let (mib, code) = peak_rss_mib(&args);
    assert_eq!(code, Some(0));
    assert!(mib < 64, "peak RSS {mib} MiB");
}

#[test]
fn endless_job_in_group_mode_is_bounded() {
    // `yes` never ends; the timeout stops it after 1 s, by when it has
    // written far more than the bound, which brood spooled to disk.
    let dir = TempDir::new("endless");
    let log = dir.s("log.jsonl");
    let (mib, code) = peak_rss_mib(&[
        "run",
        "--timeout",
        "1s",
        "--joblog",
        &log,
        "yes",
        ":::",
        "x",
    ]);
    assert_eq!(code, Some(1), "the timed-out job is a failure");
    assert!(mib < 64, "peak RSS {mib} MiB");
    let written = brood_testkit::jsonl::read_file(dir.join("log.jsonl").as_path())[0]
        .field("stdout_bytes")
        .num();
    assert!(
        written > 128.0 * 1024.0 * 1024.0,
        "only {written} bytes went through"
    );
}
