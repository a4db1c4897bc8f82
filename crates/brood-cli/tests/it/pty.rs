//! The progress line and the summary appear when stderr is a terminal and
//! not otherwise. The terminal comes from `script` (util-linux); where it
//! is missing the tests fail and say so.

use crate::support::{bin, brood, LIMIT};
use std::process::{Command, Stdio};

fn require_script() {
    let found = Command::new("sh")
        .args(["-c", "command -v script"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "`script` (util-linux) is needed to give brood a terminal: apt-get install util-linux"
    );
}

/// Runs `brood ARGS` under `script`, which gives it a pseudo-terminal, and
/// returns everything written to that terminal.
fn on_tty(args: &str) -> (Option<i32>, String) {
    let cmd = format!("{} {args}", bin().display());
    let out = assert_cmd::Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .timeout(LIMIT)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

const JOBS: &str = "run -j 2 -- sh -c 'echo job $0' ::: a b c d";

#[test]
fn progress_line_on_a_terminal() {
    require_script();
    let (code, screen) = on_tty(JOBS);
    assert_eq!(code, Some(0), "{screen}");
    // Redrawn in place: carriage return and erase-line, then the counts.
    assert!(screen.contains("\r\x1b[2K"), "{screen:?}");
    assert!(
        screen.contains(" done,") && screen.contains(" running,") && screen.contains("ETA"),
        "{screen:?}"
    );
    assert!(screen.contains("/4 done"), "{screen:?}");
    // Job output and the summary are still there, and the last thing on
    // screen is not a stale progress line.
    assert!(
        screen.contains("job a") && screen.contains("job d"),
        "{screen:?}"
    );
    assert!(screen.contains("brood: 4 jobs in"), "{screen:?}");
    let after_summary = screen.rsplit("brood: 4 jobs in").next().unwrap();
    assert!(!after_summary.contains(" running,"), "{screen:?}");
}

#[test]
fn no_progress_line_when_piped() {
    let out = brood()
        .args([
            "run",
            "-j",
            "2",
            "--",
            "sh",
            "-c",
            "echo job $0",
            ":::",
            "a",
            "b",
            "c",
            "d",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains('\x1b') && !err.contains('\r'), "{err:?}");
    assert!(!err.contains(" running,"), "{err:?}");
    // No summary either: a script capturing 2>&1 sees nothing extra.
    assert!(err.is_empty(), "{err}");
}

#[test]
fn demo_on_a_terminal() {
    require_script();
    let t0 = std::time::Instant::now();
    let (code, screen) = on_tty("");
    assert_eq!(code, Some(0), "{screen}");
    assert!(t0.elapsed() < std::time::Duration::from_secs(10));
    assert!(screen.contains("\r\x1b[2K"), "{screen:?}");
    assert!(screen.contains("job 3 timed out"), "{screen}");
    assert!(
        screen.contains("14 jobs in") && screen.contains(" timed out)"),
        "{screen}"
    );
}

#[test]
fn demo_without_arguments_and_by_name() {
    // Both at once: the demo takes about three seconds.
    let runs: Vec<_> = [&[][..], &["demo"][..]]
        .into_iter()
        .map(|args| std::thread::spawn(move || (args, brood().args(args).output().unwrap())))
        .collect();
    for run in runs {
        let (args, out) = run.join().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(
            err.contains("job 3 timed out after 1.00s; its process tree was stopped"),
            "{err}"
        );
        assert!(err.contains("brood: 14 jobs in"), "{err}");
        assert!(err.contains("slowest:"), "{err}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("tree\tstarting a sleep"), "{stdout}");
    }
}
