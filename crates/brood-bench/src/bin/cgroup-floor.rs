//! The floor of a job runner that gives every job a fresh cgroup.
//!
//! `brood run` by default makes a cgroup per job, spawns the job into it
//! and removes it once the job's tree is empty (issue 14). This program
//! measures what the kernel alone charges for that, with no runtime, no
//! pipes, no event loop and no accounting: `P` threads each run jobs of
//! `/bin/true` one after the other, in one of two ways that differ only in
//! the cgroup:
//!
//! - `plain`: `clone3` (fork-like) + `execve` in the child, `wait4`;
//! - `cgroup`: `mkdirat` a fresh cgroup, open it, the same `clone3` with
//!   `CLONE_INTO_CGROUP`, close it, `wait4`, `rmdir`.
//!
//! `xargs -P P -n 1 /bin/true` and GNU `parallel -j P /bin/true` run
//! beside them. The four take turns in each round; the report is each
//! one's median wall time over the rounds and the ratios. `cgroup ÷ plain`
//! is the least a fresh cgroup per job costs over an uncontained job, for
//! any runner; and `parallel ÷ cgroup` is the most any runner that gives
//! each job a fresh cgroup (brood's default) can gain over GNU parallel
//! on this machine.
//!
//! Usage: `cgroup-floor [JOBS [PARALLEL [ROUNDS]]]` (default 4000 4 5).
//! Needs a cgroup v2 hierarchy it may create cgroups in (root here), and
//! `xargs` and GNU `parallel` on the path; it fails with the reason
//! otherwise (`crates/brood-cli/bench/vs-xargs.sh` installs parallel).

use brood_testkit::cgroup::PrivateParent;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// `struct clone_args` of `clone3(2)`, the fields this program sets.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

extern "C" {
    /// The process's environment, passed on to each job as it is.
    static environ: *const *const libc::c_char;
}

/// What a child needs, built before any fork: the child only execs.
struct Exec {
    path: CString,
    argv: [*const libc::c_char; 2],
}

// SAFETY: the pointers point into `path`, owned by the same value and
// never changed; children read them only between fork and exec.
unsafe impl Sync for Exec {}

impl Exec {
    fn new(path: &str) -> Box<Exec> {
        let mut exec = Box::new(Exec {
            path: CString::new(path).expect("no NUL in the path"),
            argv: [std::ptr::null(); 2],
        });
        exec.argv[0] = exec.path.as_ptr();
        exec
    }

    /// Forks (into `cgroup` if given), execs, and waits for the child.
    fn run(&self, cgroup: Option<&OwnedFd>) -> io::Result<()> {
        let mut args = CloneArgs {
            exit_signal: libc::SIGCHLD as u64,
            ..CloneArgs::default()
        };
        if let Some(dir) = cgroup {
            args.flags |= CLONE_INTO_CGROUP;
            args.cgroup = dir.as_raw_fd() as u64;
        }
        // SAFETY: a fork-like clone3 (no CLONE_VM, no stack): the child runs
        // on a copy of this thread's memory and calls only `execve` and
        // `_exit`, both async-signal-safe.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &mut args as *mut CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        match pid {
            -1 => return Err(io::Error::last_os_error()),
            // SAFETY: in the child: exec, or exit at once.
            0 => unsafe {
                libc::execve(self.path.as_ptr(), self.argv.as_ptr(), environ);
                libc::_exit(127);
            },
            _ => {}
        }
        let mut status = 0;
        // SAFETY: waits for the child forked just above.
        if unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) } == -1 {
            return Err(io::Error::last_os_error());
        }
        if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
            return Err(io::Error::other(format!(
                "the job ended with status {status:#x}"
            )));
        }
        Ok(())
    }
}

