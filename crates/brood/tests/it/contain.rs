//! Containment (issue 12): every stop brood makes reaches a contained
//! child's whole tree, escapees included; placement is atomic; nothing is
//! left behind; bad input fails cleanly.
//!
//! The cgroup tests need a writable cgroup v2 hierarchy. Each works in a
//! private parent, `brood-it-<pid>-<n>-<label>` under this process's
//! cgroup, killed and removed when the test ends. Where no writable
//! hierarchy exists they print `BROOD-CGROUP-SKIP: <reason>` to stderr and
//! pass; with `BROOD_REQUIRE_CGROUP=1` (CI sets it) they fail instead.
//!
//! Grandchildren are watched through pidfds opened while they run, so a
//! recycled pid (this machine's `pid_max` is small) never passes for a
//! survivor, and "gone" means exited: a zombie that init has not reaped yet
//! counts as gone. Tests that count a process group's members run in a
//! worker process that is a subreaper, since the sandbox's init reaps
//! orphans late.
#![cfg(target_os = "linux")]

use brood::{Child, ChildStdout, Command, Containment, WaitDelayExceeded};
use std::collections::HashMap;
use std::future::Future;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

/// The bound on every wait in these tests; generous for a loaded machine.
const PATIENCE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// Helpers: skipping, private cgroup parents, watched processes, workers.

/// Skips a cgroup test with a printed reason, or fails it under
/// `BROOD_REQUIRE_CGROUP=1`.
fn skip<T>(reason: &str) -> Option<T> {
    let line = format!("BROOD-CGROUP-SKIP: {reason}\n");
    if std::env::var_os("BROOD_REQUIRE_CGROUP").is_some_and(|v| v != "0") {
        panic!("{line}(BROOD_REQUIRE_CGROUP is set, so this is a failure)");
    }
    // Straight to stderr: the harness captures `eprintln!`, a script must see it.
    let _ = io::stderr().write_all(line.as_bytes());
    None
}

/// The directory of the cgroup this process runs in, from
/// /proc/self/cgroup and the cgroup2 mount in /proc/self/mountinfo.
fn own_cgroup_dir() -> Result<PathBuf, String> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
    let relative = cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or("no cgroup v2 line in /proc/self/cgroup")?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    let mount = mountinfo
        .lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            (right.split(' ').next()? == "cgroup2").then(|| left.split(' ').nth(4))?
        })
        .ok_or("no cgroup2 mount in /proc/self/mountinfo")?;
    Ok(Path::new(mount).join(relative.trim_start_matches('/')))
}

/// A private parent cgroup for one test: everything in it is killed and
/// removed on drop.
struct TestParent {
    path: PathBuf,
}

impl TestParent {
    fn new(label: &str) -> Option<TestParent> {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let own = match own_cgroup_dir() {
            Ok(dir) => dir,
            Err(e) => return skip(&format!("no cgroup2 hierarchy: {e}")),
        };
        sweep_dead_test_parents(&own);
        let me = std::process::id();
        let path = own.join(format!(
            "{TEST_PREFIX}{me}-{}-{}-{label}",
            start_time(me).unwrap(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        if let Err(e) = std::fs::create_dir(&path) {
            return skip(&format!("cannot create {}: {e}", path.display()));
        }
        Some(TestParent { path })
    }

    /// The sorted names of the directories in the parent.
    fn listing(&self) -> Vec<String> {
        listing(&self.path)
    }

    /// The per-child cgroups brood made here.
    fn brood_cgroups(&self) -> Vec<String> {
        self.listing()
            .into_iter()
            .filter(|n| n.starts_with("brood-"))
            .collect()
    }

    /// Waits (bounded) until brood's per-child cgroups here are gone.
    async fn wait_cgroups_removed(&self) {
        let removed = eventually(PATIENCE, || self.brood_cgroups().is_empty()).await;
        assert!(removed, "cgroups left: {:?}", self.brood_cgroups());
    }
}

impl Drop for TestParent {
    fn drop(&mut self) {
        // cgroup.kill reaches the whole subtree, escapees included.
        let _ = std::fs::write(self.path.join("cgroup.kill"), "1");
        let drained = eventually_blocking(PATIENCE, || !populated(&self.path));
        let removed = remove_tree(&self.path);
        if !drained || removed.is_err() {
            let _ = writeln!(
                io::stderr(),
                "cleanup of {} failed: drained {drained}, removed {removed:?}",
                self.path.display()
            );
        }
    }
}

const TEST_PREFIX: &str = "brood-it-";

/// The start time of process `pid` (field 22 of /proc/<pid>/stat), or
/// `None` if there is no such process.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// Removes the (emptied) test parents of test processes that are gone, for
/// example killed by a runner's timeout before their cleanup ran.
fn sweep_dead_test_parents(own: &Path) {
    for name in listing(own) {
        let Some(rest) = name.strip_prefix(TEST_PREFIX) else {
            continue;
        };
        let mut fields = rest.split('-').map(str::parse::<u64>);
        let (Some(Ok(pid)), Some(Ok(start))) = (fields.next(), fields.next()) else {
            continue;
        };
        if start_time(pid as u32) != Some(start) {
            let path = own.join(&name);
            let _ = std::fs::write(path.join("cgroup.kill"), "1");
            if eventually_blocking(PATIENCE, || !populated(&path)) {
                let _ = remove_tree(&path);
            }
        }
    }
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn populated(cgroup: &Path) -> bool {
    std::fs::read_to_string(cgroup.join("cgroup.events"))
        .map(|e| e.lines().any(|l| l == "populated 1"))
        .unwrap_or(false)
}

fn remove_tree(dir: &Path) -> io::Result<()> {
    for name in listing(dir) {
        remove_tree(&dir.join(name))?;
    }
    std::fs::remove_dir(dir)
}

/// Polls `cond` until it holds or `limit` passes. Only for conditions with
/// no event to wait on (a directory listing).
async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !cond() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

fn eventually_blocking(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !cond() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// Runs `fut`, failing the test if it takes longer than `limit`.
async fn bounded<F: Future>(limit: Duration, fut: F) -> F::Output {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| panic!("exceeded the test's bound of {limit:?}"))
}

/// A process of the tree under test, held by a pidfd opened while it ran.
struct Watched {
    pid: u32,
    pidfd: OwnedFd,
}

impl Watched {
    fn open(pid: u32) -> Watched {
        // SAFETY: pidfd_open takes two integers and returns a descriptor.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        assert!(fd >= 0, "pidfd_open({pid}): {}", io::Error::last_os_error());
        // SAFETY: a fresh descriptor nothing else owns.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        Watched { pid, pidfd }
    }

    /// Whether it has exited (a pidfd polls readable from the exit on,
    /// zombie or reaped), waiting up to `limit`.
    fn gone_within(&self, limit: Duration) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // SAFETY: one valid pollfd for the duration of the call.
            let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis() as i32) };
            if n > 0 {
                return true;
            }
            if n == 0 || left.is_zero() {
                return false;
            }
        }
    }

    fn gone(&self) -> bool {
        self.gone_within(Duration::ZERO)
    }

    /// Field `n` (1-based, as in proc(5)) of /proc/<pid>/stat.
    fn stat_field(&self, n: usize) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap();
        let rest = &stat[stat.rfind(')').unwrap() + 1..];
        rest.split_whitespace().nth(n - 3).unwrap().parse().unwrap()
    }
}

