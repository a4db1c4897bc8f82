//! `--shard I/N` and `--shard auto` (Slurm arrays and steps, Kubernetes
//! Indexed Jobs), `{shard}` in job log paths, and `--resume` per shard.

use crate::support::{brood_in_engine, lines_of, Field, TempDir};
use brood_testkit::jsonl;
use std::collections::{BTreeMap, BTreeSet};

fn inputs(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("in-{i:03}")).collect()
}

fn write_inputs(dir: &TempDir, name: &str, values: &[String]) -> String {
    let text: String = values.iter().map(|v| format!("{v}\n")).collect();
    std::fs::write(dir.join(name), text).unwrap();
    dir.s(name)
}

/// The inputs one brood ran (`echo {}`), sorted, under `vars` and `args`.
fn ran(vars: &[(&str, &str)], args: &[&str], file: &str) -> Vec<String> {
    let out = brood_in_engine(vars)
        .arg("run")
        .args(args)
        .args(["-a", file, "echo"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{vars:?} {args:?}: {out:?}");
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    lines.sort();
    lines
}

/// The inputs of the jobs `brood run --dry-run ARGS` lists, sorted: the
/// word before the last of each command line (`false`-like templates end
/// with the input, so `last` picks it instead).
fn dry(args: &[&str], last: bool) -> Vec<String> {
    let out = brood_in_engine(&[])
        .args(["run", "--dry-run"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    let mut inputs: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            words[words.len() - if last { 1 } else { 2 }].to_string()
        })
        .collect();
    inputs.sort();
    inputs
}

/// Asserts that `shards` together hold every input exactly once, and
/// none is empty (100 inputs over at most 6 shards).
fn assert_partition(shards: &[Vec<String>], all: &[String]) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for shard in shards {
        assert!(!shard.is_empty(), "an empty shard: {shards:?}");
        for v in shard {
            *seen.entry(v).or_default() += 1;
        }
    }
    let twice: Vec<&&str> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(v, _)| v)
        .collect();
    assert!(twice.is_empty(), "in two shards: {twice:?}");
    let expected: BTreeSet<&str> = all.iter().map(String::as_str).collect();
    assert_eq!(seen.keys().copied().collect::<BTreeSet<_>>(), expected);
}

#[test]
fn fixed_shards_run_every_job_once() {
    let dir = TempDir::new("shard-fixed");
    let all = inputs(100);
    let file = write_inputs(&dir, "in", &all);
    let shards: Vec<Vec<String>> = (0..4)
        .map(|i| ran(&[], &["--shard", &format!("{i}/4")], &file))
        .collect();
    assert_partition(&shards, &all);
    // 0/1 is every job.
    assert_eq!(ran(&[], &["--shard", "0/1"], &file), all);
}

#[test]
fn shards_follow_the_job_not_its_position() {
    // The same inputs reversed, and with others inserted: each input stays
    // in its shard, because the shard is cut from the job's key.
    let dir = TempDir::new("shard-order");
    let all = inputs(60);
    let file = write_inputs(&dir, "in", &all);
    let mut other: Vec<String> = all.iter().rev().cloned().collect();
    other.extend((0..30).map(|i| format!("new-{i}")));
    let other_file = write_inputs(&dir, "other", &other);
    for i in 0..3 {
        let shard = format!("{i}/3");
        let here: BTreeSet<String> = ran(&[], &["--shard", &shard], &file).into_iter().collect();
        let there: BTreeSet<String> = ran(&[], &["--shard", &shard], &other_file)
            .into_iter()
            .filter(|v| v.starts_with("in-"))
            .collect();
        assert_eq!(here, there, "shard {shard}");
    }
}

#[test]
fn seq_counts_the_whole_input_under_a_shard() {
    // {#} is the job's place in the whole input, not in its shard, so a
    // template with {#} is keyed, and sharded, alike everywhere.
    let dir = TempDir::new("shard-seq");
    let all = inputs(30);
    let file = write_inputs(&dir, "in", &all);
    let mut numbered = Vec::new();
    for i in 0..2 {
        let out = brood_in_engine(&[])
            .args(["run", "--shard", &format!("{i}/2"), "-a", &file])
            .args(["echo", "{#}", "{}"])
            .output()
            .unwrap();
        assert!(out.status.success());
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let (seq, input) = line.split_once(' ').unwrap();
            let position = all.iter().position(|v| v == input).unwrap() + 1;
            assert_eq!(seq, position.to_string(), "{line}");
            numbered.push(input.to_string());
        }
    }
    numbered.sort();
    assert_eq!(numbered, all);
}

