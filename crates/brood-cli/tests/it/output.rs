//! Output modes, tags, --results, --files, the summary, and bounded
//! memory for held-back output.

use crate::support::{brood, brood_run, parallel, TempDir};
use std::time::Duration;

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
fn forced_bar_draws_off_a_terminal() {
    let out = brood()
        .args(["run", "--bar", "sh", "-c", "sleep 0.3", ":::", "a", "b"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("done,") && err.contains("ETA"), "{err:?}");
}

/// Peak RSS of a finished process, from `/proc/<pid>/status`, read by
/// a wrapper shell just before brood exits (VmHWM).
fn peak_rss_kib(args: &[&str], limit: Duration) -> u64 {
    let bin = crate::support::bin().display().to_string();
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    // The shell runs brood in the background and reads its VmHWM while it
    // still exists: after its output is drained, before it is reaped.
    let script = format!(
        "{bin} {} >/dev/null 2>&1 & pid=$!; hwm=0; while kill -0 $pid 2>/dev/null; do \
         h=$(awk '/VmHWM/ {{print $2}}' /proc/$pid/status 2>/dev/null); [ -n \"$h\" ] && hwm=$h; sleep 0.05; done; echo $hwm",
        quoted.join(" ")
    );
    let out = assert_cmd::Command::new("sh")
        .args(["-c", &script])
        .timeout(limit)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn group_mode_memory_is_bounded() {
    // 20 jobs of 10 MiB each, held until each ends, with -k: 200 MiB of
    // output through brood.
    let kib = peak_rss_kib(
        &[
            "run",
            "-k",
            "-j",
            "20",
            "head",
            "-c",
            "10485760",
            "/dev/zero",
            ":::",
            "1",
            "2",
            "3",
            "4",
            "5",
            "6",
            "7",
            "8",
            "9",
            "10",
            "11",
            "12",
            "13",
            "14",
            "15",
            "16",
            "17",
            "18",
            "19",
            "20",
        ],
        Duration::from_secs(60),
    );
    assert!(kib > 0 && kib < 64 * 1024, "peak RSS {kib} KiB");
}

#[test]
fn endless_job_in_group_mode_is_bounded() {
    // `yes` never ends; the timeout stops it after 2 s, by when it has
    // written gigabytes that brood spooled to disk.
    let kib = peak_rss_kib(
        &["run", "--timeout", "2s", "yes", ":::", "x"],
        Duration::from_secs(30),
    );
    assert!(kib > 0 && kib < 64 * 1024, "peak RSS {kib} KiB");
}