/// Asserts that every process in `tree` has exited within `limit`.
fn assert_all_gone(tree: &HashMap<String, Watched>, limit: Duration) {
    let deadline = Instant::now() + limit;
    let survivors: Vec<_> = tree
        .iter()
        .filter(|(_, w)| !w.gone_within(deadline.saturating_duration_since(Instant::now())))
        .map(|(role, w)| format!("{role} ({})", w.pid))
        .collect();
    assert!(survivors.is_empty(), "survivors: {survivors:?}");
}

/// Reads `n` lines `role pid` from a child's stdout and watches each pid.
async fn read_tree(stdout: &mut ChildStdout, n: usize) -> HashMap<String, Watched> {
    let mut lines = BufReader::new(stdout).lines();
    let mut tree = HashMap::new();
    while tree.len() < n {
        let line = bounded(PATIENCE, lines.next_line())
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("stdout closed after {} lines", tree.len()));
        let (role, pid) = line.split_once(' ').unwrap();
        tree.insert(role.to_string(), Watched::open(pid.parse().unwrap()));
    }
    tree
}

/// Reads `n` lines `role pid` from a file the tree writes (for stops that
/// consume the `Child`), waiting until they are there.
async fn read_tree_file(path: &Path, n: usize) -> HashMap<String, Watched> {
    let complete = eventually(PATIENCE, || {
        std::fs::read_to_string(path).is_ok_and(|t| t.lines().count() >= n)
    })
    .await;
    let text = std::fs::read_to_string(path).unwrap_or_default();
    assert!(complete, "the tree wrote only {text:?}");
    text.lines()
        .map(|line| {
            let (role, pid) = line.split_once(' ').unwrap();
            (role.to_string(), Watched::open(pid.parse().unwrap()))
        })
        .collect()
}

/// A scratch directory for pid files and scripts, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Scratch {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "brood-contain-{}-{}-{label}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Scratch(path)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A job whose tree escapes its process group twice: a grandchild that
/// called `setsid`, and a double-forked daemon (its parent exits at once, so
/// init adopts it). Each prints `role pid`; the leader prints last.
const ESCAPEES: &str = r#"
    setsid sh -c 'echo setsid $$; exec sleep 1000' &
    sh -c 'sh -c "echo daemon \$\$; exec sleep 1000" &'
    # the daemon's parent was waited for above; wait for its line too
    sleep 0.1
    echo leader $$
    exec sleep 1000
"#;

/// ESCAPEES plus a grandchild that ignores SIGTERM (ignored signals stay
/// ignored across exec), so only the final SIGKILL stops it.
const ESCAPEES_AND_STUBBORN: &str = r#"
    setsid sh -c 'echo setsid $$; exec sleep 1000' &
    sh -c 'sh -c "echo daemon \$\$; exec sleep 1000" &'
    sh -c 'trap "" TERM; echo stubborn $$; exec sleep 1000' &
    sleep 0.1
    echo leader $$
    exec sleep 1000
"#;

/// ESCAPEES, writing its lines to the file `$1` instead (for stops that
/// consume the `Child`); the leader writes last, once the others have.
const ESCAPEES_TO_FILE: &str = r#"
    PIDS="$1"
    setsid sh -c 'echo setsid $$ >>"$0"; exec sleep 1000' "$PIDS" &
    sh -c 'sh -c "echo daemon \$\$ >>\"\$0\"; exec sleep 1000" "$0" &' "$PIDS"
    while [ "$(wc -l <"$PIDS")" -lt 2 ]; do sleep 0.01; done
    echo leader $$ >>"$PIDS"
    exec sleep 1000
"#;

/// ESCAPEES_AND_STUBBORN, writing its lines to the file `$1`.
const ESCAPEES_AND_STUBBORN_TO_FILE: &str = r#"
    PIDS="$1"
    setsid sh -c 'echo setsid $$ >>"$0"; exec sleep 1000' "$PIDS" &
    sh -c 'sh -c "echo daemon \$\$ >>\"\$0\"; exec sleep 1000" "$0" &' "$PIDS"
    sh -c 'trap "" TERM; echo stubborn $$ >>"$0"; exec sleep 1000' "$PIDS" &
    while [ "$(wc -l <"$PIDS")" -lt 3 ]; do sleep 0.01; done
    echo leader $$ >>"$PIDS"
    exec sleep 1000
"#;

/// A contained command running `script` with `sh -c`, its stdout piped.
fn job(parent: &TestParent, script: &str) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(script)
        .stdout(std::process::Stdio::piped())
        .contain(Containment::Cgroup)
        .cgroup_parent(&parent.path);
    command
}

/// How long a worker process may take.
const WORKER_LIMIT: Duration = Duration::from_secs(120);

/// Runs this test binary again with only `name`, as a worker process with
/// `env` added; asserts it passed and ran its body to the end. Its output
/// goes to files, so that grandchildren which inherit it (and may outlive
/// a failing worker) cannot hold the run open.
fn run_worker(name: &str, env: &[(&str, &str)]) {
    let scratch = Scratch::new("worker");
    let (out_path, err_path) = (scratch.file("stdout"), scratch.file("stderr"));
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            &format!("contain::{name}"),
            "--nocapture",
            "--test-threads=1",
        ])
        .env("BROOD_CONTAIN_WORKER", name)
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut worker = command.spawn().unwrap();
    let pid = worker.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(worker.wait()));
    let status = rx.recv_timeout(WORKER_LIMIT).ok().map(Result::unwrap);
    if status.is_none() {
        // SAFETY: kill(2); the worker is our unreaped child (the waiting
        // thread has not returned), so its pid is not recycled.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(
        status.is_some_and(|s| s.success()) && stdout.contains(&format!("WORKER-DONE {name}")),
        "worker {name}: {status:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    );
    // A worker's skip is the parent's skip.
    if let Some(line) = stderr.lines().find(|l| l.starts_with("BROOD-CGROUP-SKIP:")) {
        let _ = writeln!(io::stderr(), "{line}");
    }
}

fn is_worker(name: &str) -> bool {
    std::env::var("BROOD_CONTAIN_WORKER").as_deref() == Ok(name)
}

fn worker_done(name: &str) {
    println!("WORKER-DONE {name}");
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The cgroup a running process is in, from /proc/<pid>/cgroup.
fn cgroup_of(pid: u32) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap()
        .to_string()
}

/// Pids of this process's children, any state.
fn child_pids() -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                let rest = &stat[stat.rfind(')').unwrap() + 1..];
                rest.split_whitespace().nth(1) == Some(&me.to_string())
            })
        })
        .collect()
}

/// This process's open descriptors, with what they point to.
fn open_fds() -> Vec<(i32, PathBuf)> {
    let mut fds: Vec<_> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let fd = e.file_name().to_str()?.parse().ok()?;
            Some((fd, std::fs::read_link(e.path()).ok()?))
        })
        .collect();
    fds.sort();
    fds
}

/// The leader's own pid, as the tree printed it.
fn leader(tree: &HashMap<String, Watched>) -> u32 {
    tree["leader"].pid
}

// ---------------------------------------------------------------------------
// The API: what a child got, its members, its tree's end and figures.

