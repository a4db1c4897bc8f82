//! brood's own spawn against std's, option by option and for both vehicles
//! (clone3 and the fork fallback), then what only brood's spawn does: the
//! pidfd from birth, cgroup placement, the signal rules, and the fallback
//! under a seccomp filter that denies clone3.
//!
//! Every test spawns the same options through `std::process::Command` and
//! through a [`SpawnPlan`] and compares what the children saw or what the
//! spawns returned. The tests take one lock: some change process-wide
//! signal state, which every child spawned meanwhile would inherit.

use super::plan::{SpawnPlan, SpawnedChild, StdioSpec, Vehicle};
use crate::sys::spawn::test_support as ts;
use crate::sys::spawn::{Choice, Support};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The vehicles to compare with std, and what each must turn out to be.
fn vehicles() -> [(Choice, Vehicle); 2] {
    let auto = if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        Vehicle::Clone3
    } else {
        Vehicle::Fork
    };
    [(Choice::Auto, auto), (Choice::Fork, Vehicle::Fork)]
}

/// One environment change, applied in order to both builders.
#[derive(Clone, Debug)]
enum EnvOp {
    Set(&'static str, String),
    Remove(&'static str),
    Clear,
}

/// Options given identically to std and to a plan.
#[derive(Clone, Debug, Default)]
struct Options {
    program: OsString,
    args: Vec<OsString>,
    arg0: Option<OsString>,
    env: Vec<EnvOp>,
    cwd: Option<PathBuf>,
    uid: Option<u32>,
    gid: Option<u32>,
    pgroup: Option<i32>,
}

impl Options {
    fn new(program: impl AsRef<OsStr>, args: &[&str]) -> Options {
        Options {
            program: program.as_ref().to_owned(),
            args: args.iter().map(OsString::from).collect(),
            ..Options::default()
        }
    }

    fn env(mut self, op: EnvOp) -> Options {
        self.env.push(op);
        self
    }

    fn std(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        if let Some(arg0) = &self.arg0 {
            command.arg0(arg0);
        }
        for op in &self.env {
            match op {
                EnvOp::Set(key, value) => command.env(key, value),
                EnvOp::Remove(key) => command.env_remove(key),
                EnvOp::Clear => command.env_clear(),
            };
        }
        if let Some(cwd) = &self.cwd {
            command.current_dir(cwd);
        }
        if let Some(uid) = self.uid {
            command.uid(uid);
        }
        if let Some(gid) = self.gid {
            command.gid(gid);
        }
        if let Some(pgroup) = self.pgroup {
            command.process_group(pgroup);
        }
        command
    }

    fn plan(&self) -> SpawnPlan<'static> {
        let mut plan = SpawnPlan::new(&self.program);
        for arg in &self.args {
            plan.arg(arg);
        }
        if let Some(arg0) = &self.arg0 {
            plan.arg0(arg0);
        }
        for op in &self.env {
            match op {
                EnvOp::Set(key, value) => plan.env(key, value),
                EnvOp::Remove(key) => plan.env_remove(key),
                EnvOp::Clear => plan.env_clear(),
            };
        }
        if let Some(cwd) = &self.cwd {
            plan.current_dir(cwd);
        }
        if let Some(uid) = self.uid {
            plan.uid(uid);
        }
        if let Some(gid) = self.gid {
            plan.gid(gid);
        }
        if let Some(pgroup) = self.pgroup {
            plan.process_group(pgroup);
        }
        plan
    }
}

/// What a spawn came to: the child's exit and stdout, or the spawn error's
/// kind and errno.
#[derive(Clone, PartialEq, Eq)]
enum Outcome {
    Ran { status: ExitStatus, stdout: Vec<u8> },
    Failed(io::ErrorKind, Option<i32>),
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Ran { status, stdout } => f
                .debug_struct("Ran")
                .field("status", status)
                .field("stdout", &String::from_utf8_lossy(stdout))
                .finish(),
            Outcome::Failed(kind, errno) => {
                f.debug_tuple("Failed").field(kind).field(errno).finish()
            }
        }
    }
}

fn failed(e: io::Error) -> Outcome {
    Outcome::Failed(e.kind(), e.raw_os_error())
}

fn wait(pid: u32) -> ExitStatus {
    crate::sys::process::wait4(pid, false)
        .expect("wait4")
        .expect("an exit")
        .0
}

fn read_all(fd: OwnedFd) -> Vec<u8> {
    let mut out = Vec::new();
    File::from(fd).read_to_end(&mut out).expect("read");
    out
}

fn run_std(options: &Options) -> Outcome {
    let mut command = options.std();
    match command.stdout(Stdio::piped()).spawn() {
        Ok(mut child) => {
            let stdout = read_all(child.stdout.take().unwrap().into());
            Outcome::Ran {
                status: child.wait().unwrap(),
                stdout,
            }
        }
        Err(e) => failed(e),
    }
}

