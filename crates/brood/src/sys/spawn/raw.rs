//! Raw system calls for the child between clone and exec.
//!
//! A child made with `CLONE_VM` shares our memory and runs on our thread's
//! thread pointer, so it must not touch libc state: no `errno` (it would be
//! the parent thread's), no locks, no allocation. These wrappers issue the
//! `syscall`/`svc` instruction directly and return `-errno` as the kernel
//! does. On other architectures only the fork vehicle exists, where the child
//! is a private copy, so going through `libc::syscall` and reading its own
//! `errno` is fine there.
//!
//! Owns: the raw system-call wrappers. Calls nothing.

#![allow(clippy::too_many_arguments)]

/// A kernel return value: `>= 0` on success, `-errno` on failure.
pub(super) type Ret = isize;

/// Turns a raw return value into the errno it carries, if any.
#[inline(always)]
pub(super) fn errno_of(ret: Ret) -> Option<i32> {
    if (-4095..0).contains(&ret) {
        Some(-ret as i32)
    } else {
        None
    }
}

#[cfg(target_arch = "x86_64")]
mod arch {
    use super::Ret;
    use core::arch::asm;

    #[inline(always)]
    pub(super) unsafe fn syscall4(n: i64, a: usize, b: usize, c: usize, d: usize) -> Ret {
        let ret: Ret;
        // SAFETY: the caller passes a valid system call and arguments. The
        // `syscall` instruction clobbers rcx and r11 and returns in rax; it
        // does not touch the user stack.
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") n as isize => ret,
                in("rdi") a,
                in("rsi") b,
                in("rdx") c,
                in("r10") d,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        ret
    }
}

#[cfg(target_arch = "aarch64")]
mod arch {
    use super::Ret;
    use core::arch::asm;

    #[inline(always)]
    pub(super) unsafe fn syscall4(n: i64, a: usize, b: usize, c: usize, d: usize) -> Ret {
        let ret: Ret;
        // SAFETY: the caller passes a valid system call and arguments. `svc 0`
        // takes the number in x8, returns in x0 and preserves every other
        // register; it does not touch the user stack.
        unsafe {
            asm!(
                "svc 0",
                in("x8") n,
                inlateout("x0") a => ret,
                in("x1") b,
                in("x2") c,
                in("x3") d,
                options(nostack),
            );
        }
        ret
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
mod arch {
    use super::Ret;

    /// Only reached in a forked child, which owns its copy of `errno`.
    #[inline(always)]
    pub(super) unsafe fn syscall4(n: i64, a: usize, b: usize, c: usize, d: usize) -> Ret {
        // SAFETY: forwarded from the caller.
        let ret = unsafe { libc::syscall(n as libc::c_long, a, b, c, d) };
        if ret == -1 {
            -(std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EINVAL) as Ret)
        } else {
            ret as Ret
        }
    }
}

use arch::syscall4;
use std::ffi::c_char;

/// `write(2)`.
pub(super) fn write(fd: i32, buf: &[u8]) -> Ret {
    // SAFETY: `buf` is valid for reads of its length.
    unsafe {
        syscall4(
            libc::SYS_write,
            fd as usize,
            buf.as_ptr() as usize,
            buf.len(),
            0,
        )
    }
}

/// `dup3(2)` without flags: like `dup2`, but `old` must differ from `new`
/// (the plan guarantees it: sources are always above 2). Clears
/// close-on-exec on `new`, as `dup2` does.
pub(super) fn dup3(old: i32, new: i32) -> Ret {
    // SAFETY: integer arguments only.
    unsafe { syscall4(libc::SYS_dup3, old as usize, new as usize, 0, 0) }
}

/// `setgid(2)`, for this (single-threaded) process only.
pub(super) fn setgid(gid: u32) -> Ret {
    // SAFETY: integer argument only.
    unsafe { syscall4(libc::SYS_setgid, gid as usize, 0, 0, 0) }
}

/// `setuid(2)`, for this (single-threaded) process only.
pub(super) fn setuid(uid: u32) -> Ret {
    // SAFETY: integer argument only.
    unsafe { syscall4(libc::SYS_setuid, uid as usize, 0, 0, 0) }
}

/// `setgroups(0, NULL)`: drops every supplementary group.
pub(super) fn clear_groups() -> Ret {
    // SAFETY: a count of 0 with a null list reads no memory.
    unsafe { syscall4(libc::SYS_setgroups, 0, 0, 0, 0) }
}

/// `chdir(2)`.
pub(super) fn chdir(path: *const c_char) -> Ret {
    // SAFETY: the caller's path is a NUL-terminated string that outlives the call.
    unsafe { syscall4(libc::SYS_chdir, path as usize, 0, 0, 0) }
}

/// `setpgid(0, pgroup)`.
pub(super) fn setpgid_self(pgroup: i32) -> Ret {
    // SAFETY: integer arguments only.
    unsafe { syscall4(libc::SYS_setpgid, 0, pgroup as usize, 0, 0) }
}

/// `execve(2)`; returns only on failure.
pub(super) fn execve(
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> Ret {
    // SAFETY: the caller passes a NUL-terminated path and NULL-terminated
    // arrays of NUL-terminated strings, all alive for the call.
    unsafe {
        syscall4(
            libc::SYS_execve,
            path as usize,
            argv as usize,
            envp as usize,
            0,
        )
    }
}

/// `exit_group(2)`.
pub(super) fn exit_group(code: i32) -> ! {
    loop {
        // SAFETY: integer argument only; the call does not return.
        unsafe { syscall4(libc::SYS_exit_group, code as usize, 0, 0, 0) };
    }
}

/// The kernel's `struct sigaction` on x86-64 and aarch64 (handler, flags,
/// restorer, mask), which is not libc's layout.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[repr(C)]
pub(super) struct KernelSigaction {
    pub(super) handler: usize,
    pub(super) flags: u64,
    pub(super) restorer: usize,
    pub(super) mask: u64,
}

/// The kernel's signal set size on these architectures (64 signals).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(super) const SIGSET_SIZE: usize = 8;

/// `rt_sigaction(sig, act, old)`; either pointer may be null.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(super) fn rt_sigaction(
    sig: i32,
    act: *const KernelSigaction,
    old: *mut KernelSigaction,
) -> Ret {
    // SAFETY: the caller's pointers are null or valid for the call; the
    // kernel reads `act` and writes `old`.
    unsafe {
        syscall4(
            libc::SYS_rt_sigaction,
            sig as usize,
            act as usize,
            old as usize,
            SIGSET_SIZE,
        )
    }
}

/// `rt_sigprocmask(SIG_SETMASK, set, old)`; `old` may be null.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(super) fn set_signal_mask(set: &u64, old: *mut u64) -> Ret {
    // SAFETY: `set` is a valid kernel sigset for the call; `old` is null or
    // writable.
    unsafe {
        syscall4(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK as usize,
            set as *const u64 as usize,
            old as usize,
            SIGSET_SIZE,
        )
    }
}

/// `getpid(2)`, for the tests' pause hook.
#[cfg(test)]
pub(super) fn getpid() -> Ret {
    // SAFETY: no arguments.
    unsafe { syscall4(libc::SYS_getpid, 0, 0, 0, 0) }
}

/// `read(2)`, for the tests' pause hook.
#[cfg(test)]
pub(super) fn read(fd: i32, buf: &mut [u8]) -> Ret {
    // SAFETY: `buf` is valid for writes of its length.
    unsafe {
        syscall4(
            libc::SYS_read,
            fd as usize,
            buf.as_mut_ptr() as usize,
            buf.len(),
            0,
        )
    }
}