#[tokio::test]
async fn containment_is_what_the_child_got() {
    let plain = Command::new("true").spawn().unwrap();
    assert_eq!(plain.containment(), None);
    let mut group = Command::new("sleep")
        .arg("1000")
        .contain(Containment::Group)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    assert_eq!(group.containment(), Some(Containment::Group));
    let pid = group.id().unwrap();
    assert_eq!(
        Watched::open(pid).stat_field(5),
        u64::from(pid),
        "its own group"
    );
    assert_eq!(group.members().unwrap(), vec![pid]);
    assert_eq!(group.tree_usage(), None);
    group.kill().await.unwrap();
    drop(plain);

    let Some(parent) = TestParent::new("kinds") else {
        return;
    };
    for asked in [Containment::Cgroup, Containment::Auto] {
        let mut child = Command::new("sleep")
            .arg("1000")
            .contain(asked)
            .cgroup_parent(&parent.path)
            .spawn()
            .unwrap();
        assert_eq!(child.containment(), Some(Containment::Cgroup), "{asked:?}");
        assert_eq!(child.members().unwrap(), vec![child.id().unwrap()]);
        assert!(child.tree_usage().is_some());
        assert_eq!(child.handle().containment(), Some(Containment::Cgroup));
        child.terminate(Duration::from_secs(5)).await.unwrap();
    }
    parent.wait_cgroups_removed().await;
}

#[tokio::test]
async fn members_include_escapees_and_wait_tree_waits_for_them() {
    let Some(parent) = TestParent::new("members") else {
        return;
    };
    let mut child = job(&parent, ESCAPEES).spawn().unwrap();
    let tree = read_tree(child.stdout.as_mut().unwrap(), 3).await;
    let mut members = child.members().unwrap();
    members.sort();
    let mut expected: Vec<u32> = tree.values().map(|w| w.pid).collect();
    expected.sort();
    assert_eq!(members, expected);
    // They did escape: a session of their own, and another parent.
    let setsid = &tree["setsid"];
    assert_eq!(setsid.stat_field(6), u64::from(setsid.pid), "session id");
    assert_ne!(
        tree["daemon"].stat_field(4),
        u64::from(leader(&tree)),
        "parent"
    );
    assert_ne!(
        tree["daemon"].stat_field(5),
        u64::from(leader(&tree)),
        "group"
    );

    // The leader exits: wait_tree still waits for the escapees.
    child.signal(brood::Signal::KILL).unwrap();
    let status = child.wait().await.unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    let status = {
        let wait = child.wait_tree();
        tokio::pin!(wait);
        assert!(
            tokio::time::timeout(Duration::from_millis(300), &mut wait)
                .await
                .is_err(),
            "wait_tree resolved while escapees ran"
        );
        let mut members = child_members_now(&parent);
        members.sort();
        let mut escapees = vec![tree["setsid"].pid, tree["daemon"].pid];
        escapees.sort();
        assert_eq!(members, escapees);
        // Kill them behind brood's back: wait_tree notices the tree's end.
        for role in ["setsid", "daemon"] {
            kill_watched(&tree[role]);
        }
        bounded(PATIENCE, wait).await.unwrap()
    };
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert_all_gone(&tree, Duration::ZERO);
    assert_eq!(child.members().unwrap(), Vec::<u32>::new());
    parent.wait_cgroups_removed().await;
}

/// The members of the one brood cgroup in `parent`, read from the file
/// system (not through brood).
fn child_members_now(parent: &TestParent) -> Vec<u32> {
    let cgroups = parent.brood_cgroups();
    assert_eq!(cgroups.len(), 1, "{cgroups:?}");
    std::fs::read_to_string(parent.path.join(&cgroups[0]).join("cgroup.procs"))
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

#[tokio::test]
async fn tree_usage_counts_cpu_burnt_after_the_leader_exited_and_is_kept() {
    let Some(parent) = TestParent::new("usage") else {
        return;
    };
    // The grandchild holds the stdout pipe and burns CPU after the leader
    // exited, then reports its own CPU time (`times`: user and system of
    // the shell and its children).
    let mut child = job(
        &parent,
        r#"(i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; times) &
           exit 0"#,
    )
    .spawn()
    .unwrap();
    let handle = child.handle();
    let status = child.wait().await.unwrap();
    assert!(status.success());
    let live = child.tree_usage().expect("contained in a cgroup");
    let mut stdout = child.stdout.take().unwrap();
    let status = bounded(PATIENCE, child.wait_tree()).await.unwrap();
    assert!(status.success());

    let mut report = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut report)
        .await
        .unwrap();
    let seconds = |field: &str| -> Duration {
        let (m, s) = field.trim_end_matches('s').split_once('m').unwrap();
        Duration::from_secs(m.parse::<u64>().unwrap() * 60)
            + Duration::from_secs_f64(s.parse().unwrap())
    };
    let first = report.lines().next().unwrap();
    let mut fields = first.split_whitespace();
    let reported = seconds(fields.next().unwrap()) + seconds(fields.next().unwrap());
    assert!(reported >= Duration::from_millis(50), "{report}");

    parent.wait_cgroups_removed().await;
    let kept = child
        .tree_usage()
        .expect("kept after the cgroup was removed");
    assert!(
        kept.user_time() + kept.system_time() >= reported,
        "the tree's {kept:?} < the grandchild's own {reported:?}"
    );
    assert!(kept.user_time() >= live.user_time());
    assert_eq!(
        kept.peak_memory(),
        None,
        "no memory controller below our cgroup"
    );
    // The same figures again, and through the handle.
    assert_eq!(child.tree_usage(), Some(kept));
    assert_eq!(handle.tree_usage(), Some(kept));
}

#[tokio::test]
async fn wait_tree_is_cancel_safe_and_works_through_handles_after_the_drop() {
    let Some(parent) = TestParent::new("handle") else {
        return;
    };
    let mut child = job(&parent, "sleep 1000 & echo sleeper $!; exit 0")
        .spawn()
        .unwrap();
    let tree = read_tree(child.stdout.as_mut().unwrap(), 1).await;
    let handle = child.handle();
    for _ in 0..3 {
        // Dropped before the end: nothing is lost.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), child.wait_tree())
                .await
                .is_err()
        );
    }
    drop(child);
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let handle = handle.clone();
            tokio::spawn(async move { handle.wait_tree().await })
        })
        .collect();
    assert_eq!(handle.members().unwrap(), vec![tree["sleeper"].pid]);
    kill_watched(&tree["sleeper"]);
    for waiter in waiters {
        let status = bounded(PATIENCE, waiter).await.unwrap().unwrap();
        assert!(status.success());
    }
    assert_eq!(handle.members().unwrap(), Vec::<u32>::new());
    parent.wait_cgroups_removed().await;
}

/// SIGKILL through the pidfd: never a recycled pid.
fn kill_watched(process: &Watched) {
    // SAFETY: pidfd_send_signal with a null info, on a pidfd we hold.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            process.pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    assert_eq!(ret, 0, "{}", io::Error::last_os_error());
}

// ---------------------------------------------------------------------------
// 1. Every stop brood makes reaches every member.

#[tokio::test]
async fn kill_on_drop_without_grace_kills_the_whole_tree_at_once() {
    let Some(parent) = TestParent::new("drop-kill") else {
        return;
    };
    let mut child = job(&parent, ESCAPEES_AND_STUBBORN)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let tree = read_tree(child.stdout.as_mut().unwrap(), 4).await;
    let dropped = Instant::now();
    drop(child);
    assert_all_gone(&tree, PATIENCE);
    // cgroup.kill at once: nobody waited out a grace period.
    assert!(
        dropped.elapsed() < Duration::from_secs(5),
        "{:?}",
        dropped.elapsed()
    );
    parent.wait_cgroups_removed().await;
}