fn spawn_ours(plan: &SpawnPlan<'_>, choice: Choice, expect: Vehicle) -> io::Result<SpawnedChild> {
    let child = plan.spawn_with(None, &Support::new(), choice)?;
    assert_eq!(child.vehicle, expect);
    Ok(child)
}

fn run_ours(options: &Options, choice: Choice, expect: Vehicle) -> Outcome {
    let mut plan = options.plan();
    plan.stdout(StdioSpec::Piped);
    match spawn_ours(&plan, choice, expect) {
        Ok(child) => {
            let stdout = read_all(child.stdout.unwrap());
            Outcome::Ran {
                status: wait(child.pid),
                stdout,
            }
        }
        Err(e) => failed(e),
    }
}

/// Runs `options` with std and with each vehicle, asserts all agree, and
/// returns std's outcome.
fn assert_same(options: &Options) -> Outcome {
    assert_same_in(options, |outcome| outcome.clone())
}

/// [`assert_same`], comparing only what `seen` extracts from each outcome
/// (for output that names the child's own pid, say).
fn assert_same_in<T: PartialEq + std::fmt::Debug>(
    options: &Options,
    seen: impl Fn(&Outcome) -> T,
) -> Outcome {
    let expected = run_std(options);
    for (choice, vehicle) in vehicles() {
        let ours = run_ours(options, choice, vehicle);
        assert_eq!(
            seen(&ours),
            seen(&expected),
            "{vehicle:?} differs from std for {options:?}"
        );
    }
    expected
}

fn stdout_of(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Ran { status, stdout } => {
            assert!(status.success(), "child failed: {status:?}");
            String::from_utf8_lossy(stdout).into_owned()
        }
        Outcome::Failed(kind, errno) => panic!("spawn failed: {kind:?} {errno:?}"),
    }
}

/// A directory of its own under the temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "brood-spawn-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn file(&self, name: &str, contents: &[u8], mode: u32) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn environment_inherited_set_removed_and_cleared() {
    let _serial = serial();
    let env = |ops: Vec<EnvOp>| {
        let mut options = Options::new("env", &[]);
        options.env = ops;
        options
    };
    let inherited = assert_same(&env(vec![]));
    assert!(stdout_of(&inherited)
        .lines()
        .any(|l| l.starts_with("PATH=")));

    let set = assert_same(&env(vec![EnvOp::Set("BROOD_SPAWN_TEST", "a b=c".into())]));
    assert!(stdout_of(&set).contains("\nBROOD_SPAWN_TEST=a b=c\n"));

    let removed = assert_same(&env(vec![EnvOp::Remove("PATH")]));
    assert!(!stdout_of(&removed).lines().any(|l| l.starts_with("PATH=")));

    // `env` is then found through the default search path.
    let cleared = assert_same(&env(vec![
        EnvOp::Set("BEFORE", "x".into()),
        EnvOp::Clear,
        EnvOp::Set("ONLY", "1".into()),
        EnvOp::Set("ALSO", "2".into()),
        EnvOp::Remove("ALSO"),
    ]));
    assert_eq!(stdout_of(&cleared), "ONLY=1\n");
}

#[test]
fn working_directory_and_a_missing_one() {
    let _serial = serial();
    let dir = TempDir::new("cwd");
    let mut options = Options::new("/bin/pwd", &["-P"]);
    options.cwd = Some(dir.0.clone());
    let ran = assert_same(&options);
    assert_eq!(
        stdout_of(&ran).trim_end(),
        dir.0.canonicalize().unwrap().to_str().unwrap()
    );

    options.cwd = Some(dir.0.join("missing"));
    let missing = assert_same(&options);
    assert_eq!(
        missing,
        Outcome::Failed(io::ErrorKind::NotFound, Some(libc::ENOENT))
    );
}

#[test]
fn arg0_and_arguments() {
    let _serial = serial();
    // `cat` prints its own argv, then the (empty) file named by the
    // argument with a space.
    let dir = TempDir::new("arg0");
    dir.file("two words", b"", 0o644);
    let mut options = Options::new("cat", &["/proc/self/cmdline", "two words"]);
    options.cwd = Some(dir.0.clone());
    assert_eq!(
        stdout_of(&assert_same(&options)),
        "cat\0/proc/self/cmdline\0two words\0"
    );
    options.arg0 = Some("brood-arg0".into());
    assert_eq!(
        stdout_of(&assert_same(&options)),
        "brood-arg0\0/proc/self/cmdline\0two words\0"
    );
}

