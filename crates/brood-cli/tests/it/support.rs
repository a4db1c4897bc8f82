//! Helpers of the CLI tests: assert_cmd glue, GNU parallel side by side,
//! brood in the background. What the other test suites need too (bounded
//! waits, `/proc`, the job log's JSON Lines, cgroups) comes from
//! `brood-testkit`.

use brood_testkit::eventually_blocking;
use nix::sys::signal::{kill as nix_kill, Signal};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every test's time limit for one brood run.
pub const LIMIT: Duration = Duration::from_secs(30);

/// The brood binary under test.
pub fn bin() -> &'static Path {
    Path::new(assert_cmd::cargo::cargo_bin!("brood"))
}

/// `brood` as an assert_cmd command with a time limit.
pub fn brood() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(bin());
    cmd.timeout(LIMIT);
    cmd
}

/// A fresh scratch directory (a `tempfile::TempDir` named after the test),
/// removed on drop; with shorthands for paths in it.
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        TempDir(
            tempfile::Builder::new()
                .prefix(&format!("brood-cli-{name}-"))
                .tempdir()
                .unwrap(),
        )
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.0.path().join(p)
    }

    /// `self/p` as a string, for command lines.
    pub fn s(&self, p: &str) -> String {
        self.join(p).to_str().unwrap().to_string()
    }
}

/// Sends `sig` to `pid`.
pub fn kill(pid: u32, sig: Signal) -> nix::Result<()> {
    nix_kill(Pid::from_raw(pid as i32), sig)
}

/// Field access on job log records.
pub trait Field {
    /// The field `key`; panics if missing.
    fn field(&self, key: &str) -> &serde_json::Value;
    /// As a number.
    fn num(&self) -> f64;
    /// As a string.
    fn str(&self) -> &str;
    /// As a bool.
    fn bool(&self) -> bool;
    /// As an array.
    fn arr(&self) -> &[serde_json::Value];
}

impl Field for serde_json::Value {
    fn field(&self, key: &str) -> &serde_json::Value {
        self.get(key)
            .unwrap_or_else(|| panic!("no field {key} in {self}"))
    }
    fn num(&self) -> f64 {
        self.as_f64()
            .unwrap_or_else(|| panic!("not a number: {self}"))
    }
    fn str(&self) -> &str {
        self.as_str()
            .unwrap_or_else(|| panic!("not a string: {self}"))
    }
    fn bool(&self) -> bool {
        self.as_bool()
            .unwrap_or_else(|| panic!("not a bool: {self}"))
    }
    fn arr(&self) -> &[serde_json::Value] {
        self.as_array()
            .unwrap_or_else(|| panic!("not an array: {self}"))
    }
}

/// Fails with a clear reason unless GNU parallel is installed (.ci/run
/// installs it).
pub fn require_parallel() {
    let ok = std::process::Command::new("parallel")
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("GNU parallel"));
    assert!(ok, "GNU parallel is not installed: this test compares brood with it (apt-get install parallel)");
}