#[tokio::test]
async fn kill_on_drop_with_grace_terms_every_member_then_kills_the_rest() {
    let Some(parent) = TestParent::new("drop-grace") else {
        return;
    };
    let grace = Duration::from_secs(5);
    let mut child = job(&parent, ESCAPEES_AND_STUBBORN)
        .kill_on_drop(true)
        .grace(grace)
        .spawn()
        .unwrap();
    let mut tree = read_tree(child.stdout.as_mut().unwrap(), 4).await;
    let stubborn = tree.remove("stubborn").unwrap();
    let dropped = Instant::now();
    drop(child);
    // SIGTERM reaches the leader and both escapees well before the grace ends.
    assert_all_gone(&tree, grace / 2);
    assert!(dropped.elapsed() < grace);
    assert!(
        !stubborn.gone(),
        "the stubborn member was killed before the grace ended"
    );
    // The final cgroup.kill comes from the background thread after the grace.
    assert!(stubborn.gone_within(grace + PATIENCE));
    assert!(dropped.elapsed() >= grace, "{:?}", dropped.elapsed());
    parent.wait_cgroups_removed().await;
}

#[tokio::test]
async fn kill_on_drop_stops_a_tree_that_outlived_its_leader() {
    let Some(parent) = TestParent::new("drop-after") else {
        return;
    };
    let mut child = job(&parent, ESCAPEES).kill_on_drop(true).spawn().unwrap();
    let mut tree = read_tree(child.stdout.as_mut().unwrap(), 3).await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    tree.remove("leader");
    assert!(tree.values().all(|w| !w.gone()));
    drop(child);
    assert_all_gone(&tree, PATIENCE);
    parent.wait_cgroups_removed().await;
}

/// A script file in `scratch`, made executable.
fn script(scratch: &Scratch, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = scratch.file(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test]
async fn terminate_terms_every_member_present_while_frozen() {
    let Some(parent) = TestParent::new("terminate-all") else {
        return;
    };
    // 30 quiet members, both escapees, and a member that forks as fast as
    // it can (bounded). Every one dies of SIGTERM, so the tree is gone long
    // before the grace ends, unless a process forked past the signal (the
    // freeze prevents that) or a member was missed: then only the
    // cgroup.kill at the end of the 30 s grace would stop it.
    let grace = Duration::from_secs(30);
    let mut child = job(
        &parent,
        r#"i=0; while [ $i -lt 30 ]; do sleep 1000 & i=$((i+1)); done
           sh -c 'i=0; while [ $i -lt 2000 ]; do sleep 1000 & i=$((i+1)); done; wait' &
           setsid sh -c 'echo setsid $$; exec sleep 1000' &
           sh -c 'sh -c "echo daemon \$\$; exec sleep 1000" &'
           sleep 0.1
           echo leader $$
           wait"#,
    )
    .spawn()
    .unwrap();
    let tree = read_tree(child.stdout.as_mut().unwrap(), 3).await;
    let started = Instant::now();
    let status = bounded(grace + PATIENCE, child.terminate(grace))
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status}");
    assert!(
        took < grace / 2,
        "terminate took {took:?}: a member missed the SIGTERM"
    );
    // Resolved only once the whole tree was gone.
    assert_all_gone(&tree, Duration::ZERO);
    assert_eq!(child.members().unwrap(), Vec::<u32>::new());
    parent.wait_cgroups_removed().await;
}

#[tokio::test]
async fn terminate_kills_after_the_grace_even_members_forked_during_it() {
    let Some(parent) = TestParent::new("terminate-grace") else {
        return;
    };
    let scratch = Scratch::new("terminate-grace");
    // On SIGTERM this member forks a new one that ignores SIGTERM, and
    // carries on.
    let forker = script(
        &scratch,
        "forker",
        r#"exec 2>/dev/null # the shell's notes on its killed sleeps
           trap 'sh -c "trap \"\" TERM; echo late \$\$; exec sleep 1000" &' TERM
           echo forker $$
           while :; do sleep 0.05; done"#,
    );
    let grace = Duration::from_secs(1);
    let mut child = job(
        &parent,
        &format!(
            "'{}' & sh -c 'trap \"\" TERM; echo stubborn $$; exec sleep 1000' & sleep 0.1; echo leader $$; wait",
            forker.display()
        ),
    )
    .spawn()
    .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut tree = read_tree(&mut stdout, 3).await;
    let started = Instant::now();
    let status = bounded(PATIENCE, child.terminate(grace)).await.unwrap();
    assert!(started.elapsed() >= grace, "{:?}", started.elapsed());
    // The leader's own shell died of SIGTERM at once.
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status}");
    assert_all_gone(&tree, Duration::ZERO);
    // A member was forked during the grace (it said so), inside the cgroup,
    // and terminate returned only once the cgroup was empty: it is gone too.
    let mut rest = String::new();
    bounded(
        PATIENCE,
        tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut rest),
    )
    .await
    .unwrap();
    assert!(rest.lines().any(|l| l.starts_with("late ")), "{rest:?}");
    assert_eq!(child.members().unwrap(), Vec::<u32>::new());
    tree.clear();
    parent.wait_cgroups_removed().await;
}

#[tokio::test]
async fn a_timeout_stops_every_member() {
    let Some(parent) = TestParent::new("timeout") else {
        return;
    };
    let scratch = Scratch::new("timeout");
    let pids = scratch.file("pids");
    for (round, grace) in [None, Some(Duration::from_millis(300))]
        .into_iter()
        .enumerate()
    {
        let pids = pids.with_extension(round.to_string());
        let mut command = job(&parent, ESCAPEES_AND_STUBBORN_TO_FILE);
        command.arg("sh").arg(&pids).timeout(Duration::from_secs(2));
        if let Some(grace) = grace {
            command.grace(grace);
        }
        let status = command.status();
        let tree = read_tree_file(&pids, 4).await;
        let err = bounded(PATIENCE, status).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        // The stop waited for the cgroup to empty.
        assert_all_gone(&tree, Duration::ZERO);
        parent.wait_cgroups_removed().await;
    }
}

#[tokio::test]
async fn max_output_stops_every_member() {
    let Some(parent) = TestParent::new("max-output") else {
        return;
    };
    let scratch = Scratch::new("max-output");
    let pids = scratch.file("pids");
    // An escapee floods the pipe once the tree is complete.
    let script = r#"
        PIDS="$1"
        setsid sh -c 'echo setsid $$ >>"$0"; while [ "$(wc -l <"$0")" -lt 3 ]; do sleep 0.01; done; exec yes' "$PIDS" &
        sh -c 'sh -c "echo daemon \$\$ >>\"\$0\"; exec sleep 1000" "$0" &' "$PIDS"
        echo leader $$ >>"$PIDS"
        exec sleep 1000
    "#;
    let mut command = job(&parent, script);
    command.arg("sh").arg(&pids).max_output(1 << 16);
    let output = command.output();
    let tree = read_tree_file(&pids, 3).await;
    let err = bounded(PATIENCE, output).await.unwrap_err();
    let over = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<brood::OutputLimitExceeded>())
        .unwrap_or_else(|| panic!("{err}"));
    assert_eq!(over.stdout().len(), 1 << 16);
    assert_all_gone(&tree, Duration::ZERO);
    parent.wait_cgroups_removed().await;
}