/// The `Uid`, `Gid` and `Groups` lines of a child's /proc status.
fn identity(outcome: &Outcome) -> String {
    stdout_of(outcome)
        .lines()
        .filter(|l| l.starts_with("Uid:") || l.starts_with("Gid:") || l.starts_with("Groups:"))
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn uid_and_gid_as_nobody() {
    let _serial = serial();
    assert!(
        ts::is_root(),
        "this test spawns children as nobody and must run as root"
    );
    let nobody = 65534;
    let mut options = Options::new("cat", &["/proc/self/status"]);
    options.uid = Some(nobody);
    options.gid = Some(nobody);
    let ran = assert_same_in(&options, identity);
    assert_eq!(
        identity(&ran),
        "Uid:\t65534\t65534\t65534\t65534\nGid:\t65534\t65534\t65534\t65534\nGroups:"
    );
    options.gid = None;
    let uid_only = assert_same_in(&options, identity);
    assert!(identity(&uid_only).starts_with("Uid:\t65534\t65534\t65534\t65534\nGid:\t0\t"));
}

/// pid and process group of the `cat /proc/self/stat` that produced `outcome`.
fn pid_and_group(outcome: &Outcome) -> (u32, u32) {
    let stat = stdout_of(outcome);
    // The command name is in parentheses and may hold spaces: split after it.
    let (head, tail) = stat.rsplit_once(") ").unwrap();
    let pid = head.split(' ').next().unwrap().parse().unwrap();
    let pgrp = tail.split(' ').nth(2).unwrap().parse().unwrap();
    (pid, pgrp)
}

#[test]
fn process_group_new_and_existing() {
    let _serial = serial();
    let mut options = Options::new("cat", &["/proc/self/stat"]);
    let ours_group = crate::sys::process::getpgid(std::process::id()).unwrap();
    let (_, pgrp) = pid_and_group(&run_std(&options));
    assert_eq!(pgrp, ours_group);

    options.pgroup = Some(0);
    let (pid, pgrp) = pid_and_group(&run_std(&options));
    assert_eq!(pgrp, pid, "std: process_group(0) leads a new group");
    for (choice, vehicle) in vehicles() {
        let (pid, pgrp) = pid_and_group(&run_ours(&options, choice, vehicle));
        assert_eq!(pgrp, pid, "{vehicle:?}: process_group(0) leads a new group");
    }

    // Join a group that a living leader holds.
    let mut leader = Command::new("sleep")
        .arg("30")
        .process_group(0)
        .spawn()
        .unwrap();
    options.pgroup = Some(leader.id() as i32);
    let (_, pgrp) = pid_and_group(&run_std(&options));
    assert_eq!(pgrp, leader.id());
    for (choice, vehicle) in vehicles() {
        let (_, pgrp) = pid_and_group(&run_ours(&options, choice, vehicle));
        assert_eq!(pgrp, leader.id(), "{vehicle:?}");
    }
    leader.kill().unwrap();
    leader.wait().unwrap();

    // A group that does not exist: the same error.
    options.pgroup = Some(leader.id() as i32);
    assert!(matches!(assert_same(&options), Outcome::Failed(..)));
}

/// The signal lines of a child's /proc status.
fn signal_lines(outcome: &Outcome) -> String {
    stdout_of(outcome)
        .lines()
        .filter(|l| {
            l.starts_with("SigBlk:") || l.starts_with("SigIgn:") || l.starts_with("SigCgt:")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn signal_mask_and_dispositions() {
    let _serial = serial();
    let _blocked = ts::block_on_this_thread(&[libc::SIGUSR1, libc::SIGTTIN]).unwrap();
    let _ignored = ts::ignore(libc::SIGUSR2).unwrap();
    let _caught = ts::catch(libc::SIGWINCH).unwrap();
    let options = Options::new("cat", &["/proc/self/status"]);
    let lines = signal_lines(&assert_same_in(&options, signal_lines));
    // std children inherit the mask, keep ignored signals ignored (but
    // SIGPIPE, which the Rust runtime ignores, is reset), and, being a new
    // program, catch nothing.
    let field = |name: &str| {
        let line = lines.lines().find(|l| l.starts_with(name)).unwrap();
        u64::from_str_radix(line.split('\t').nth(1).unwrap(), 16).unwrap()
    };
    let bit = |sig: i32| 1u64 << (sig - 1);
    assert_eq!(field("SigBlk:"), bit(libc::SIGUSR1) | bit(libc::SIGTTIN));
    assert_ne!(field("SigIgn:") & bit(libc::SIGUSR2), 0);
    assert_eq!(field("SigIgn:") & bit(libc::SIGPIPE), 0);
    assert_eq!(field("SigCgt:"), 0);

    // std's fork path (a uid is set) differs from its posix_spawn path in
    // glibc's internal signals; each vehicle follows the path std takes.
    let mut forked = options.clone();
    forked.uid = Some(0);
    if ts::is_root() {
        let forked_lines = signal_lines(&assert_same_in(&forked, signal_lines));
        if cfg!(target_env = "gnu") {
            assert_ne!(forked_lines, lines, "the two std paths should differ");
        }
    }
}

#[test]
fn no_handler_of_ours_runs_in_a_clone3_child() {
    let _serial = serial();
    let (auto, vehicle) = vehicles()[0];
    if vehicle != Vehicle::Clone3 {
        return;
    }
    let _caught = ts::catch(libc::SIGWINCH).unwrap();
    let _caught_too = ts::catch(libc::SIGURG).unwrap();
    let before = ts::handler_runs();

    let (tell_read, tell_write) = crate::sys::fd::cloexec_pipe().unwrap();
    let (wait_read, wait_write) = crate::sys::fd::cloexec_pipe().unwrap();
    // The child is paused before exec while our thread is suspended in
    // clone3; another thread signals it, then lets it go on.
    let signaller = std::thread::spawn(move || {
        let mut pid = [0u8; 4];
        File::from(tell_read).read_exact(&mut pid).unwrap();
        let pid = u32::from_ne_bytes(pid);
        ts::kill(pid, libc::SIGWINCH).unwrap();
        ts::kill(pid, libc::SIGURG).unwrap();
        File::from(wait_write).write_all(b"x").unwrap();
    });
    let mut plan = SpawnPlan::new("true");
    plan.pause = Some((tell_write.as_raw_fd(), wait_read.as_raw_fd()));
    let child = spawn_ours(&plan, auto, vehicle).unwrap();
    signaller.join().unwrap();
    assert!(wait(child.pid).success());
    // The child shared our memory: had our handler run there, the count
    // would show it.
    assert_eq!(ts::handler_runs(), before);
}

#[test]
fn a_child_killed_before_exec_is_a_spawn_error() {
    let _serial = serial();
    for (choice, vehicle) in vehicles() {
        if vehicle == Vehicle::Fork {
            // std reports a forked child that died before exec as spawned.
            continue;
        }
        let (tell_read, tell_write) = crate::sys::fd::cloexec_pipe().unwrap();
        let (wait_read, _wait_write) = crate::sys::fd::cloexec_pipe().unwrap();
        let killer = std::thread::spawn(move || {
            let mut pid = [0u8; 4];
            File::from(tell_read).read_exact(&mut pid).unwrap();
            let pid = u32::from_ne_bytes(pid);
            ts::kill(pid, libc::SIGKILL).unwrap();
            pid
        });
        let mut plan = SpawnPlan::new("true");
        plan.pause = Some((tell_write.as_raw_fd(), wait_read.as_raw_fd()));
        let err = spawn_ours(&plan, choice, vehicle).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Other, "{err}");
        let pid = killer.join().unwrap();
        // Reaped already: no zombie is left.
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
    }
}

/// What descriptor `fd` of process `pid` is, for comparing two children:
/// its target (our own descriptor's target when it is the same open file,
/// a pipe's inode replaced by `pipe`) and its flags.
fn describe_fd(pid: u32, fd: i32) -> Option<(String, String)> {
    let target = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
    let target = target.to_string_lossy().into_owned();
    let ours = std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .map(|t| t.to_string_lossy().into_owned())
        .ok();
    let target = if target.starts_with("pipe:") {
        if Some(&target) == ours.as_ref() {
            "our pipe".to_owned()
        } else {
            "pipe".to_owned()
        }
    } else if Some(&target) == ours.as_ref() {
        format!("ours: {target}")
    } else {
        target
    };
    let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).ok()?;
    let flags = info.lines().find(|l| l.starts_with("flags:"))?.to_owned();
    Some((target, flags))
}

/// Waits until process `pid` runs `program`.
///
/// A `CLONE_VFORK` parent (std's posix_spawn as much as brood's clone3)
/// resumes as soon as the child's exec has replaced its memory, a moment
/// before the kernel closes the close-on-exec descriptors and names the
/// new program; inspecting the child from outside must wait for the name.
fn wait_for_exec(pid: u32, program: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
        if comm.trim_end() == program {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{pid} still runs {comm}"
        );
        std::thread::yield_now();
    }
}

/// The descriptors open in process `pid`, less those that any child of
/// ours inherits because they are open in this process without
/// close-on-exec (the test harness may hand us some).
fn open_fds(pid: u32) -> Vec<i32> {
    let list = |pid: &str| -> Vec<i32> {
        let mut fds: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        fds.sort_unstable();
        fds
    };
    let inherited: Vec<i32> = list("self")
        .into_iter()
        .filter(|&fd| fd > 2 && !crate::sys::spawn::test_support::is_cloexec(fd))
        .collect();
    list(&pid.to_string())
        .into_iter()
        .filter(|fd| !inherited.contains(fd))
        .collect()
}

#[test]
fn stdio_inherit_null_piped_and_fd() {
    let _serial = serial();
    let dir = TempDir::new("stdio");
    let file = File::create(dir.0.join("out")).unwrap();
    #[derive(Clone, Copy, Debug)]
    enum Kind {
        Inherit,
        Null,
        Piped,
        File,
        OurStderr,
    }
    let kinds = [
        Kind::Inherit,
        Kind::Null,
        Kind::Piped,
        Kind::File,
        Kind::OurStderr,
    ];
    for (index, kind) in kinds.iter().enumerate() {
        // Each stream gets a different kind, rotating, so every kind is
        // seen on every stream.
        let pick = |stream: usize| kinds[(index + stream) % kinds.len()];
        let std_stdio = |k: Kind| match k {
            Kind::Inherit => Stdio::inherit(),
            Kind::Null => Stdio::null(),
            Kind::Piped => Stdio::piped(),
            Kind::File => Stdio::from(file.try_clone().unwrap()),
            Kind::OurStderr => Stdio::from(io::stderr()),
        };
        let mut command = Command::new("sleep");
        command
            .arg("30")
            .stdin(std_stdio(pick(0)))
            .stdout(std_stdio(pick(1)))
            .stderr(std_stdio(pick(2)));
        let mut std_child = command.spawn().unwrap();
        wait_for_exec(std_child.id(), "sleep");
        let expected: Vec<_> = (0..3).map(|fd| describe_fd(std_child.id(), fd)).collect();
        std_child.kill().unwrap();
        std_child.wait().unwrap();

        for (choice, vehicle) in vehicles() {
            let stderr_fd = io::stderr();
            let spec = |k: Kind| match k {
                Kind::Inherit => StdioSpec::Inherit,
                Kind::Null => StdioSpec::Null,
                Kind::Piped => StdioSpec::Piped,
                Kind::File => StdioSpec::Fd(file.as_fd()),
                Kind::OurStderr => StdioSpec::Fd(stderr_fd.as_fd()),
            };
            let mut plan = SpawnPlan::new("sleep");
            plan.arg("30")
                .stdin(spec(pick(0)))
                .stdout(spec(pick(1)))
                .stderr(spec(pick(2)));
            let child = spawn_ours(&plan, choice, vehicle).unwrap();
            wait_for_exec(child.pid, "sleep");
            let got: Vec<_> = (0..3).map(|fd| describe_fd(child.pid, fd)).collect();
            assert_eq!(got, expected, "{vehicle:?}, kinds from {kind:?}");
            let piped = [&child.stdin, &child.stdout, &child.stderr];
            for (stream, ours) in piped.iter().enumerate() {
                assert_eq!(
                    ours.is_some(),
                    matches!(pick(stream), Kind::Piped),
                    "our end of stream {stream}"
                );
                if let Some(fd) = ours {
                    assert!(crate::sys::fd::is_cloexec(fd.as_fd()).unwrap());
                }
            }
            ts::kill(child.pid, libc::SIGKILL).unwrap();
            wait(child.pid);
        }
    }
}

#[test]
fn the_process_wide_record_learns_that_clone3_works() {
    let _serial = serial();
    let child = SpawnPlan::new("true").spawn(None).unwrap();
    assert_eq!(child.vehicle, vehicles()[0].1);
    assert!(wait(child.pid).success());
    assert_eq!(
        crate::sys::spawn::SUPPORT.known_unavailable(false),
        vehicles()[0].1 == Vehicle::Fork
    );
}

#[test]
fn pipes_carry_data_both_ways() {
    let _serial = serial();
    for (choice, vehicle) in vehicles() {
        let mut plan = SpawnPlan::new("cat");
        plan.stdin(StdioSpec::Piped).stdout(StdioSpec::Piped);
        let child = spawn_ours(&plan, choice, vehicle).unwrap();
        let mut stdin = File::from(child.stdin.unwrap());
        stdin.write_all(b"through the pipes\n").unwrap();
        drop(stdin);
        assert_eq!(read_all(child.stdout.unwrap()), b"through the pipes\n");
        assert!(wait(child.pid).success());
    }
}

/// Has `cat` (our stdin and stdout pipes to it) echo a line, which proves
/// it runs its main loop: exec and the dynamic loader's own descriptors
/// are done with. Then lists its descriptors and lets it finish.
fn fds_of_running_cat(pid: u32, stdin: OwnedFd, stdout: OwnedFd) -> Vec<i32> {
    let mut stdin = File::from(stdin);
    let mut stdout = File::from(stdout);
    stdin.write_all(b"ready\n").unwrap();
    let mut echoed = [0u8; 6];
    stdout.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"ready\n");
    let fds = open_fds(pid);
    drop(stdin);
    fds
}