/// Runs GNU parallel with `args` (and --will-cite); returns (status, stdout).
pub fn parallel(args: &[&str]) -> (Option<i32>, String) {
    require_parallel();
    let out = assert_cmd::Command::new("parallel")
        .arg("--will-cite")
        .args(args)
        .timeout(LIMIT)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Runs `brood run` with `args`; returns (status, stdout).
pub fn brood_run(args: &[&str]) -> (Option<i32>, String) {
    let out = brood().arg("run").args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A fake `/proc` file for brood alone: brood runs in a new user and mount
/// namespace (`unshare -rm`, private propagation; no privilege needed
/// where user namespaces are enabled) where this file is bind-mounted over
/// the real one, as lxcfs does for containers. The test changes what brood
/// reads with [`FakeProc::set`]; the host's `/proc` is untouched.
pub struct FakeProc {
    path: PathBuf,
    target: &'static str,
    len: usize,
}

impl FakeProc {
    /// A fake `target` (such as `/proc/meminfo`) holding `text`. Every
    /// later text must have the same length: it is written in place, so
    /// brood never reads a half-written file.
    pub fn new(dir: &TempDir, target: &'static str, text: &str) -> FakeProc {
        let path = dir.join(target.rsplit('/').next().unwrap());
        std::fs::write(&path, text).unwrap();
        FakeProc {
            path,
            target,
            len: text.len(),
        }
    }

    /// Replaces the text, in place.
    pub fn set(&self, text: &str) {
        use std::os::unix::fs::FileExt;
        assert_eq!(text.len(), self.len, "a fake /proc text keeps its length");
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.path)
            .unwrap();
        file.write_all_at(text.as_bytes(), 0).unwrap();
    }

    /// The file's path, for jobs that change it themselves.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `brood ARGS` in a mount namespace that sees this file as `target`.
    pub fn brood(&self, args: &[&str]) -> std::process::Command {
        const UNSHARE: [&str; 4] = ["--map-root-user", "--mount", "--propagation", "private"];
        let probe = std::process::Command::new("unshare")
            .args(UNSHARE)
            .arg("true")
            .output();
        assert!(
            probe.as_ref().is_ok_and(|o| o.status.success()),
            "this test needs `unshare` (util-linux) and user namespaces to fake {}: {probe:?}",
            self.target
        );
        let mut cmd = std::process::Command::new("unshare");
        cmd.args(UNSHARE)
            .args(["sh", "-c"])
            .arg("mount --bind \"$1\" \"$2\" && shift 2 && exec \"$@\"")
            .arg("sh")
            .arg(&self.path)
            .arg(self.target)
            .arg(bin())
            .args(args);
        cmd
    }
}

/// Lines of a file written by jobs (`echo ... >> file`); none if missing.
pub fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}
/// The highest job slot `-j J` uses, in brood (`parallel: false`) or GNU
/// parallel, under `limits` (bash `ulimit` commands run first). `2 * want`
/// jobs each wait (at most 10 s) until `want` have started, so `want` run
/// at once if there are that many slots; the slots number 1..=-j, so the
/// answer is `want` exactly when `-j J` means `want` jobs at once.
pub fn max_slot(parallel: bool, j: &str, want: usize, limits: &str) -> usize {
    let dir = TempDir::new("slots");
    let script = format!(
        "touch {d}/$PARALLEL_SEQ; i=0; \
         while [ $(ls {d} | wc -l) -lt {want} ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; \
         echo $PARALLEL_JOBSLOT",
        d = dir.s(""),
    );
    let inputs: Vec<String> = (1..=2 * want).map(|i| i.to_string()).collect();
    let tool = if parallel {
        format!("parallel --will-cite -j {j}")
    } else {
        format!("{} run -j {j} --shell", bin().display())
    };
    // bash: its `ulimit` has -u (dash's does not).
    let out = assert_cmd::Command::new("bash")
        .arg("-c")
        .arg(format!("{limits} exec {tool} \"$@\""))
        .arg("sh")
        .arg(&script)
        .arg(":::")
        .args(&inputs)
        .timeout(LIMIT)
        .output()
        .unwrap();
    assert!(out.status.success(), "-j {j}: {out:?}");
    let slots: Vec<usize> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .step_by(2)
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(slots.len(), inputs.len(), "-j {j}: {out:?}");
    slots.into_iter().max().unwrap()
}

/// brood running in the background, stopped (SIGTERM, then SIGKILL) if the
/// test fails before it ends, so that no run outlives its test.
pub struct Background(Option<std::process::Child>);

impl Background {
    /// Spawns `cmd` (stderr piped).
    pub fn spawn(cmd: &mut std::process::Command) -> Background {
        let child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        Background(Some(child))
    }

    /// The process.
    pub fn child(&mut self) -> &mut std::process::Child {
        self.0.as_mut().expect("not finished")
    }

    /// Waits (at most [`LIMIT`]) for it to end; its exit status, stdout
    /// and stderr.
    pub fn finish(mut self) -> (Option<i32>, String, String) {
        let mut child = self.0.take().expect("not finished");
        let ended = eventually_blocking(LIMIT, || child.try_wait().unwrap().is_some());
        if !ended {
            self.0 = Some(child);
            panic!("brood did not exit within {LIMIT:?}");
        }
        let out = child.wait_with_output().unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = kill(child.id(), Signal::SIGTERM);
            if !eventually_blocking(Duration::from_secs(5), || {
                child.try_wait().is_ok_and(|s| s.is_some())
            }) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

/// The variables `brood run --shard auto` reads.
pub const ENGINE_VARS: [&str; 10] = [
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_COUNT",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_MAX",
    "SLURM_ARRAY_TASK_STEP",
    "SLURM_PROCID",
    "SLURM_NTASKS",
    "SLURM_STEP_ID",
    "JOB_COMPLETION_INDEX",
    "BROOD_SHARD_COUNT",
];

/// `brood` with none of the engine variables but `vars`, whatever the
/// environment the tests run in (a Slurm job, say).
pub fn brood_in_engine(vars: &[(&str, &str)]) -> assert_cmd::Command {
    let mut cmd = brood();
    for var in ENGINE_VARS {
        cmd.env_remove(var);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}