#[tokio::test]
async fn the_wait_delay_expiry_stops_the_rest_of_the_tree() {
    let Some(parent) = TestParent::new("wait-delay") else {
        return;
    };
    let scratch = Scratch::new("wait-delay");
    let pids = scratch.file("pids");
    // The leader prints and exits; an escapee keeps stdout open.
    let script =
        "echo hello; setsid sh -c 'echo setsid $$ >\"$0\"; exec sleep 1000' \"$1\" & exit 3";
    let delay = Duration::from_millis(300);
    let mut command = job(&parent, script);
    command.arg("sh").arg(&pids).wait_delay(delay);
    let started = Instant::now();
    let output = command.output();
    let tree = read_tree_file(&pids, 1).await;
    let err = bounded(PATIENCE, output).await.unwrap_err();
    assert!(started.elapsed() >= delay);
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    let late = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<WaitDelayExceeded>())
        .unwrap_or_else(|| panic!("{err}"));
    assert_eq!(late.output().status.code(), Some(3));
    assert_eq!(late.output().stdout, b"hello\n");
    assert_eq!(late.wait_delay(), delay);
    assert_all_gone(&tree, PATIENCE);
    parent.wait_cgroups_removed().await;
}

#[tokio::test]
async fn wait_delay_without_containment_closes_the_pipes_and_without_it_nothing_changes() {
    let scratch = Scratch::new("wait-delay-plain");
    let pids = scratch.file("pids");
    // Not contained: the grandchild is not stopped, but the pipes are
    // closed and the call returns.
    let script = "echo hello; sh -c 'echo grandchild $$ >\"$0\"; exec sleep 1000' \"$1\" & exit 0";
    let output = Command::new("sh")
        .args(["-c", script, "sh"])
        .arg(&pids)
        .wait_delay(Duration::from_millis(200))
        .output();
    let tree = read_tree_file(&pids, 1).await;
    let err = bounded(PATIENCE, output).await.unwrap_err();
    let late = err
        .into_inner()
        .unwrap()
        .downcast::<WaitDelayExceeded>()
        .unwrap();
    let output = late.into_output();
    assert!(output.status.success());
    assert_eq!(output.stdout, b"hello\n");
    let grandchild = &tree["grandchild"];
    assert!(
        !grandchild.gone(),
        "an uncontained grandchild is not brood's to stop"
    );
    kill_watched(grandchild);
    assert!(grandchild.gone_within(PATIENCE));

    // Without a wait delay: wait for EOF, however late it comes.
    let output = Command::new("sh")
        .args(["-c", "echo hello; (sleep 0.3; echo late) & exit 0"])
        .output();
    let output = bounded(PATIENCE, output).await.unwrap();
    assert_eq!(output.stdout, b"hello\nlate\n");
}

// ---------------------------------------------------------------------------
// 2. Escapees are stopped too: a setsid grandchild and a double-forked
// daemon, for a timeout and for kill_on_drop.

#[tokio::test]
async fn escapees_are_stopped_on_timeout() {
    let Some(parent) = TestParent::new("escape-timeout") else {
        return;
    };
    let scratch = Scratch::new("escape-timeout");
    let pids = scratch.file("pids");
    let mut command = job(&parent, ESCAPEES_TO_FILE);
    command.arg("sh").arg(&pids).timeout(Duration::from_secs(1));
    let status = command.status();
    let tree = read_tree_file(&pids, 3).await;
    let lead = leader(&tree);
    assert_eq!(tree["setsid"].stat_field(6), u64::from(tree["setsid"].pid));
    assert_ne!(tree["daemon"].stat_field(5), u64::from(lead));
    assert_ne!(tree["daemon"].stat_field(4), u64::from(lead));
    let err = bounded(PATIENCE, status).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert_all_gone(&tree, Duration::ZERO);
    parent.wait_cgroups_removed().await;
}

#[tokio::test]
async fn escapees_are_stopped_on_kill_on_drop() {
    let Some(parent) = TestParent::new("escape-drop") else {
        return;
    };
    for grace in [None, Some(Duration::from_millis(200))] {
        let mut command = job(&parent, ESCAPEES);
        command.kill_on_drop(true);
        if let Some(grace) = grace {
            command.grace(grace);
        }
        let mut child = command.spawn().unwrap();
        let tree = read_tree(child.stdout.as_mut().unwrap(), 3).await;
        assert_eq!(tree["setsid"].stat_field(6), u64::from(tree["setsid"].pid));
        assert_ne!(tree["daemon"].stat_field(5), u64::from(leader(&tree)));
        drop(child);
        assert_all_gone(&tree, PATIENCE);
        parent.wait_cgroups_removed().await;
    }
}

// ---------------------------------------------------------------------------
// 4. Placement is atomic.

/// Reads the whole of a child's stdout.
async fn read_all(child: &mut Child) -> String {
    let mut text = String::new();
    let mut stdout = child.stdout.take().unwrap();
    bounded(
        PATIENCE,
        tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut text),
    )
    .await
    .unwrap();
    text
}

/// Spawns `cat /proc/self/cgroup` built by `build`, and returns the cgroup
/// the program started in.
async fn placed(parent: &TestParent, build: impl FnOnce(&mut Command)) -> String {
    let mut command = Command::new("cat");
    command.arg("/proc/self/cgroup");
    build(&mut command);
    command
        .stdout(std::process::Stdio::piped())
        .contain(Containment::Cgroup)
        .cgroup_parent(&parent.path);
    let mut child = command.spawn().unwrap();
    let seen = read_all(&mut child).await;
    assert!(child.wait_tree().await.unwrap().success());
    parent.wait_cgroups_removed().await;
    seen.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap()
        .to_string()
}

/// Asserts that `cgroup` (as /proc/<pid>/cgroup names it) is a per-child
/// cgroup brood made directly under `parent`.
fn assert_in_a_child_cgroup_of(parent: &TestParent, cgroup: &str) {
    let ours = cgroup_of(std::process::id());
    let parent_name = parent.path.file_name().unwrap().to_str().unwrap();
    let expected_prefix = format!("{}/{parent_name}/brood-", ours.trim_end_matches('/'));
    assert!(
        cgroup.starts_with(&expected_prefix) && !cgroup[expected_prefix.len()..].contains('/'),
        "{cgroup} is not a child cgroup of {}",
        parent.path.display()
    );
}

#[tokio::test]
async fn a_child_starts_in_its_cgroup_however_it_is_spawned() {
    let Some(parent) = TestParent::new("placed") else {
        return;
    };
    // Read back by brood's own spawn (clone3 with CLONE_INTO_CGROUP).
    let started_in = placed(&parent, |_| {}).await;
    assert_in_a_child_cgroup_of(&parent, &started_in);
    assert!(!brood::test_hooks::clone3_unavailable_for_cgroups());
    // Reachable as a std builder: std's spawn with brood's placement hook.
    let started_in = placed(&parent, |c| {
        c.as_std_mut().env("FROM_STD", "1");
    })
    .await;
    assert_in_a_child_cgroup_of(&parent, &started_in);
    // Built as a std command and converted.
    let mut std_command = std::process::Command::new("cat");
    std_command.arg("/proc/self/cgroup");
    let mut child = Command::from(std_command)
        .stdout(std::process::Stdio::piped())
        .contain(Containment::Cgroup)
        .cgroup_parent(&parent.path)
        .spawn()
        .unwrap();
    let seen = read_all(&mut child).await;
    assert!(child.wait_tree().await.unwrap().success());
    assert_in_a_child_cgroup_of(
        &parent,
        seen.lines().find_map(|l| l.strip_prefix("0::")).unwrap(),
    );
    parent.wait_cgroups_removed().await;
}