#[test]
fn nothing_of_ours_leaks_into_the_child() {
    let _serial = serial();
    // Descriptors of ours, all close-on-exec as std opens them: a file, a
    // directory, a pipe, another child's pidfd, a cgroup directory.
    let _file = File::open("/dev/null").unwrap();
    let _dir = File::open("/").unwrap();
    let _pipe = crate::sys::fd::cloexec_pipe().unwrap();
    let other = SpawnPlan::new("true")
        .spawn_with(None, &Support::new(), Choice::Auto)
        .unwrap();
    let cgroup = TestCgroup::new("leak");
    let cgroup_dir = cgroup.open();

    let mut std_cat = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdin = std_cat.stdin.take().unwrap().into();
    let stdout = std_cat.stdout.take().unwrap().into();
    assert_eq!(
        fds_of_running_cat(std_cat.id(), stdin, stdout),
        [0, 1, 2],
        "std"
    );
    assert!(std_cat.wait().unwrap().success());

    for cgroup in [None, Some(cgroup_dir.as_fd())] {
        for (choice, vehicle) in vehicles() {
            let mut plan = SpawnPlan::new("cat");
            plan.stdin(StdioSpec::Piped)
                .stdout(StdioSpec::Piped)
                .stderr(StdioSpec::Null);
            let child = plan.spawn_with(cgroup, &Support::new(), choice).unwrap();
            assert_eq!(child.vehicle, vehicle);
            let fds = fds_of_running_cat(child.pid, child.stdin.unwrap(), child.stdout.unwrap());
            assert_eq!(fds, [0, 1, 2], "{vehicle:?}, cgroup {}", cgroup.is_some());
            assert!(wait(child.pid).success());
        }
    }
    wait(other.pid);
}

