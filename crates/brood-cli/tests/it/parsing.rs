//! Parsing on clap: help, bundled flags, one-line errors, the misparses
//! of the old hand-written parser, shell detection and the injection fix.

use crate::support::{brood, brood_run, TempDir};
use predicates::str::contains;

/// A usage error: one line on stderr, status 255, nothing run.
fn rejects(args: &[&str], message: &str) {
    let out = brood().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(err.starts_with("brood: error: "), "{err}");
    assert!(
        err.contains(message),
        "{args:?}: expected {message:?} in {err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn help_exits_zero() {
    for args in [&["run", "--help"][..], &["run", "-h"], &["--help"]] {
        brood()
            .args(args)
            .assert()
            .success()
            .stdout(contains("Usage: brood"));
    }
    brood()
        .args(["run", "--help"])
        .assert()
        .stdout(contains("--halt <WHEN>"));
    brood()
        .arg("--version")
        .assert()
        .success()
        .stdout(contains("brood "));
}

#[test]
fn unknown_and_malformed_options_are_one_line() {
    rejects(&["run", "--frobnicate", "echo"], "--frobnicate");
    rejects(&["run", "-Z", "echo"], "-Z");
    rejects(&["run", "-j"], "-j");
    rejects(&["run", "-j", "many", "echo"], "--jobs");
    rejects(&["run", "--timeout", "soon", "echo"], "invalid duration");
    rejects(&["run", "--halt", "later", "echo"], "--halt");
    rejects(&["frobnicate"], "frobnicate");
}

#[test]
fn bundled_short_flags() {
    let (code, out) = brood_run(&["-kj2", "echo", ":::", "a", "b", "c"]);
    assert_eq!((code, out.as_str()), (Some(0), "a\nb\nc\n"));
}

/// `--halt-on-error 1` and `--halt-on-error now` took the value as the
/// command.
#[test]
fn halt_on_error_takes_its_value() {
    for value in ["1", "now"] {
        let (code, out) = brood_run(&[
            "-j1",
            "--halt-on-error",
            value,
            "sh",
            "-c",
            "echo $0; exit $0",
            ":::",
            "0",
            "3",
            "0",
        ]);
        assert_eq!(code, Some(3), "{value}");
        assert_eq!(out, "0\n3\n", "{value}");
    }
}

/// `-j +1` was taken as 1.
#[test]
fn jobs_plus_n_is_cpus_plus_n() {
    let n = std::thread::available_parallelism().unwrap().get();
    assert_eq!(crate::support::max_slot(false, "+1", n + 1, ""), n + 1);
}

/// A second `-a` replaced the first.
#[test]
fn second_arg_file_is_a_second_source() {
    let dir = TempDir::new("twoa");
    std::fs::write(dir.join("a"), "1\n2\n").unwrap();
    std::fs::write(dir.join("b"), "x\ny\n").unwrap();
    let args = ["-k", "-a", &dir.s("a"), "-a", &dir.s("b"), "echo", "{1}{2}"];
    let (code, out) = brood_run(&args);
    assert_eq!((code, out.as_str()), (Some(0), "1x\n1y\n2x\n2y\n"));
    assert_eq!(crate::support::parallel(&args), (code, out));
}

/// `::::` became part of the command, and stdin was read instead.
#[test]
fn four_colons_reads_files() {
    let dir = TempDir::new("fourc");
    std::fs::write(dir.join("f"), "p\nq\n").unwrap();
    let out = brood()
        .args(["run", "-k", "echo", "::::", &dir.s("f")])
        .write_stdin("not this\n")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "p\nq\n");
}

/// `{%}` and `{1}` were passed on literally, with the input appended.
#[test]
fn slot_and_positional_are_replacement_strings() {
    let (code, out) = brood_run(&["-j1", "-k", "echo", "{%}", "{1}", ":::", "a", "b"]);
    assert_eq!((code, out.as_str()), (Some(0), "1 a\n1 b\n"));
    // --dry-run too; with more slots, they are taken in turn.
    let args = ["--dry-run", "-j1", "echo", "{%}", "{#}", ":::", "a", "b"];
    assert_eq!(brood_run(&args), crate::support::parallel(&args));
    let (_, out) = brood_run(&["--dry-run", "-j2", "echo", "{%}", ":::", "a", "b", "c"]);
    assert_eq!(out, "echo 1\necho 2\necho 1\n");
}