#[test]
fn auto_reads_slurm_arrays() {
    let dir = TempDir::new("shard-array");
    let all = inputs(100);
    let file = write_inputs(&dir, "in", &all);
    // sbatch --array=0-3, as Slurm 22.05 sets it (scripts/slurm-e2e checks).
    let mut dense = Vec::new();
    for id in 0..4 {
        let id = id.to_string();
        let vars = [
            ("SLURM_ARRAY_TASK_ID", id.as_str()),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_MAX", "3"),
            ("SLURM_ARRAY_TASK_STEP", "1"),
            ("SLURM_PROCID", "0"),
        ];
        let got = ran(&vars, &["--shard", "auto"], &file);
        // The same slice as --shard I/N.
        assert_eq!(got, ran(&[], &["--shard", &format!("{id}/4")], &file));
        dense.push(got);
    }
    assert_partition(&dense, &all);
    // sbatch --array=3-10:2: ids 3 5 7 9 are shards 0..3.
    let stepped: Vec<Vec<String>> = [3, 5, 7, 9]
        .iter()
        .map(|id| {
            let id = id.to_string();
            let vars = [
                ("SLURM_ARRAY_TASK_ID", id.as_str()),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
                ("SLURM_ARRAY_TASK_MIN", "3"),
                ("SLURM_ARRAY_TASK_MAX", "9"),
                ("SLURM_ARRAY_TASK_STEP", "2"),
            ];
            ran(&vars, &["--shard", "auto"], &file)
        })
        .collect();
    assert_eq!(stepped, dense);
}

#[test]
fn auto_reads_slurm_steps_and_steps_inside_arrays() {
    let dir = TempDir::new("shard-steps");
    let all = inputs(100);
    let file = write_inputs(&dir, "in", &all);
    // srun -n 3: one shard per step task.
    let steps: Vec<Vec<String>> = (0..3)
        .map(|p| {
            let p = p.to_string();
            let vars = [
                ("SLURM_PROCID", p.as_str()),
                ("SLURM_NTASKS", "3"),
                ("SLURM_STEP_ID", "0"),
            ];
            ran(&vars, &["--shard", "auto"], &file)
        })
        .collect();
    assert_partition(&steps, &all);
    // srun -n 2 inside each task of --array=0-2: six workers, shard a*2+p of 6.
    let mut both = Vec::new();
    for a in 0..3 {
        for p in 0..2 {
            let (a_text, p_text) = (a.to_string(), p.to_string());
            let vars = [
                ("SLURM_ARRAY_TASK_ID", a_text.as_str()),
                ("SLURM_ARRAY_TASK_COUNT", "3"),
                ("SLURM_ARRAY_TASK_MIN", "0"),
                ("SLURM_ARRAY_TASK_MAX", "2"),
                ("SLURM_ARRAY_TASK_STEP", "1"),
                ("SLURM_PROCID", p_text.as_str()),
                ("SLURM_NTASKS", "2"),
                ("SLURM_STEP_ID", "0"),
            ];
            let got = ran(&vars, &["--shard", "auto"], &file);
            let index = a * 2 + p;
            assert_eq!(got, ran(&[], &["--shard", &format!("{index}/6")], &file));
            both.push(got);
        }
    }
    assert_partition(&both, &all);
}

#[test]
fn auto_reads_kubernetes_indexed_jobs() {
    let dir = TempDir::new("shard-k8s");
    let all = inputs(100);
    let file = write_inputs(&dir, "in", &all);
    let mut pods = Vec::new();
    for index in 0..5 {
        let index = index.to_string();
        // The count from BROOD_SHARD_COUNT, or from --shard-count: the same.
        let from_env = ran(
            &[("JOB_COMPLETION_INDEX", &index), ("BROOD_SHARD_COUNT", "5")],
            &["--shard", "auto"],
            &file,
        );
        let from_flag = ran(
            &[("JOB_COMPLETION_INDEX", &index)],
            &["--shard", "auto", "--shard-count", "5"],
            &file,
        );
        assert_eq!(from_env, from_flag);
        pods.push(from_env);
    }
    assert_partition(&pods, &all);
}