#[test]
fn the_pidfd_is_the_childs_from_birth() {
    let _serial = serial();
    for (choice, vehicle) in vehicles() {
        let plan = Options::new("ls", &["/nonexistent-brood"]).plan();
        let child = spawn_ours(&plan, choice, vehicle).unwrap();
        let pidfd = child.pidfd.expect("a pidfd");
        assert!(crate::sys::fd::is_cloexec(pidfd.as_fd()).unwrap());
        let (status, _) = crate::sys::pidfd::waitid(pidfd.as_fd(), false)
            .unwrap()
            .unwrap();
        assert_eq!(status.code(), Some(2), "{vehicle:?}");
        assert!(!Path::new(&format!("/proc/{}", child.pid)).exists());
    }
}

#[test]
fn exec_errors_match_std() {
    let _serial = serial();
    let dir = TempDir::new("errors");
    let not_executable = dir.file("plain", b"#!/bin/sh\necho no\n", 0o644);
    // No "#!": execve fails with ENOEXEC; glibc's execvp (std's fork path)
    // runs it with /bin/sh, posix_spawnp does not.
    let script = dir.file("script", b"echo shell fallback\n", 0o755);
    let missing_interpreter = dir.file("broken", b"#!/nonexistent/sh\n", 0o755);

    let errno = |o: &Outcome| match o {
        Outcome::Failed(_, errno) => *errno,
        Outcome::Ran { .. } => None,
    };
    let cases: Vec<(Options, Option<i32>)> = vec![
        (
            Options::new("/nonexistent/program", &[]),
            Some(libc::ENOENT),
        ),
        (
            Options::new("brood-no-such-program", &[]),
            Some(libc::ENOENT),
        ),
        (Options::new("", &[]), Some(libc::ENOENT)),
        (Options::new(&not_executable, &[]), Some(libc::EACCES)),
        (Options::new("/tmp", &[]), Some(libc::EACCES)),
        (Options::new(&missing_interpreter, &[]), Some(libc::ENOENT)),
        (Options::new(&script, &[]), Some(libc::ENOEXEC)),
        (
            Options::new(dir.0.join("plain/x"), &[]),
            Some(libc::ENOTDIR),
        ),
    ];
    for (options, expected) in cases {
        let outcome = assert_same(&options);
        assert_eq!(errno(&outcome), expected, "{options:?}");
    }
    // On std's fork path (a uid is set) glibc's execvp runs the file with
    // /bin/sh; brood runs no shell and reports ENOEXEC on both paths. The
    // one deliberate difference from std.
    let mut forked = Options::new(&script, &["ignored"]);
    forked.uid = ts::is_root().then_some(0);
    if forked.uid.is_some() {
        let std_ran = run_std(&forked);
        if cfg!(target_env = "gnu") {
            assert_eq!(stdout_of(&std_ran), "shell fallback\n");
        } else {
            assert_eq!(errno(&std_ran), Some(libc::ENOEXEC));
        }
        for (choice, vehicle) in vehicles() {
            let ours = run_ours(&forked, choice, vehicle);
            assert_eq!(errno(&ours), Some(libc::ENOEXEC), "{vehicle:?}");
        }
    }
}