/// A `{#}`-only template still had the input appended.
#[test]
fn seq_only_template_appends_nothing() {
    let (code, out) = brood_run(&["-k", "echo", "{#}", ":::", "a", "b"]);
    assert_eq!((code, out.as_str()), (Some(0), "1\n2\n"));
    let (_, theirs) = crate::support::parallel(&["-k", "echo", "{#}", ":::", "a", "b"]);
    assert_eq!(out, theirs);
}

/// `--joblog -` created a file named `-`.
#[test]
fn joblog_dash_is_stdout() {
    let dir = TempDir::new("jldash");
    let out = brood()
        .current_dir(dir.path())
        .args(["run", "--joblog", "-", "true", ":::", "a"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let rec: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(rec["input"], "a");
    assert!(!dir.join("-").exists());
}

#[test]
fn shell_syntax_without_shell_fails_with_a_hint() {
    for cmd in [
        &["echo", "{}", "|", "wc"][..],
        &["gzip -9 {} && echo ok"],
        &["echo", "x", ">", "f"],
    ] {
        let mut args = vec!["run"];
        args.extend_from_slice(cmd);
        args.extend([":::", "a"]);
        rejects(&args, "--shell");
    }
    brood()
        .args(["run", "--shell", "echo {} | tr a-z A-Z", ":::", "a"])
        .assert()
        .success()
        .stdout("A\n");
}

/// `brood run sh -c 'echo {}'` substituted the input unquoted into the
/// script. Every POSIX shell the issue names, by name and by path, with
/// the replacement string bare, in single and in double quotes (GNU
/// parallel still runs the input in the last two).
#[test]
fn shell_scripts_get_quoted_substitutions() {
    let dir = TempDir::new("inject");
    let pwned = dir.s("pwned");
    let hostile = [
        format!("a; touch {pwned}"),
        format!("$(touch {pwned})"),
        format!("`touch {pwned}`"),
        format!("'; touch {pwned}; '"),
        format!("\"; touch {pwned}; \""),
        format!("a\ntouch {pwned}"),
        "it's $HOME".to_string(),
    ];
    let expected: String = hostile.iter().map(|h| format!("[{h}]\n")).collect();
    for shell in [
        "sh",
        "bash",
        "dash",
        "zsh",
        "ksh",
        "/bin/sh",
        "/usr/bin/bash",
    ] {
        let found = std::process::Command::new(shell)
            .args(["-c", "true"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found,
            "{shell} is not installed: this test runs every shell brood quotes for \
             (apt-get install zsh ksh)"
        );
        for script in [
            "printf '[%s]\\n' {}",
            "printf '[%s]\\n' '{}'",
            "printf '[%s]\\n' \"{}\"",
        ] {
            let out = brood()
                .args(["run", "-k", shell, "-c", script, ":::"])
                .args(&hostile)
                .output()
                .unwrap();
            assert!(out.status.success(), "{shell} {script}: {out:?}");
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                expected,
                "{shell} -c {script:?}"
            );
            assert!(
                !dir.join("pwned").exists(),
                "{shell} -c {script:?}: an input ran as a command"
            );
        }
    }
    // A place brood cannot quote for with certainty is refused up front.
    rejects(
        &["run", "sh", "-c", "echo `date` {}", ":::", "a"],
        "cannot quote a replacement string safely",
    );
}

#[test]
fn no_command_runs_the_inputs() {
    let (code, out) = brood_run(&["-k", ":::", "echo one", "echo two | tr a-z A-Z"]);
    assert_eq!((code, out.as_str()), (Some(0), "one\nTWO\n"));
    brood()
        .args(["run", "-k"])
        .write_stdin("echo x\necho y\n")
        .assert()
        .success()
        .stdout("x\ny\n");
}

#[test]
fn perl_expressions_fail_loudly() {
    rejects(&["run", "echo", "{= $_ =}", ":::", "a"], "perl");
}
