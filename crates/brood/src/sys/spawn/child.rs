//! The child's side: what runs between clone (or fork) and exec.
//!
//! This code runs either in a `CLONE_VM | CLONE_VFORK` child, which shares
//! every byte of our memory while the parent thread is suspended, or in a
//! forked copy (the fallback). It is written for the first, stricter case:
//! raw system calls only ([`super::raw`]), no allocation, no locks, no
//! `errno`, no panics (no indexing that could fail, no arithmetic that could
//! overflow), and nothing but reads of the prepared [`ChildImage`] and writes
//! to the slots it was handed.
//!
//! Owns: `ChildContext`, the report codes, the child routine (`run`,
//! `vfork_entry`). Calls: `image`, `raw`.

use super::image::{search, ChildImage};
use super::raw::{self, errno_of};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};

/// What the parent learns from the [`ChildContext::report`] slot.
pub(super) mod report {
    /// The child never got as far as exec (it was killed first).
    pub(crate) const NOT_REACHED: i32 = 0;
    /// The child reached its exec loop; if the parent resumes with this
    /// value, an exec succeeded (a failed one overwrites it with the errno).
    pub(crate) const EXECING: i32 = -1;
}

/// The signal state a `CLONE_VM` child must set up itself.
pub(super) struct VforkSignals {
    /// The parent thread's mask before it blocked every signal for the
    /// clone; the child restores it last, as std children inherit it.
    pub(super) restore_mask: u64,
}

/// The child's instructions, on the parent's stack.
pub(super) struct ChildContext<'a> {
    pub(super) image: &'a ChildImage,
    /// An open `cgroup.procs` to write `0` to first, when the clone could
    /// not place the child itself; `-1` otherwise.
    pub(super) cgroup_procs: RawFd,
    /// `Some` in a `CLONE_VM` child.
    pub(super) vfork: Option<VforkSignals>,
    /// Where the outcome goes: [`report::EXECING`] before the exec loop,
    /// then the errno if every exec failed.
    pub(super) report: &'a AtomicI32,
}

/// `SIG_DFL` and `SIG_IGN` as the kernel sees them.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const SIG_DFL: usize = 0;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const SIG_IGN: usize = 1;

/// glibc's internal signals (`SIGCANCEL`, `SIGSETXID`).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const GLIBC_INTERNAL_SIGNALS: [i32; 2] = [32, 33];

/// Retries `f` while it fails with `EINTR`, then maps failure to its errno.
#[inline(always)]
fn retry(mut f: impl FnMut() -> raw::Ret) -> Result<raw::Ret, i32> {
    loop {
        let ret = f();
        match errno_of(ret) {
            Some(libc::EINTR) => continue,
            Some(e) => return Err(e),
            None => return Ok(ret),
        }
    }
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn set_disposition(sig: i32, handler: usize) -> Result<(), i32> {
    let action = raw::KernelSigaction {
        handler,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    retry(|| raw::rt_sigaction(sig, &action, std::ptr::null_mut())).map(drop)
}

/// The signal dispositions std's children get, on top of what the clone did.
///
/// A `CLONE_VM` child was created with `CLONE_CLEAR_SIGHAND`, so no handler
/// of ours can run in it, and every signal is blocked. Ignored signals stay
/// ignored, as across exec. std then resets `SIGPIPE` (which its runtime
/// ignores) to the default, and glibc's `posix_spawn` leaves its internal
/// signals ignored; the image says whether std would have gone that way.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn set_up_signals(ctx: &ChildContext<'_>) -> Result<(), i32> {
    set_disposition(libc::SIGPIPE, SIG_DFL)?;
    if ctx.image.ignore_internal_signals {
        for sig in GLIBC_INTERNAL_SIGNALS {
            set_disposition(sig, SIG_IGN)?;
        }
    }
    Ok(())
}

/// Off x86-64 and aarch64 only the fork vehicle exists, where std has reset
/// `SIGPIPE` already and the child's handlers are its own copies.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn set_up_signals(_ctx: &ChildContext<'_>) -> Result<(), i32> {
    Ok(())
}