#[test]
fn path_search_matches_std() {
    let _serial = serial();
    let bin = TempDir::new("path");
    dir_tool(&bin, "brood-tool", "found");
    bin.file("brood-plain", b"#!/bin/sh\necho no\n", 0o644);
    let other = TempDir::new("path-other");
    dir_tool(&other, "brood-plain", "second");
    let path = |dirs: &[&Path]| std::env::join_paths(dirs).unwrap().into_string().unwrap();

    // The child's PATH is searched when the command changes it.
    let child_path = Options::new("brood-tool", &[]).env(EnvOp::Set("PATH", path(&[&bin.0])));
    assert_eq!(stdout_of(&assert_same(&child_path)), "found\n");

    // Not otherwise: ours does not have it.
    let ours = Options::new("brood-tool", &[]);
    assert_eq!(
        assert_same(&ours),
        Outcome::Failed(io::ErrorKind::NotFound, Some(libc::ENOENT))
    );

    // A non-executable match is skipped, and a later one runs...
    let skip = Options::new("brood-plain", &[]).env(EnvOp::Set("PATH", path(&[&bin.0, &other.0])));
    assert_eq!(stdout_of(&assert_same(&skip)), "second\n");
    // ...and if none follows, the search reports EACCES.
    let denied = Options::new("brood-plain", &[]).env(EnvOp::Set(
        "PATH",
        path(&[&bin.0, Path::new("/nonexistent")]),
    ));
    assert_eq!(
        assert_same(&denied),
        Outcome::Failed(io::ErrorKind::PermissionDenied, Some(libc::EACCES))
    );

    // An empty entry is the working directory.
    let mut empty_entry =
        Options::new("brood-tool", &[]).env(EnvOp::Set("PATH", "/nonexistent:".to_owned()));
    empty_entry.cwd = Some(bin.0.clone());
    assert_eq!(stdout_of(&assert_same(&empty_entry)), "found\n");

    // Without PATH, the libc's default path.
    let cleared = Options::new("true", &[]).env(EnvOp::Clear);
    assert!(matches!(assert_same(&cleared), Outcome::Ran { .. }));
    let removed = Options::new("brood-tool", &[]).env(EnvOp::Remove("PATH"));
    assert!(matches!(assert_same(&removed), Outcome::Failed(..)));
}