/// `brood run --shard auto` under `vars`: fails with status 255 and one
/// line on stderr naming each of `names`, having run nothing.
fn auto_fails(vars: &[(&str, &str)], extra: &[&str], names: &[&str]) {
    let dir = TempDir::new("shard-err");
    let out = brood_in_engine(vars)
        .args(["run", "--shard", "auto"])
        .args(extra)
        .args(["sh", "-c", &format!("touch {}", dir.s("ran")), ":::", "a"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{vars:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{vars:?}: {err}");
    for name in names {
        assert!(err.contains(name), "{vars:?}: {err:?} does not name {name}");
    }
    assert!(!dir.join("ran").exists(), "{vars:?}: a job ran");
}

#[test]
fn auto_without_engine_variables_is_an_error() {
    auto_fails(&[], &[], &["no engine variables", "--shard I/N"]);
    // A batch script's own SLURM_PROCID/SLURM_NTASKS are not a step's.
    auto_fails(
        &[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "2")],
        &[],
        &["SLURM_STEP_ID", "batch script"],
    );
}

#[test]
fn auto_errors_name_the_variable() {
    // A list array (--array=1,5,7): its ids do not map onto 0..COUNT.
    let list = [
        ("SLURM_ARRAY_TASK_ID", "5"),
        ("SLURM_ARRAY_TASK_COUNT", "3"),
        ("SLURM_ARRAY_TASK_MIN", "1"),
        ("SLURM_ARRAY_TASK_MAX", "7"),
        ("SLURM_ARRAY_TASK_STEP", "1"),
    ];
    auto_fails(&list, &[], &["SLURM_ARRAY_TASK_COUNT", "gaps"]);
    auto_fails(
        &[
            ("SLURM_ARRAY_TASK_ID", "x"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ],
        &[],
        &["SLURM_ARRAY_TASK_ID", "whole number"],
    );
    auto_fails(
        &[("SLURM_ARRAY_TASK_ID", "1")],
        &[],
        &["SLURM_ARRAY_TASK_COUNT"],
    );
    auto_fails(
        &[
            ("SLURM_PROCID", "3"),
            ("SLURM_NTASKS", "2"),
            ("SLURM_STEP_ID", "0"),
        ],
        &[],
        &["SLURM_PROCID", "SLURM_NTASKS"],
    );
    auto_fails(
        &[("JOB_COMPLETION_INDEX", "1")],
        &[],
        &["JOB_COMPLETION_INDEX", "BROOD_SHARD_COUNT", "--shard-count"],
    );
    auto_fails(
        &[("JOB_COMPLETION_INDEX", "4"), ("BROOD_SHARD_COUNT", "4")],
        &[],
        &["JOB_COMPLETION_INDEX"],
    );
    auto_fails(
        &[("JOB_COMPLETION_INDEX", "1"), ("BROOD_SHARD_COUNT", "4")],
        &["--shard-count", "5"],
        &["--shard-count 5", "BROOD_SHARD_COUNT"],
    );
    // Slurm and Kubernetes at once.
    auto_fails(
        &[
            ("SLURM_ARRAY_TASK_ID", "0"),
            ("SLURM_ARRAY_TASK_COUNT", "2"),
            ("JOB_COMPLETION_INDEX", "0"),
        ],
        &[],
        &["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"],
    );
    // Re-submitting part of an array with the count kept: an error, not a
    // wrong slice (--array=2 alone is shard 0 of 1, every job).
    auto_fails(
        &[
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "1"),
            ("SLURM_ARRAY_TASK_MIN", "2"),
            ("SLURM_ARRAY_TASK_MAX", "2"),
            ("SLURM_ARRAY_TASK_STEP", "1"),
        ],
        &["--shard-count", "4"],
        &["--shard-count 4", "SLURM_ARRAY_TASK_ID"],
    );
}

#[test]
fn shard_values_are_checked() {
    for (args, says) in [
        (vec!["--shard", "4/4"], "numbered from 0"),
        (vec!["--shard", "1"], "I/N"),
        (vec!["--shard", "-1/4"], "whole numbers"),
        (vec!["--shard", "0/0"], "at least 1"),
        (vec!["--shard", "auto", "--shard-count", "0"], "at least 1"),
        (vec!["--shard", "1/4", "--shard-count", "5"], "disagree"),
        (vec!["--shard-count", "4"], "--shard"),
    ] {
        let out = brood_in_engine(&[("JOB_COMPLETION_INDEX", "0")])
            .arg("run")
            .args(&args)
            .args(["echo", ":::", "a"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn auto_says_which_shard_it_took() {
    let out = brood_in_engine(&[("JOB_COMPLETION_INDEX", "2"), ("BROOD_SHARD_COUNT", "3")])
        .args(["run", "--shard", "auto", "true", ":::", "a"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "brood: --shard auto: shard 2/3 (Kubernetes Indexed Job)\n"
    );
    let quiet = brood_in_engine(&[("JOB_COMPLETION_INDEX", "2"), ("BROOD_SHARD_COUNT", "3")])
        .args(["run", "--quiet", "--shard", "auto", "true", ":::", "a"])
        .output()
        .unwrap();
    assert!(quiet.stderr.is_empty());
}

#[test]
fn each_shard_writes_its_own_log() {
    let dir = TempDir::new("shard-log");
    let all = inputs(40);
    let file = write_inputs(&dir, "in", &all);
    let pattern = dir.s("log.{shard}.jsonl");
    let mut logged = Vec::new();
    for i in 0..3 {
        brood_in_engine(&[])
            .args(["run", "--shard", &format!("{i}/3"), "--joblog", &pattern])
            .args(["-a", &file, "echo"])
            .assert()
            .success();
        let records = jsonl::read_file(&dir.join(&format!("log.{i}.jsonl")));
        let mut inputs: Vec<String> = records
            .iter()
            .map(|r| r.field("input").str().to_string())
            .collect();
        inputs.sort();
        // The log holds exactly the shard's jobs.
        assert_eq!(inputs, ran(&[], &["--shard", &format!("{i}/3")], &file));
        logged.push(inputs);
    }
    assert_partition(&logged, &all);
    // Without --shard, {shard} is 0: the one shard of one.
    let plain = dir.s("plain.{shard}.jsonl");
    brood_in_engine(&[])
        .args(["run", "--joblog", &plain, "true", ":::", "a"])
        .assert()
        .success();
    assert_eq!(jsonl::read_file(&dir.join("plain.0.jsonl")).len(), 1);
}

#[test]
fn resume_works_per_shard() {
    let dir = TempDir::new("shard-resume");
    let all = inputs(40);
    let first: Vec<String> = all[..20].to_vec();
    let file = write_inputs(&dir, "in", &first);
    let pattern = dir.s("log.{shard}.jsonl");
    let ran_file = dir.s("ran");
    let job = ["sh", "-c", "echo \"$1\" >> \"$2\"", "sh", "{}", &ran_file];
    let run = |shard: &str| {
        brood_in_engine(&[])
            .args(["run", "--shard", shard, "--resume", "--joblog", &pattern])
            .args(["-a", &file])
            .args(job)
            .assert()
            .success();
    };
    let shard_of = |shard: &str| {
        let mut args = vec!["--shard", shard, "-a", &file];
        args.extend(job);
        dry(&args, false)
    };
    // --resume with no log yet is a first run: nothing is done yet.
    assert!(!dir.join("log.0.jsonl").exists());
    run("0/2");
    run("1/2");
    let mut once = lines_of(&dir.join("ran"));
    once.sort();
    assert_eq!(once, first);
    // The inputs grow (more work arrived, or the first submission was cut
    // short): each shard, resumed from its own log, runs only its new jobs.
    std::fs::remove_file(dir.join("ran")).unwrap();
    write_inputs(&dir, "in", &all);
    run("0/2");
    let shard0 = lines_of(&dir.join("ran"));
    run("1/2");
    let mut second = lines_of(&dir.join("ran"));
    second.sort();
    assert_eq!(second, all[20..].to_vec());
    // Shard 0 ran only its own: its new jobs, as --shard 0/2 cuts them.
    let mut mine: Vec<String> = shard_of("0/2")
        .into_iter()
        .filter(|v| all[20..].contains(v))
        .collect();
    mine.sort();
    let mut shard0 = shard0;
    shard0.sort();
    assert_eq!(shard0, mine);
    // A shard whose log is lost runs its whole shard again; the other
    // shard, whose log is whole, runs nothing.
    std::fs::remove_file(dir.join("ran")).unwrap();
    std::fs::remove_file(dir.join("log.1.jsonl")).unwrap();
    run("0/2");
    assert!(lines_of(&dir.join("ran")).is_empty());
    run("1/2");
    let mut again = lines_of(&dir.join("ran"));
    again.sort();
    assert_eq!(again, shard_of("1/2"));
}

#[test]
fn shuffled_shards_with_seq_are_refused() {
    let out = brood_in_engine(&[])
        .args([
            "run", "--shard", "0/2", "--shuf", "echo", "{#}", ":::", "a", "b",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--shuf"));
    // Without {#} the key does not depend on the order: fine.
    brood_in_engine(&[])
        .args(["run", "--shard", "0/1", "--shuf", "echo", ":::", "a", "b"])
        .assert()
        .success();
}

#[test]
fn halt_percentages_count_the_shards_jobs() {
    // --halt soon,fail=50%: half of *this shard's* jobs. With all of the
    // shard's jobs failing, the halt comes after half of them.
    let dir = TempDir::new("shard-halt");
    let all = inputs(40);
    let file = write_inputs(&dir, "in", &all);
    let mine = dry(&["--shard", "1/4", "-a", &file, "false"], true).len();
    let log = dir.s("log.jsonl");
    brood_in_engine(&[])
        .args([
            "run",
            "-j",
            "1",
            "--shard",
            "1/4",
            "--halt",
            "soon,fail=50%",
        ])
        .args(["--joblog", &log, "-a", &file, "false"])
        .assert()
        .failure();
    let failed = jsonl::read_file(&dir.join("log.jsonl")).len();
    assert_eq!(failed, mine.div_ceil(2), "{mine} jobs in the shard");
}

/// The README's Kubernetes Indexed Job: its `completions`, its container's
/// `command` and the value of its `BROOD_SHARD_COUNT`.
fn readme_manifest() -> (usize, Vec<String>, String) {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("crates/brood-cli/README.md");
    let start = readme
        .find("```yaml\napiVersion: batch/v1\nkind: Job\n")
        .expect("the README has a Job manifest");
    let block = &readme[start + "```yaml\n".len()..];
    let block = &block[..block.find("```").unwrap()];
    let after = |key: &str| -> &str {
        let at = block
            .find(key)
            .unwrap_or_else(|| panic!("no {key:?} in\n{block}"));
        &block[at + key.len()..]
    };
    let completions: usize = after("completions:")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // A YAML flow sequence of double-quoted strings is JSON.
    let command = after("command:");
    let command: Vec<String> = serde_json::from_str(&command[..=command.find(']').unwrap()])
        .expect("the command is a flow sequence of quoted strings");
    let count = after("- name: BROOD_SHARD_COUNT")
        .trim_start()
        .strip_prefix("value: \"")
        .and_then(|v| v.split('"').next())
        .expect("BROOD_SHARD_COUNT's value")
        .to_string();
    (completions, command, count)
}

#[test]
fn the_readmes_kubernetes_job_runs_every_job_once() {
    // No cluster here: each pod of the Indexed Job is the manifest's
    // command run with its index, as Kubernetes starts it, over /data
    // (here a temp dir).
    let (completions, command, count) = readme_manifest();
    assert_eq!(
        count,
        completions.to_string(),
        "BROOD_SHARD_COUNT = completions"
    );
    assert_eq!(command[0], "brood");
    let dir = TempDir::new("k8s-manifest");
    let data = format!("{}/", dir.s(""));
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    let all = inputs(60);
    write_inputs(&dir, "inputs.txt", &all);
    let tool = dir.join("bin/make-thumbnail");
    std::fs::write(
        &tool,
        format!("#!/bin/sh\necho \"$1\" >> {}\n", dir.s("ran")),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&tool).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&tool, perms).unwrap();
    let args: Vec<String> = command[1..]
        .iter()
        .map(|a| a.replace("/data/", &data))
        .collect();
    let pod = |index: usize| {
        let index = index.to_string();
        brood_in_engine(&[
            ("JOB_COMPLETION_INDEX", index.as_str()),
            ("BROOD_SHARD_COUNT", count.as_str()),
        ])
        .args(&args)
        .assert()
        .success();
    };
    for index in 0..completions {
        pod(index);
        assert!(dir.join(&format!("logs/log.{index}.jsonl")).exists());
    }
    let mut ran = lines_of(&dir.join("ran"));
    ran.sort();
    assert_eq!(ran, all, "every input once over the {completions} pods");
    // A pod retried with the same index resumes its own shard's log: its
    // jobs are done, so it runs none again.
    std::fs::remove_file(dir.join("ran")).unwrap();
    pod(completions / 2);
    assert!(lines_of(&dir.join("ran")).is_empty());
}
