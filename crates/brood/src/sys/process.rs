//! Processes: reaping (`wait4`), looking without reaping (the `waitid`
//! peeks), signalling (`kill`, `killpg`), process groups (and their members,
//! from `/proc` on Linux), the subreaper flag, and `pre_exec`.
//!
//! Owns: the count of wait-family calls ([`wait_calls`]). Calls: `errno`.

use super::errno::{cvt, cvt_retry};
use std::io;
use std::mem::MaybeUninit;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU64, Ordering};

/// How many wait-family system calls (`wait4`, `waitid`) brood has made.
static WAIT_CALLS: AtomicU64 = AtomicU64::new(0);

/// How many wait-family system calls brood has made in this process, for
/// the tests of the O(1)-per-exit claim.
#[cfg(feature = "test-hooks")]
pub(crate) fn wait_calls() -> u64 {
    WAIT_CALLS.load(Ordering::Relaxed)
}

/// Counts one wait-family call; every wrapper that waits calls this.
pub(super) fn count_wait_call() {
    WAIT_CALLS.fetch_add(1, Ordering::Relaxed);
}

/// The raw resource usage the kernel reports with an exit status.
pub(crate) type RawRusage = libc::rusage;

/// What one unit of `ru_maxrss` is, in bytes: macOS reports bytes.
#[cfg(any(target_os = "macos", target_os = "ios"))]
pub(crate) const MAX_RSS_UNIT: u64 = 1;
/// What one unit of `ru_maxrss` is, in bytes: Linux and the BSDs report KiB.
#[cfg(not(any(target_os = "macos", target_os = "ios")))]
pub(crate) const MAX_RSS_UNIT: u64 = 1024;

/// An all-zero `rusage`, for waits that report none.
pub(super) fn zeroed_rusage() -> RawRusage {
    // SAFETY: `rusage` is a plain C struct of integers and timevals, for which
    // all-zero bytes are a valid value.
    unsafe { MaybeUninit::<RawRusage>::zeroed().assume_init() }
}

/// `wait4(2)`: collects the exit of `pid` and its resource usage.
///
/// With `nohang`, returns `Ok(None)` while the child still runs. Stop and
/// continue notifications are never requested, so a returned status is always
/// an exit.
pub(crate) fn wait4(pid: u32, nohang: bool) -> io::Result<Option<(ExitStatus, RawRusage)>> {
    let mut status = 0;
    let mut usage = zeroed_rusage();
    let flags = if nohang { libc::WNOHANG } else { 0 };
    count_wait_call();
    let ret = cvt_retry(|| {
        // SAFETY: `status` and `usage` are valid, writable and live for the call.
        unsafe { libc::wait4(pid as libc::pid_t, &mut status, flags, &mut usage) }
    })?;
    if ret == 0 {
        Ok(None)
    } else {
        Ok(Some((ExitStatus::from_raw(status), usage)))
    }
}