fn dir_tool(dir: &TempDir, name: &str, says: &str) {
    dir.file(name, format!("#!/bin/sh\necho {says}\n").as_bytes(), 0o755);
}

#[test]
fn nul_bytes_are_invalid_input() {
    let _serial = serial();
    let cases = [
        Options::new("a\0b", &[]),
        Options::new("true", &["a\0b"]),
        Options::new("true", &[]).env(EnvOp::Set("K", "a\0b".into())),
    ];
    for options in cases {
        let outcome = assert_same(&options);
        assert_eq!(outcome, Outcome::Failed(io::ErrorKind::InvalidInput, None));
    }
}

#[test]
fn plans_read_from_std_commands_spawn_the_same() {
    let _serial = serial();
    let dir = TempDir::new("from-std");
    let file = File::create(dir.0.join("out")).unwrap();
    // Two commands between them set every option the reader reads: the
    // environment cleared and set, a directory, a process group, and the
    // three kinds of standard stream.
    let mut env = Command::new("env");
    env.env_clear()
        .env("BROOD_X", "x")
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::from(file.try_clone().unwrap()))
        .stderr(Stdio::inherit());
    let mut pwd = Command::new("pwd");
    pwd.arg("-P")
        .current_dir(&dir.0)
        .process_group(0)
        .stdout(Stdio::from(file.try_clone().unwrap()));
    for command in [&mut env, &mut pwd] {
        let plan = SpawnPlan::from_std(command, None).expect("representable");
        for (choice, vehicle) in vehicles() {
            let child = spawn_ours(&plan, choice, vehicle).unwrap();
            assert!(wait(child.pid).success());
        }
        assert!(command.status().unwrap().success());
    }
    let written = std::fs::read_to_string(dir.0.join("out")).unwrap();
    let canonical = dir.0.canonicalize().unwrap();
    let expected = format!(
        "{}{}",
        "BROOD_X=x\nPATH=/usr/bin:/bin\n".repeat(3),
        format!("{}\n", canonical.display()).repeat(3)
    );
    assert_eq!(written, expected);

    // arg0 is only readable from brood's own record of it.
    let mut command = Command::new("true");
    command.arg0("other");
    assert!(SpawnPlan::from_std(&command, None).is_none());
    assert!(SpawnPlan::from_std(&command, Some(OsStr::new("other"))).is_some());
}

/// The cgroup v2 directory this process runs in, from /proc/self/cgroup
/// and the cgroup2 mount in /proc/self/mountinfo.
fn own_cgroup() -> io::Result<PathBuf> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup")?;
    let relative = cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or_else(|| io::Error::other("no cgroup v2 entry in /proc/self/cgroup"))?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mount = mountinfo
        .lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            (right.split(' ').next()? == "cgroup2").then(|| left.split(' ').nth(4))?
        })
        .ok_or_else(|| io::Error::other("no cgroup2 mount in /proc/self/mountinfo"))?;
    Ok(Path::new(mount).join(relative.trim_start_matches('/')))
}