/// Everything before exec, in std's order (stdio, groups, gid, uid, cwd,
/// process group), except that the cgroup comes first: once the child has
/// dropped its privileges it could no longer move itself.
fn prepare(ctx: &ChildContext<'_>) -> Result<(), i32> {
    let image = ctx.image;
    #[cfg(test)]
    if let Some((tell, wait)) = image.pause {
        let pid = (raw::getpid() as i32).to_ne_bytes();
        retry(|| raw::write(tell, &pid))?;
        retry(|| raw::read(wait, &mut [0u8]))?;
    }
    if ctx.cgroup_procs >= 0 {
        // "0" moves the writing process. A short write of one byte cannot
        // happen, so only the error matters.
        retry(|| raw::write(ctx.cgroup_procs, b"0"))?;
    }
    set_up_signals(ctx)?;
    for (target, source) in [0, 1, 2].into_iter().zip(image.stdio) {
        if let Some(source) = source {
            retry(|| raw::dup3(source, target))?;
        }
    }
    if let Some(gid) = image.gid {
        retry(|| raw::setgid(gid))?;
    }
    if let Some(uid) = image.uid {
        // As std: drop supplementary groups when changing user, and carry on
        // without CAP_SETGID (EPERM) rather than fail.
        match retry(raw::clear_groups) {
            Ok(_) | Err(libc::EPERM) => {}
            Err(e) => return Err(e),
        }
        retry(|| raw::setuid(uid))?;
    }
    if let Some(cwd) = &image.cwd {
        retry(|| raw::chdir(cwd.as_ptr()))?;
    }
    if let Some(pgroup) = image.pgroup {
        retry(|| raw::setpgid_self(pgroup))?;
    }
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    if let Some(signals) = &ctx.vfork {
        retry(|| raw::set_signal_mask(&signals.restore_mask, std::ptr::null_mut()))?;
    }
    Ok(())
}

/// Tries each candidate as glibc's `execvp` (or musl's) would; returns the
/// errno to report when none could be executed.
///
/// Unlike glibc's `execvp` (std's fork path), a file that fails with
/// `ENOEXEC` is never handed to `/bin/sh`: brood runs no shell, and std's
/// usual `posix_spawnp` path reports `ENOEXEC` too.
fn exec(ctx: &ChildContext<'_>) -> i32 {
    let image = ctx.image;
    if image.candidates.is_empty() {
        return image.no_candidate_errno;
    }
    let argv = image.argv.as_ptr();
    let envp = image.envp.as_ptr();
    let mut saw_eacces = false;
    let mut last = libc::ENOENT;
    for candidate in image.candidates.iter() {
        let errno = errno_of(raw::execve(candidate.as_ptr(), argv, envp)).unwrap_or(libc::EINVAL);
        if image.direct {
            return errno;
        }
        last = errno;
        if errno == libc::EACCES {
            saw_eacces = true;
        } else if !search::CONTINUE_ON.contains(&errno) {
            return errno;
        }
    }
    if saw_eacces {
        libc::EACCES
    } else {
        last
    }
}

/// Runs the child up to exec. Returns only on failure, with the errno.
pub(super) fn run(ctx: &ChildContext<'_>) -> i32 {
    if let Err(errno) = prepare(ctx) {
        return errno;
    }
    ctx.report.store(report::EXECING, Ordering::Relaxed);
    exec(ctx)
}

/// The entry point of a `CLONE_VM` child, on its own stack. Records the
/// errno of a failed spawn where the suspended parent will read it, then
/// exits without running anything of ours (no atexit, no destructors).
pub(super) extern "C" fn vfork_entry(ctx: *const ChildContext<'_>) -> ! {
    // SAFETY: the trampoline passes the context the parent built, which
    // lives on the parent's stack for as long as the parent is suspended,
    // that is, for this child's whole life before exec or exit.
    let ctx = unsafe { &*ctx };
    let errno = run(ctx);
    ctx.report.store(errno, Ordering::Relaxed);
    raw::exit_group(127)
}
