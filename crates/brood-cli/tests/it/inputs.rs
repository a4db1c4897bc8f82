//! Input sources and replacement strings, side by side with GNU parallel.

use crate::support::{brood, brood_run, parallel, TempDir};

/// brood and GNU parallel print the same for the same arguments.
fn same_as_parallel(args: &[&str]) {
    let (code, ours) = brood_run(args);
    let (their_code, theirs) = parallel(args);
    assert_eq!((code, ours), (their_code, theirs), "{args:?}");
}

#[test]
fn sources_combine_as_gnu_parallel_does() {
    same_as_parallel(&["-k", "echo", "{1}{2}", ":::", "a", "b", ":::", "1", "2"]);
    same_as_parallel(&[
        "-k", "--link", "echo", "{1}{2}", ":::", "a", "b", "c", ":::", "1", "2",
    ]);
    same_as_parallel(&[
        "-k", "echo", ":::", "a", "b", ":::+", "1", "2", "3", ":::", "X", "Y",
    ]);
    same_as_parallel(&["-k", "echo", "{2}", "{1}", ":::", "a", "b", ":::", "1", "2"]);
}

#[test]
fn files_and_arg_files_mix() {
    let dir = TempDir::new("mix");
    std::fs::write(dir.join("f"), "6\n7\n").unwrap();
    std::fs::write(dir.join("g"), "4\n5\n").unwrap();
    let (f, g) = (dir.s("f"), dir.s("g"));
    same_as_parallel(&[
        "-k", "echo", "{1}", "{2}", "{3}", "::::", &f, &g, ":::", "1", "2",
    ]);
    same_as_parallel(&["-k", "-a", &f, "echo", "{1}", "{2}", "::::", &g]);
}

#[test]
fn positional_modifiers_and_edge_cases() {
    same_as_parallel(&[
        "-k",
        "echo",
        "[{.}]",
        "[{/.}]",
        "[{//}]",
        "[{/}]",
        ":::",
        ".bashrc",
        "d/.bashrc",
        "a/b/",
        "x.tar.gz",
        "/",
        "a//",
    ]);
    same_as_parallel(&[
        "-k", "echo", "{1.}", "{2/}", "{2//}", "{2/.}", "{-1}", ":::", "a.b", ":::", "c/d.e",
    ]);
}

/// brood and GNU parallel print the same for the same arguments and stdin.
fn same_as_parallel_on_stdin(args: &[&str], stdin: &str) {
    let run = |cmd: &mut assert_cmd::Command| {
        let out = cmd.args(args).write_stdin(stdin).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let ours = run(brood().arg("run"));
    crate::support::require_parallel();
    let theirs = run(assert_cmd::Command::new("parallel")
        .arg("--will-cite")
        .timeout(crate::support::LIMIT));
    assert_eq!(ours, theirs, "{args:?} on {stdin:?}");
}

#[test]
fn delimiters_and_columns() {
    same_as_parallel_on_stdin(&["-k", "-0", "echo", "[{}]"], "a b\0c\nd\0");
    same_as_parallel_on_stdin(&["-k", "--null", "echo"], "x\0\0y");
    same_as_parallel_on_stdin(&["-k", "-d", ",", "echo"], "x,y,z");
    same_as_parallel_on_stdin(&["-k", "-d", "\\t", "echo", "[{}]"], "a b\tc\n");
    same_as_parallel_on_stdin(&["-k", "--colsep", "\\t", "echo", "{2}"], "a\tb\nc\td\n");
    same_as_parallel(&[
        "-k", "--colsep", "-", "echo", "{4}", "{3}", "{2}", "{1}", ":::", "A-B", "C-D", ":::",
        "e-f", "g-h",
    ]);
    same_as_parallel(&[
        "-k", "--colsep", ",", "echo", "{2}", "{1}", ":::", " a , b ",
    ]);
}

#[test]
fn several_arguments_per_job() {
    same_as_parallel(&[
        "-k", "-N2", "echo", "{1}-{2}", "{}", ":::", "1", "2", "3", "4", "5",
    ]);
    same_as_parallel(&["-k", "-N3", "echo", "{3}x{-1}", ":::", "1", "2", "3", "4"]);
    same_as_parallel(&[
        "-k", "-n2", "echo", "{}", "x", ":::", "1", "2", "3", "4", "5",
    ]);
    same_as_parallel(&[
        "-k",
        "-j2",
        "-X",
        "echo",
        "pic{}.jpg",
        ":::",
        "1",
        "2",
        "3",
        "4",
        "5",
        "6",
        "7",
    ]);
    same_as_parallel(&[
        "-k",
        "-j3",
        "-m",
        "echo",
        "pic{}.jpg",
        ":::",
        "1",
        "2",
        "3",
        "4",
        "5",
        "6",
        "7",
    ]);
    same_as_parallel(&["-k", "-j1", "-X", "echo", ":::", "1", "2", "3"]);
}

#[test]
fn max_chars_bounds_each_job() {
    let inputs: Vec<String> = (0..50).map(|i| format!("{i:03}")).collect();
    let out = brood()
        .args(["run", "-k", "-j1", "-X", "-s", "40", "echo", ":::"])
        .args(&inputs)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().count() > 1, "{text}");
    assert_eq!(text.split_whitespace().count(), 50);
    assert!(text.lines().all(|l| l.len() <= 40), "{text}");
}

#[test]
fn slot_and_sequence_in_env_and_template() {
    // Three jobs, two at a time; the first two wait for each other, so
    // they run at once.
    let dir = TempDir::new("slot-env");
    let script = format!(
        "touch {d}/{{}}; i=0; while [ $(ls {d} | wc -l) -lt 2 ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; \
         echo {{}} {{#}} {{%}} $PARALLEL_SEQ $PARALLEL_JOBSLOT $BROOD_SEQ $BROOD_SLOT",
        d = dir.s("")
    );
    let (code, out) = brood_run(&["-j2", "-k", "sh", "-c", &script, ":::", "a", "b", "c"]);
    assert_eq!(code, Some(0));
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(rows.len(), 3);
    for (i, (row, input)) in rows.iter().zip(["a", "b", "c"]).enumerate() {
        let seq = (i + 1).to_string();
        assert_eq!(row[0], input, "{out}");
        assert_eq!((row[1], row[3], row[5]), (&*seq, &*seq, &*seq), "{out}");
        assert_eq!((row[2], row[2]), (row[4], row[6]), "{out}");
        assert!(row[2] == "1" || row[2] == "2", "{out}");
    }
    // Two jobs at once never share a slot.
    assert_ne!(rows[0][2], rows[1][2], "{out}");
}

#[test]
fn inputs_from_stdin_stream() {
    brood()
        .args(["run", "-j1", "--", "echo", "got"])
        .write_stdin("one\ntwo words\n\nlast")
        .assert()
        .success()
        .stdout("got one\ngot two words\ngot \ngot last\n");
}

#[test]
fn shuf_runs_every_job_once() {
    let inputs: Vec<String> = (1..=40).map(|i| i.to_string()).collect();
    let (code, out) = {
        let out = brood()
            .args(["run", "-j1", "--shuf", "echo", ":::"])
            .args(&inputs)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert_eq!(code, Some(0));
    let got: Vec<&str> = out.lines().collect();
    let mut sorted: Vec<u32> = got.iter().map(|s| s.parse().unwrap()).collect();
    sorted.sort();
    assert_eq!(sorted, (1..=40).collect::<Vec<_>>());
    assert_ne!(
        got,
        inputs.iter().map(String::as_str).collect::<Vec<_>>(),
        "not shuffled (1 in 40! chance)"
    );
}