/// A pipe whose write end a `pre_exec` hook writes its view of
/// /proc/self/cgroup to, with only async-signal-safe calls.
fn cgroup_reporting_hook() -> (
    OwnedFd,
    impl FnMut() -> io::Result<()> + Send + Sync + 'static,
) {
    let mut fds = [0; 2];
    // SAFETY: a writable array of two ints.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: fresh descriptors nothing else owns.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let hook = move || {
        let mut buf = [0u8; 512];
        // SAFETY: open/read/write/close with a static path and a stack
        // buffer: all async-signal-safe, nothing allocates.
        unsafe {
            let fd = libc::open(c"/proc/self/cgroup".as_ptr(), libc::O_RDONLY);
            let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
            libc::write(write.as_raw_fd(), buf.as_ptr().cast(), n.max(0) as usize);
            libc::close(fd);
        }
        Ok(())
    };
    (read, hook)
}

#[tokio::test]
async fn a_pre_exec_hook_runs_inside_the_cgroup() {
    let Some(parent) = TestParent::new("pre-exec") else {
        return;
    };
    let (read, hook) = cgroup_reporting_hook();
    let mut command = Command::new("true");
    // SAFETY: the hook only makes async-signal-safe calls.
    unsafe { command.pre_exec(hook) };
    let mut child = command
        .contain(Containment::Cgroup)
        .cgroup_parent(&parent.path)
        .spawn()
        .unwrap();
    assert!(child.wait_tree().await.unwrap().success());
    drop(command); // closes the hook's copy of the write end
    let mut seen = String::new();
    io::Read::read_to_string(&mut std::fs::File::from(read), &mut seen).unwrap();
    let in_hook = seen.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
    assert_in_a_child_cgroup_of(&parent, in_hook);
    parent.wait_cgroups_removed().await;
}

/// Installs a seccomp filter on the calling thread (and the processes it
/// spawns) that fails `clone3` with `errno`. Only this thread: glibc makes
/// threads and `posix_spawn` children with clone3 and falls back to `clone`
/// only for `ENOSYS`; its `fork` uses `clone`, which stays allowed.
fn deny_clone3_on_this_thread(errno: i32) {
    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: u32 = 0xc000_003e;
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: u32 = 0xc000_00b7;
    const LD: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let op = |code: u16, k: u32, jt: u8, jf: u8| libc::sock_filter { code, jt, jf, k };
    let fail = libc::SECCOMP_RET_ERRNO | (errno as u32 & libc::SECCOMP_RET_DATA);
    let filter = [
        // Another ABI: allow.
        op(LD, 4, 0, 0),
        op(JEQ, AUDIT_ARCH, 0, 3),
        // clone3: fail; anything else: allow.
        op(LD, 0, 0, 0),
        op(JEQ, libc::SYS_clone3 as u32, 0, 1),
        op(RET, fail, 0, 0),
        op(RET, libc::SECCOMP_RET_ALLOW, 0, 0),
    ];
    let program = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: integer arguments, and a filter program that outlives the
    // call (the kernel copies it).
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        let ret = libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &program as *const libc::sock_fprog,
        );
        assert_eq!(ret, 0, "seccomp: {}", io::Error::last_os_error());
    }
}

fn clone3_denied_worker(errno: i32) {
    current_thread().block_on(async {
        let Some(parent) = TestParent::new("denied") else {
            return;
        };
        // Before the filter: brood's background thread runs, and clone3
        // works.
        let started_in = placed(&parent, |_| {}).await;
        assert_in_a_child_cgroup_of(&parent, &started_in);
        assert!(!brood::test_hooks::clone3_unavailable_for_cgroups());
        // This thread runs the runtime and makes every spawn.
        deny_clone3_on_this_thread(errno);
        // Twice: the first spawn learns that clone3 is denied, the second
        // goes straight to the fork fallback.
        for _ in 0..2 {
            let started_in = placed(&parent, |_| {}).await;
            assert_in_a_child_cgroup_of(&parent, &started_in);
            assert!(brood::test_hooks::clone3_unavailable_for_cgroups());
        }
        // The fallback's trees are stopped like any other.
        let mut child = job(&parent, ESCAPEES).kill_on_drop(true).spawn().unwrap();
        let tree = read_tree(child.stdout.as_mut().unwrap(), 3).await;
        drop(child);
        assert_all_gone(&tree, PATIENCE);
        parent.wait_cgroups_removed().await;
    });
}

#[test]
fn clone3_denied_with_enosys_falls_back_to_an_atomic_fork() {
    const NAME: &str = "clone3_denied_with_enosys_falls_back_to_an_atomic_fork";
    if is_worker(NAME) {
        clone3_denied_worker(libc::ENOSYS);
        return worker_done(NAME);
    }
    run_worker(NAME, &[]);
}

#[test]
fn clone3_denied_with_eperm_falls_back_to_an_atomic_fork() {
    const NAME: &str = "clone3_denied_with_eperm_falls_back_to_an_atomic_fork";
    if is_worker(NAME) {
        clone3_denied_worker(libc::EPERM);
        return worker_done(NAME);
    }
    run_worker(NAME, &[]);
}

// ---------------------------------------------------------------------------
// 5. Nothing is left behind.

#[tokio::test]
async fn the_cgroup_is_removed_once_the_tree_is_empty_also_after_the_drop() {
    let Some(parent) = TestParent::new("removal") else {
        return;
    };
    // Dropped (no kill_on_drop) while an escapee runs on.
    let mut child = job(&parent, "setsid sleep 1000 & echo escapee $!; exit 0")
        .spawn()
        .unwrap();
    let tree = read_tree(child.stdout.as_mut().unwrap(), 1).await;
    assert!(child.wait().await.unwrap().success());
    drop(child);
    assert_eq!(parent.brood_cgroups().len(), 1, "the tree still runs");
    kill_watched(&tree["escapee"]);
    parent.wait_cgroups_removed().await;

    // Kept, never asked: removed all the same once its tree is empty.
    let mut child = job(&parent, "exit 0").spawn().unwrap();
    parent.wait_cgroups_removed().await;
    assert!(child.wait().await.unwrap().success());
}