/// Where each job of [`run_jobs`] runs.
#[derive(Clone, Copy)]
enum Place<'a> {
    /// In the runner's own cgroup.
    Plain,
    /// In a fresh cgroup under this parent, removed once the job is reaped.
    Fresh(&'a OwnedFd),
    /// In its worker's cgroup under this parent, made once and reused by
    /// the worker's next job once the last one has been reaped.
    Slot(&'a OwnedFd),
}

/// Runs `jobs` jobs on `parallel` threads, each placed as `place` says.
fn run_jobs(exec: &Exec, jobs: usize, parallel: usize, place: Place) -> io::Result<Duration> {
    let next = AtomicUsize::new(0);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..parallel)
            .map(|worker| {
                let next = &next;
                s.spawn(move || -> io::Result<()> {
                    let slot = match place {
                        Place::Slot(parent) => Some(SlotCgroup::new(parent, worker)?),
                        _ => None,
                    };
                    loop {
                        let job = next.fetch_add(1, Ordering::Relaxed);
                        if job >= jobs {
                            return slot.map_or(Ok(()), SlotCgroup::remove);
                        }
                        match (place, &slot) {
                            (Place::Fresh(parent), _) => {
                                let name = CString::new(format!("job-{worker}-{job}"))
                                    .expect("no NUL in the name");
                                job_in_cgroup(exec, parent, &name)?;
                            }
                            (_, Some(slot)) => exec.run(Some(&slot.dir))?,
                            _ => exec.run(None)?,
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().expect("a worker panicked"))
    })?;
    Ok(t0.elapsed())
}

/// A worker's own cgroup, which every one of its jobs runs in.
struct SlotCgroup<'a> {
    parent: &'a OwnedFd,
    name: CString,
    dir: OwnedFd,
}

impl<'a> SlotCgroup<'a> {
    fn new(parent: &'a OwnedFd, worker: usize) -> io::Result<Self> {
        let name = CString::new(format!("slot-{worker}")).expect("no NUL in the name");
        // SAFETY: plain system calls on a descriptor and a NUL-terminated name.
        if unsafe { libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), 0o755) } == -1 {
            return Err(io::Error::last_os_error());
        }
        let fd = unsafe {
            libc::openat(
                parent.as_raw_fd(),
                name.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and is owned here alone.
        let dir = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(SlotCgroup { parent, name, dir })
    }

    fn remove(self) -> io::Result<()> {
        drop(self.dir);
        // SAFETY: as in `new`; every job in it has been reaped.
        if unsafe {
            libc::unlinkat(
                self.parent.as_raw_fd(),
                self.name.as_ptr(),
                libc::AT_REMOVEDIR,
            )
        } == -1
        {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

fn job_in_cgroup(exec: &Exec, parent: &OwnedFd, name: &CString) -> io::Result<()> {
    let parent = parent.as_raw_fd();
    // SAFETY: plain system calls on a descriptor and a NUL-terminated name.
    if unsafe { libc::mkdirat(parent, name.as_ptr(), 0o755) } == -1 {
        return Err(io::Error::last_os_error());
    }
    let fd = unsafe {
        libc::openat(
            parent,
            name.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned here alone.
    let dir = unsafe { OwnedFd::from_raw_fd(fd) };
    let ran = exec.run(Some(&dir));
    drop(dir);
    // The job has been reaped, so its cgroup is empty.
    if unsafe { libc::unlinkat(parent, name.as_ptr(), libc::AT_REMOVEDIR) } == -1 {
        return Err(io::Error::last_os_error());
    }
    ran
}

/// Runs `jobs` inputs through an existing runner (`xargs`, GNU `parallel`)
/// given `args`, the inputs on its standard input, one per line.
fn run_tool(tool: &str, args: &[&str], jobs: usize) -> io::Result<Duration> {
    let input: String = (0..jobs).map(|i| format!("{i}\n")).collect();
    let t0 = Instant::now();
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run {tool}: {e}")))?;
    io::Write::write_all(&mut child.stdin.take().expect("piped"), input.as_bytes())?;
    let status = child.wait()?;
    if !status.success() {
        return Err(io::Error::other(format!("{tool}: {status}")));
    }
    Ok(t0.elapsed())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1).map(|a| {
        a.parse::<usize>()
            .unwrap_or_else(|_| panic!("usage: cgroup-floor [JOBS [PARALLEL [ROUNDS]]], not {a:?}"))
    });
    let jobs = args.next().unwrap_or(4000);
    let parallel = args.next().unwrap_or(4);
    let rounds = args.next().unwrap_or(5);
    let parent = PrivateParent::try_new("cgroup-floor").map_err(io::Error::other)?;
    let parent_fd = OwnedFd::from(std::fs::File::open(&parent.path)?);
    let exec = Exec::new("/bin/true");
    let p = parallel.to_string();
    let mut times: [Vec<Duration>; 5] = Default::default();
    for round in 0..rounds {
        // Each round starts with another one, so that drift weighs on all.
        for turn in 0..times.len() {
            let which = (round + turn) % times.len();
            times[which].push(match which {
                0 => run_tool("xargs", &["-P", &p, "-n", "1", "/bin/true"], jobs)?,
                1 => run_tool("parallel", &["-j", &p, "/bin/true"], jobs)?,
                2 => run_jobs(&exec, jobs, parallel, Place::Plain)?,
                3 => run_jobs(&exec, jobs, parallel, Place::Fresh(&parent_fd))?,
                _ => run_jobs(&exec, jobs, parallel, Place::Slot(&parent_fd))?,
            });
        }
    }
    let [xargs, gnu, plain, cgroup, slot] = times.map(median);
    let secs = |d: Duration| d.as_secs_f64();
    println!(
        "cgroup-floor: {jobs} jobs of /bin/true, {parallel} at a time, median of {rounds} rounds"
    );
    println!("| runner | seconds | µs per job | ÷ xargs -P | GNU parallel ÷ it |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (name, d) in [
        ("xargs -P", xargs),
        ("GNU parallel", gnu),
        ("floor, plain", plain),
        ("floor, cgroup per job", cgroup),
        ("floor, cgroup per slot, reused", slot),
    ] {
        println!(
            "| {name} | {:.3} | {:.0} | {:.3}x | {:.2}x |",
            secs(d),
            secs(d) * 1e6 / jobs as f64,
            secs(d) / secs(xargs),
            secs(gnu) / secs(d)
        );
    }
    println!("cgroup / plain = {:.3}x", secs(cgroup) / secs(plain));
    println!("slot / plain = {:.3}x", secs(slot) / secs(plain));
    Ok(())
}