/// A fresh cgroup under ours, removed on drop (once empty).
pub(super) struct TestCgroup {
    pub(super) path: PathBuf,
    relative: String,
}

impl TestCgroup {
    pub(super) fn new(name: &str) -> TestCgroup {
        let parent = own_cgroup().expect("this test needs a cgroup v2 hierarchy");
        let leaf = format!("brood-spawn-test-{name}-{}", std::process::id());
        let path = parent.join(&leaf);
        std::fs::create_dir(&path)
            .unwrap_or_else(|e| panic!("cannot create {} for this test: {e}", path.display()));
        let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let ours = cgroup.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
        let relative = format!("{}/{leaf}", ours.trim_end_matches('/'));
        TestCgroup { path, relative }
    }

    pub(super) fn open(&self) -> File {
        File::open(&self.path).unwrap()
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.path);
    }
}

#[test]
fn children_start_in_their_cgroup() {
    let _serial = serial();
    let cgroup = TestCgroup::new("place");
    let dir = cgroup.open();
    for (choice, vehicle) in vehicles() {
        let mut plan = SpawnPlan::new("cat");
        plan.arg("/proc/self/cgroup").stdout(StdioSpec::Piped);
        let child = plan
            .spawn_with(Some(dir.as_fd()), &Support::new(), choice)
            .unwrap();
        assert_eq!(child.vehicle, vehicle);
        let seen = String::from_utf8(read_all(child.stdout.unwrap())).unwrap();
        assert!(wait(child.pid).success());
        assert!(
            seen.lines().any(|l| l == format!("0::{}", cgroup.relative)),
            "{vehicle:?}: {seen}"
        );
    }
    // Both children have exited: the cgroup is empty and can go.
    drop(dir);
    std::fs::remove_dir(&cgroup.path).unwrap();
}

#[test]
fn a_bad_cgroup_fails_the_spawn_and_leaves_nothing() {
    let _serial = serial();
    // Not a cgroup directory at all.
    let dir = File::open("/").unwrap();
    for (choice, vehicle) in vehicles() {
        let plan = SpawnPlan::new("true");
        let err = plan
            .spawn_with(Some(dir.as_fd()), &Support::new(), choice)
            .unwrap_err();
        // clone3 refuses a descriptor that is not a cgroup2 directory;
        // the fork vehicle cannot open its cgroup.procs.
        let expected = match vehicle {
            Vehicle::Clone3 => libc::EBADF,
            Vehicle::Fork => libc::ENOENT,
        };
        assert_eq!(err.raw_os_error(), Some(expected), "{vehicle:?}: {err}");
    }
}

/// Runs `f` on a thread of its own whose clone3 calls fail with `errno`.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn with_clone3_denied<R: Send + 'static>(errno: i32, f: impl FnOnce() -> R + Send + 'static) -> R {
    std::thread::spawn(move || {
        let deny = brood_testkit::seccomp::Deny {
            nr: libc::SYS_clone3,
            arg0: None,
            errno,
        };
        brood_testkit::seccomp::install_on_this_thread(&[deny])
            .expect("install the seccomp filter");
        f()
    })
    .join()
    .unwrap()
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[test]
fn denied_clone3_falls_back_to_fork_into_the_cgroup_and_is_remembered() {
    let _serial = serial();
    for errno in [libc::ENOSYS, libc::EPERM] {
        let cgroup = TestCgroup::new(&format!("denied-{errno}"));
        let relative = cgroup.relative.clone();
        let dir = cgroup.open();
        with_clone3_denied(errno, move || {
            let support = Support::new();
            for attempt in 0..2 {
                let mut plan = SpawnPlan::new("cat");
                plan.arg("/proc/self/cgroup").stdout(StdioSpec::Piped);
                let child = plan
                    .spawn_with(Some(dir.as_fd()), &support, Choice::Auto)
                    .unwrap();
                assert_eq!(child.vehicle, Vehicle::Fork, "errno {errno}");
                let seen = String::from_utf8(read_all(child.stdout.unwrap())).unwrap();
                assert!(wait(child.pid).success());
                assert!(
                    seen.lines().any(|l| l == format!("0::{relative}")),
                    "{seen}"
                );
                // Learnt on the first attempt: the second does not try.
                assert_eq!(support.clone3_attempts(), 1, "attempt {attempt}");
                assert!(support.known_unavailable(false));
            }
        });
    }
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[test]
fn a_transient_clone3_error_is_returned_and_not_remembered() {
    let _serial = serial();
    with_clone3_denied(libc::EAGAIN, || {
        let support = Support::new();
        for attempt in 1..=2 {
            let err = SpawnPlan::new("true")
                .spawn_with(None, &support, Choice::Auto)
                .unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EAGAIN));
            assert_eq!(support.clone3_attempts(), attempt);
            assert!(!support.known_unavailable(false));
        }
    });
}