#[tokio::test]
async fn two_hundred_contained_children_leave_the_parent_as_it_was() {
    let Some(parent) = TestParent::new("two-hundred") else {
        return;
    };
    std::fs::create_dir(parent.path.join("unrelated")).unwrap();
    let before = parent.listing();
    for batch in 0..10 {
        let mut children: Vec<_> = (0..20)
            .map(|_| {
                Command::new("true")
                    .contain(Containment::Cgroup)
                    .cgroup_parent(&parent.path)
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in &mut children {
            let status = bounded(PATIENCE, child.wait_tree()).await.unwrap();
            assert!(status.success(), "batch {batch}: {status}");
        }
    }
    parent.wait_cgroups_removed().await;
    assert_eq!(parent.listing(), before);
}

#[test]
fn stale_cgroups_of_a_crashed_process_are_removed_at_first_use() {
    const NAME: &str = "stale_cgroups_of_a_crashed_process_are_removed_at_first_use";
    const CRASH: &str = "BROOD_CONTAIN_CRASH_IN";
    if is_worker(NAME) {
        // The process that crashes: it starts a contained job, reports it,
        // and is killed.
        let parent = std::env::var(CRASH).unwrap();
        let child = Command::new("sleep")
            .arg("1000")
            .contain(Containment::Cgroup)
            .cgroup_parent(&parent)
            .spawn()
            .unwrap();
        println!("job {}", child.id().unwrap());
        worker_done(NAME);
        std::thread::sleep(Duration::from_secs(1000));
        return;
    }
    let Some(parent) = TestParent::new("stale") else {
        return;
    };
    let mut crashing = std::process::Command::new(std::env::current_exe().unwrap());
    crashing
        .args([
            "--exact",
            &format!("contain::{NAME}"),
            "--nocapture",
            "--test-threads=1",
        ])
        .env("BROOD_CONTAIN_WORKER", NAME)
        .env(CRASH, &parent.path)
        .stdout(std::process::Stdio::piped());
    let mut crashing = crashing.spawn().unwrap();
    let mut lines = io::BufRead::lines(io::BufReader::new(crashing.stdout.take().unwrap()));
    let job: u32 = loop {
        let line = lines.next().expect("the worker reports its job").unwrap();
        // libtest writes `test <name> ... ` first, on the same line.
        if let Some((_, pid)) = line.split_once("job ") {
            break pid.parse().unwrap();
        }
    };
    let job = Watched::open(job);
    // The crash: brood gets no chance to clean up; then the job ends.
    crashing.kill().unwrap();
    crashing.wait().unwrap();
    let stale = parent.brood_cgroups();
    assert_eq!(stale.len(), 1, "{stale:?}");
    std::fs::write(parent.path.join(&stale[0]).join("cgroup.kill"), "1").unwrap();
    assert!(job.gone_within(PATIENCE));
    assert!(eventually_blocking(PATIENCE, || !populated(
        &parent.path.join(&stale[0])
    )));
    assert_eq!(parent.brood_cgroups(), stale, "nobody removed it yet");

    // First use of the directory by this process: the stale cgroup goes.
    current_thread().block_on(async {
        let mut child = Command::new("true")
            .contain(Containment::Cgroup)
            .cgroup_parent(&parent.path)
            .spawn()
            .unwrap();
        assert!(
            !parent.path.join(&stale[0]).exists(),
            "the stale cgroup is still there"
        );
        assert!(child.wait_tree().await.unwrap().success());
        parent.wait_cgroups_removed().await;
    });
}

// ---------------------------------------------------------------------------
// 6. Bad input gets a clear error, and nothing half-done.

fn bad_parent_worker() {
    let Some(parent) = TestParent::new("bad") else {
        return;
    };
    let runtime = current_thread();
    let _guard = runtime.enter();
    // Warm up: the background thread and other once-per-process state exist
    // before the baseline is taken.
    runtime.block_on(async {
        let mut child = job(&parent, "exit 0").spawn().unwrap();
        child.wait_tree().await.unwrap();
        parent.wait_cgroups_removed().await;
    });
    let threaded = parent.path.join("threaded");
    std::fs::create_dir(&threaded).unwrap();
    std::fs::create_dir(threaded.join("t")).unwrap();
    std::fs::write(threaded.join("t/cgroup.type"), "threaded").unwrap();
    let cases: Vec<(PathBuf, &str, io::ErrorKind)> = vec![
        (
            parent.path.join("missing"),
            "does not exist",
            io::ErrorKind::NotFound,
        ),
        (
            PathBuf::from("/tmp"),
            "is not on a cgroup v2 file system",
            io::ErrorKind::Unsupported,
        ),
        (
            parent.path.join("cgroup.procs"),
            "is not a directory",
            io::ErrorKind::NotADirectory,
        ),
        (
            threaded.join("t"),
            "`threaded` cgroup",
            io::ErrorKind::Unsupported,
        ),
    ];
    let read_only = parent.path.join("read-only");
    std::fs::create_dir(&read_only).unwrap();
    let before_listing = parent.listing();
    // The warm-up child's descriptors (its cgroup's directory and
    // cgroup.events) close when the last reference to it goes, which the
    // background thread may drop a moment after waking the waiter.
    let under_parent = || {
        open_fds()
            .into_iter()
            .filter(|(_, target)| target.starts_with(&parent.path) && *target != parent.path)
            .collect::<Vec<_>>()
    };
    assert!(
        eventually_blocking(PATIENCE, || under_parent().is_empty()),
        "{:?}",
        under_parent()
    );
    let before_fds = open_fds();
    for (path, why, kind) in &cases {
        for _ in 0..3 {
            let err = Command::new("true")
                .contain(Containment::Cgroup)
                .cgroup_parent(path)
                .spawn()
                .unwrap_err();
            let message = err.to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains(why), "{message} does not say {why:?}");
            assert_eq!(err.kind(), *kind, "{message}");
        }
        assert_eq!(child_pids(), Vec::<u32>::new(), "a process was created");
        assert_eq!(open_fds(), before_fds, "descriptors leaked");
        assert_eq!(parent.listing(), before_listing, "a cgroup was left");
    }
    // Not writable, for root too: a read-only bind mount in a mount
    // namespace private to one thread.
    let path = read_only.clone();
    std::thread::spawn(move || {
        // SAFETY: unshare and mount with valid C strings; the namespace
        // (and the mount in it) is this thread's alone and goes with it.
        unsafe {
            assert_eq!(libc::unshare(libc::CLONE_NEWNS), 0);
            let root = c"/";
            assert_eq!(
                libc::mount(
                    std::ptr::null(),
                    root.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null()
                ),
                0
            );
            let dir = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
            assert_eq!(
                libc::mount(
                    dir.as_ptr(),
                    dir.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null()
                ),
                0
            );
            assert_eq!(
                libc::mount(
                    std::ptr::null(),
                    dir.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                    std::ptr::null()
                ),
                0
            );
        }
        let err = Command::new("true")
            .contain(Containment::Cgroup)
            .cgroup_parent(&path)
            .spawn()
            .unwrap_err();
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("read-only"), "{message}");
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        // Auto falls back to a process group.
        let mut child = Command::new("true")
            .contain(Containment::Auto)
            .cgroup_parent(&path)
            .spawn()
            .unwrap();
        assert_eq!(child.containment(), Some(Containment::Group));
        let status = current_thread().block_on(child.wait_tree()).unwrap();
        assert!(status.success());
    })
    .join()
    .unwrap();
    assert_eq!(open_fds(), before_fds, "descriptors leaked");
    // Auto with every bad parent: a group, no cgroup.
    runtime.block_on(async {
        for (path, _, _) in &cases {
            let mut child = Command::new("true")
                .contain(Containment::Auto)
                .cgroup_parent(path)
                .spawn()
                .unwrap();
            assert_eq!(child.containment(), Some(Containment::Group));
            assert!(child.wait_tree().await.unwrap().success());
        }
    });
    assert_eq!(child_pids(), Vec::<u32>::new());
    assert_eq!(parent.listing(), before_listing);
    std::fs::remove_dir(threaded.join("t")).unwrap();
    std::fs::remove_dir(&threaded).unwrap();
    std::fs::remove_dir(&read_only).unwrap();
}

#[test]
fn a_bad_cgroup_parent_fails_the_spawn_naming_the_path_and_leaves_nothing() {
    const NAME: &str = "a_bad_cgroup_parent_fails_the_spawn_naming_the_path_and_leaves_nothing";
    if is_worker(NAME) {
        bad_parent_worker();
        return worker_done(NAME);
    }
    run_worker(NAME, &[]);
}

// ---------------------------------------------------------------------------
// Group: what it reaches, and what it cannot promise.