/// `waitid(P_ALL, WEXITED | WNOHANG | WNOWAIT)`: the pid of some child that has
/// exited and not been reaped yet, without reaping it.
///
/// This is how the SIGCHLD dispatcher learns *which* child exited in O(1)
/// instead of asking every pid it knows about.
pub(crate) fn peek_exited_child() -> io::Result<Option<u32>> {
    let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
    count_wait_call();
    let ret = cvt_retry(|| {
        // SAFETY: `info` points to writable memory of the right size; WNOWAIT
        // leaves the child waitable, so no status is consumed.
        unsafe {
            libc::waitid(
                libc::P_ALL,
                0,
                info.as_mut_ptr(),
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        }
    });
    match ret {
        Ok(_) => {
            // SAFETY: zero-initialised above and possibly filled in by the
            // kernel; either way every bit pattern is a valid siginfo_t.
            let info = unsafe { info.assume_init() };
            let pid = siginfo_pid(&info);
            Ok(if pid > 0 { Some(pid as u32) } else { None })
        }
        Err(e) if e.raw_os_error() == Some(libc::ECHILD) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `waitid(P_PID, pid, WEXITED | WNOHANG | WNOWAIT)`: whether child `pid`
/// has exited, and how, without reaping it. `Ok(None)` while it runs;
/// `ECHILD` if it is not (or no longer) our child to wait for.
///
/// This is how brood learns of an exit it must leave for the child's owner
/// to collect: the zombie stays, so the owner's own `waitpid` still works.
pub(crate) fn peek_exit(pid: u32) -> io::Result<Option<ExitStatus>> {
    let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
    count_wait_call();
    cvt_retry(|| {
        // SAFETY: `info` points to writable memory of the right size; WNOWAIT
        // leaves the child waitable, so no status is consumed.
        unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                info.as_mut_ptr(),
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        }
    })?;
    // SAFETY: zero-initialised above and possibly filled in by the kernel;
    // either way every bit pattern is a valid siginfo_t.
    let info = unsafe { info.assume_init() };
    Ok((siginfo_pid(&info) > 0).then(|| exit_status_from_siginfo(&info)))
}

/// Builds the `ExitStatus` a `wait4` would have reported from a `waitid`
/// result (`si_code`, `si_status`).
pub(super) fn exit_status_from_siginfo(info: &libc::siginfo_t) -> ExitStatus {
    // SAFETY: as in `siginfo_pid`, the `_sigchld` member is the one filled in.
    let status = unsafe { info.si_status() };
    let raw = match info.si_code {
        libc::CLD_EXITED => (status & 0xff) << 8,
        libc::CLD_DUMPED => (status & 0x7f) | 0x80,
        _ => status & 0x7f,
    };
    ExitStatus::from_raw(raw)
}

/// The `si_pid` field of a `siginfo_t` delivered for SIGCHLD or by `waitid`.
pub(super) fn siginfo_pid(info: &libc::siginfo_t) -> libc::pid_t {
    // SAFETY: for SIGCHLD and waitid results the kernel fills the `_sigchld`
    // member of the union, which is where `si_pid()` reads.
    unsafe { info.si_pid() }
}

/// `kill(2)`.
pub(crate) fn kill(pid: u32, signal: i32) -> io::Result<()> {
    // SAFETY: kill has no memory-safety preconditions.
    cvt(unsafe { libc::kill(pid as libc::pid_t, signal) }).map(drop)
}

/// `killpg(2)`: signals every member of process group `pgid`.
pub(crate) fn killpg(pgid: u32, signal: i32) -> io::Result<()> {
    // SAFETY: killpg has no memory-safety preconditions.
    cvt(unsafe { libc::killpg(pgid as libc::pid_t, signal) }).map(drop)
}

/// `getpgid(2)`.
pub(crate) fn getpgid(pid: u32) -> io::Result<u32> {
    // SAFETY: getpgid has no memory-safety preconditions.
    cvt(unsafe { libc::getpgid(pid as libc::pid_t) }).map(|p| p as u32)
}

/// The live members of process group `pgid`: zombies (exited, not yet
/// reaped) are not members. There is no system call for it: on Linux it
/// is read from `/proc`, on macOS from `proc_listpgrppids` and
/// `proc_pidinfo`, on FreeBSD from the `kern.proc.pgrp` sysctl; elsewhere
/// it fails with `Unsupported`. A process that exits during the listing may
/// or may not be listed, and one forked during it may be missed.
pub(crate) fn group_members(pgid: u32) -> io::Result<Vec<u32>> {
    let mut members = Vec::new();
    for_each_live_member(pgid, |pid| {
        members.push(pid);
        true
    })?;
    Ok(members)
}

/// Whether process group `pgid` has a live member (zombies do not count),
/// as [`group_members`] would list one; stops at the first it finds.
pub(crate) fn group_has_live_members(pgid: u32) -> io::Result<bool> {
    if matches!(killpg(pgid, 0), Err(e) if e.raw_os_error() == Some(libc::ESRCH)) {
        // No process at all has that group id, zombie or not: exact, and
        // one system call instead of a listing.
        return Ok(false);
    }
    let mut any = false;
    for_each_live_member(pgid, |_| {
        any = true;
        false
    })?;
    Ok(any)
}

/// Calls `found` with each live member of group `pgid` until it returns
/// `false`; see [`group_members`].
///
/// Linux: each process's state and group, fields 3 and 5 of
/// `/proc/<pid>/stat`.
#[cfg(target_os = "linux")]
fn for_each_live_member(pgid: u32, mut found: impl FnMut(u32) -> bool) -> io::Result<()> {
    use std::io::Read;
    let mut stat = Vec::with_capacity(512);
    for entry in std::fs::read_dir("/proc")? {
        let name = entry?.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        stat.clear();
        // Gone since the listing: not a member.
        let Ok(mut file) = std::fs::File::open(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if file.read_to_end(&mut stat).is_err() {
            continue;
        }
        // The command name (field 2) is in parentheses and may contain
        // anything, so the fields are counted from the last `)`.
        let Some(close) = stat.iter().rposition(|&b| b == b')') else {
            continue;
        };
        let rest = String::from_utf8_lossy(&stat[close + 1..]);
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let group = fields.nth(1).and_then(|g| g.parse::<u32>().ok());
        if group == Some(pgid) && !matches!(state, Some("Z" | "X")) && !found(pid) {
            break;
        }
    }
    Ok(())
}

/// macOS: the group's pids from `proc_listpgrppids`, each checked with
/// `proc_pidinfo(PROC_PIDTBSDINFO)`, which fails for a zombie or a process
/// gone since the listing.
#[cfg(target_os = "macos")]
fn for_each_live_member(pgid: u32, mut found: impl FnMut(u32) -> bool) -> io::Result<()> {
    use std::mem::size_of;
    let mut pids: Vec<libc::pid_t> = vec![0; 64];
    let listed = loop {
        let capacity = (pids.len() * size_of::<libc::pid_t>()) as libc::c_int;
        // SAFETY: the buffer is writable for `capacity` bytes; the call
        // writes at most that many and returns how many it wrote.
        let bytes = unsafe {
            libc::proc_listpgrppids(pgid as libc::pid_t, pids.as_mut_ptr().cast(), capacity)
        };
        if bytes < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = bytes as usize / size_of::<libc::pid_t>();
        if n < pids.len() {
            break n;
        }
        // Possibly cut short: ask again with room to spare.
        pids.resize(pids.len() * 2, 0);
    };
    for &pid in &pids[..listed] {
        if pid <= 0 {
            continue;
        }
        // SAFETY: all-zero bytes are a valid `proc_bsdinfo` (integers and
        // byte arrays).
        let mut info: libc::proc_bsdinfo = unsafe { MaybeUninit::zeroed().assume_init() };
        let size = std::mem::size_of::<libc::proc_bsdinfo>() as libc::c_int;
        // SAFETY: `info` is writable for `size` bytes.
        let got = unsafe {
            libc::proc_pidinfo(
                pid,
                libc::PROC_PIDTBSDINFO,
                0,
                (&mut info as *mut libc::proc_bsdinfo).cast(),
                size,
            )
        };
        let live = got == size && info.pbi_status != libc::SZOMB && info.pbi_pgid == pgid;
        if live && !found(pid as u32) {
            break;
        }
    }
    Ok(())
}

/// FreeBSD: the `kern.proc.pgrp.<pgid>` sysctl, whose entries say each
/// process's state (`SZOMB` for a zombie).
#[cfg(target_os = "freebsd")]
fn for_each_live_member(pgid: u32, mut found: impl FnMut(u32) -> bool) -> io::Result<()> {
    use std::mem::size_of;
    let mib = [
        libc::CTL_KERN,
        libc::KERN_PROC,
        libc::KERN_PROC_PGRP,
        pgid as libc::c_int,
    ];
    let mut procs: Vec<libc::kinfo_proc> = Vec::new();
    loop {
        let mut size: libc::size_t = 0;
        // SAFETY: a null buffer asks for the size only, written to `size`.
        cvt(unsafe {
            libc::sysctl(
                mib.as_ptr(),
                mib.len() as libc::c_uint,
                std::ptr::null_mut(),
                &mut size,
                std::ptr::null(),
                0,
            )
        })?;
        // Room for a few processes forked since.
        procs.reserve(size / size_of::<libc::kinfo_proc>() + 8);
        let mut size = procs.capacity() * size_of::<libc::kinfo_proc>();
        // SAFETY: the buffer is writable for `size` bytes; the kernel writes
        // whole entries, at most that many bytes, and says how many.
        let ret = unsafe {
            libc::sysctl(
                mib.as_ptr(),
                mib.len() as libc::c_uint,
                procs.as_mut_ptr().cast(),
                &mut size,
                std::ptr::null(),
                0,
            )
        };
        if ret == 0 {
            // SAFETY: the kernel wrote `size` bytes of whole entries.
            unsafe { procs.set_len(size / size_of::<libc::kinfo_proc>()) };
            break;
        }
        let e = io::Error::last_os_error();
        // The group grew since the size was asked for: ask again.
        if e.raw_os_error() != Some(libc::ENOMEM) {
            return Err(e);
        }
    }
    for proc in &procs {
        if proc.ki_stat != libc::SZOMB && !found(proc.ki_pid as u32) {
            break;
        }
    }
    Ok(())
}

/// Stand-in where no listing of a process group is known to brood.
#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "freebsd")))]
fn for_each_live_member(pgid: u32, found: impl FnMut(u32) -> bool) -> io::Result<()> {
    let _ = (pgid, found);
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "brood: listing a process group's members is supported on Linux, macOS and FreeBSD only",
    ))
}

/// `prctl(PR_SET_CHILD_SUBREAPER, 1)`.
#[cfg(target_os = "linux")]
pub(crate) fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    cvt(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) }).map(drop)
}

/// Stand-in for `prctl(PR_SET_CHILD_SUBREAPER)`, which only Linux has.
#[cfg(not(target_os = "linux"))]
pub(crate) fn set_child_subreaper() -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "brood: become_subreaper needs PR_SET_CHILD_SUBREAPER, which only Linux has",
    ))
}

/// Registers `f` to run in the child between fork and exec.
///
/// # Safety
///
/// The caller upholds `CommandExt::pre_exec`'s contract: `f` only does what is
/// safe in a forked child of a multi-threaded process.
pub(crate) unsafe fn pre_exec<F>(cmd: &mut std::process::Command, f: F)
where
    F: FnMut() -> io::Result<()> + Send + Sync + 'static,
{
    use std::os::unix::process::CommandExt;
    // SAFETY: forwarded from the caller.
    unsafe {
        cmd.pre_exec(f);
    }
}