fn group_worker() {
    // Orphans are re-parented to us and reaped by brood, so a group's
    // member that exited is gone, not a zombie of the sandbox's init.
    brood::become_subreaper().unwrap();
    current_thread().block_on(async {
        // A grandchild in the group outlives the leader: wait_tree waits
        // for it.
        let mut child = Command::new("sh")
            .args(["-c", "sleep 0.3 & echo inside $!; exit 0"])
            .stdout(std::process::Stdio::piped())
            .contain(Containment::Group)
            .spawn()
            .unwrap();
        let tree = read_tree(child.stdout.as_mut().unwrap(), 1).await;
        assert!(child.wait().await.unwrap().success());
        assert!(!tree["inside"].gone(), "the grandchild runs on");
        assert!(bounded(PATIENCE, child.wait_tree())
            .await
            .unwrap()
            .success());
        assert!(tree["inside"].gone());

        // terminate reaches the group, a double-forked daemon included (it
        // keeps the group); a grandchild that called setsid left it.
        let mut child = Command::new("sh")
            .args(["-c", ESCAPEES])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .contain(Containment::Group)
            .spawn()
            .unwrap();
        let tree = read_tree(child.stdout.as_mut().unwrap(), 3).await;
        let mut members = child.members().unwrap();
        members.sort();
        let mut expected = vec![leader(&tree), tree["daemon"].pid];
        expected.sort();
        assert_eq!(members, expected, "the setsid grandchild left the group");
        let status = bounded(PATIENCE, child.terminate(Duration::from_secs(5)))
            .await
            .unwrap();
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        assert!(tree["leader"].gone() && tree["daemon"].gone());
        assert_eq!(child.members().unwrap(), Vec::<u32>::new());
        // What Group cannot promise: the setsid grandchild runs on.
        assert!(!tree["setsid"].gone());
        kill_watched(&tree["setsid"]);
        assert!(tree["setsid"].gone_within(PATIENCE));
    });
}

#[test]
fn a_group_is_waited_for_and_stopped_but_a_setsid_grandchild_leaves_it() {
    const NAME: &str = "a_group_is_waited_for_and_stopped_but_a_setsid_grandchild_leaves_it";
    if is_worker(NAME) {
        group_worker();
        return worker_done(NAME);
    }
    run_worker(NAME, &[]);
}

// ---------------------------------------------------------------------------
// A measurement, not a test: the parent's CPU per contained spawn, beside
// an uncontained one, from a small parent and from one with 1 GiB of
// touched memory. Ignored by default; asserts nothing. Run it with
//
//     cargo test --release -p brood --test contain contained_spawn_cost -- --ignored --nocapture

/// CPU time of `clock` (this thread's, or the whole process's).
fn cpu(clock: libc::clockid_t) -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is writable for the call.
    unsafe { libc::clock_gettime(clock, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Spawn {
    Uncontained,
    Group,
    Cgroup,
    /// No spawn: the life of an empty cgroup as brood lives it (mkdir, open
    /// the directory and cgroup.events, read cgroup.events and cpu.stat,
    /// rmdir), for the kernel's share of a contained spawn.
    CgroupAlone,
}

/// One spawn of /bin/true and its wait: the spawning thread's CPU for the
/// spawn call, and the whole process's CPU (brood's background thread
/// included: it removes the cgroup) from the spawn to the end of the wait.
async fn one_spawn(how: Spawn, parent: &Path) -> (Duration, Duration) {
    if how == Spawn::CgroupAlone {
        let (thread0, process0) = (
            cpu(libc::CLOCK_THREAD_CPUTIME_ID),
            cpu(libc::CLOCK_PROCESS_CPUTIME_ID),
        );
        let dir = parent.join("alone");
        std::fs::create_dir(&dir).unwrap();
        let opened = std::fs::File::open(&dir).unwrap();
        let events = std::fs::read(dir.join("cgroup.events")).unwrap();
        let spawn = cpu(libc::CLOCK_THREAD_CPUTIME_ID) - thread0;
        let stat = std::fs::read(dir.join("cpu.stat")).unwrap();
        std::fs::remove_dir(&dir).unwrap();
        drop(opened);
        assert!(!events.is_empty() && !stat.is_empty());
        return (spawn, cpu(libc::CLOCK_PROCESS_CPUTIME_ID) - process0);
    }
    let mut command = Command::new("/bin/true");
    match how {
        Spawn::Uncontained | Spawn::CgroupAlone => {}
        Spawn::Group => {
            command.contain(Containment::Group);
        }
        Spawn::Cgroup => {
            command.contain(Containment::Cgroup).cgroup_parent(parent);
        }
    }
    let (thread0, process0) = (
        cpu(libc::CLOCK_THREAD_CPUTIME_ID),
        cpu(libc::CLOCK_PROCESS_CPUTIME_ID),
    );
    let mut child = command.spawn().unwrap();
    let spawn = cpu(libc::CLOCK_THREAD_CPUTIME_ID) - thread0;
    if how == Spawn::Cgroup {
        assert_eq!(child.containment(), Some(Containment::Cgroup));
    }
    assert!(child.wait_tree().await.unwrap().success());
    (spawn, cpu(libc::CLOCK_PROCESS_CPUTIME_ID) - process0)
}

async fn measure(label: &str, rounds: usize, parent: &Path) {
    const HOW: [Spawn; 4] = [
        Spawn::Uncontained,
        Spawn::Group,
        Spawn::Cgroup,
        Spawn::CgroupAlone,
    ];
    let mut spawn: Vec<Vec<Duration>> = vec![Vec::new(); HOW.len()];
    let mut total: Vec<Vec<Duration>> = vec![Vec::new(); HOW.len()];
    // The methods take turns, one spawn each and starting with another one
    // each round, so that drift and what the one before leaves behind
    // affect all alike; the first rounds warm caches.
    for round in 0..rounds + 10 {
        for k in 0..HOW.len() {
            let i = (round + k) % HOW.len();
            let (s, t) = one_spawn(HOW[i], parent).await;
            if round >= 10 {
                spawn[i].push(s);
                total[i].push(t);
            }
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    let base_spawn = median(&mut spawn[0].clone());
    let base_total = median(&mut total[0].clone());
    println!("{label} ({rounds} spawns each; median parent CPU; ratio to uncontained):");
    for (i, how) in HOW.iter().enumerate() {
        let s = median(&mut spawn[i]);
        let t = median(&mut total[i]);
        println!(
            "  {:<12} spawn call {:>7.1} us ({:.2}x)   spawn to end of wait, all threads {:>7.1} us ({:.2}x)",
            format!("{how:?}"),
            s.as_secs_f64() * 1e6,
            s.as_secs_f64() / base_spawn.as_secs_f64(),
            t.as_secs_f64() * 1e6,
            t.as_secs_f64() / base_total.as_secs_f64(),
        );
    }
}

#[test]
#[ignore = "a measurement; run it in release mode with --ignored --nocapture"]
fn contained_spawn_cost() {
    let Some(parent) = TestParent::new("cost") else {
        return;
    };
    current_thread().block_on(async {
        measure("small parent", 2000, &parent.path).await;
        let gib = 1 << 30;
        let mut memory = vec![0u8; gib];
        // Touch every page, so that each is mapped (a fork must copy its
        // page-table entry).
        for page in memory.chunks_mut(4096) {
            page[0] = 1;
        }
        measure("parent with 1 GiB touched", 400, &parent.path).await;
        assert_eq!(
            memory
                .iter()
                .step_by(4096)
                .map(|&b| b as usize)
                .sum::<usize>(),
            gib / 4096
        );
    });
}
