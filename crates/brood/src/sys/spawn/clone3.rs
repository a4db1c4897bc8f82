//! The fast vehicle: `clone3(CLONE_VM | CLONE_VFORK | CLONE_PIDFD |
//! CLONE_CLEAR_SIGHAND [| CLONE_INTO_CGROUP])`.
//!
//! - `CLONE_VM | CLONE_VFORK`: the child borrows our address space instead
//!   of copying its page tables, so the cost does not grow with our memory,
//!   and we are suspended until it has exec'd or exited. That suspension is
//!   what makes the shared memory safe: the child's stack, its instructions
//!   and the slot it reports an exec failure in all stay untouched by us
//!   while it runs, and the kernel's vfork completion orders its writes
//!   before our resumption, so we read the slot after the syscall returns.
//! - `CLONE_PIDFD`: the pidfd comes with the child, no `pidfd_open` needed.
//! - `CLONE_CLEAR_SIGHAND`: every caught signal starts at `SIG_DFL` in the
//!   child, so none of our handlers can ever run on our memory from there.
//!   Ignored signals stay ignored, as across exec.
//! - `CLONE_INTO_CGROUP`: the child is born in its cgroup; no instruction of
//!   it runs anywhere else.
//!
//! Rust cannot return twice from one call, so the child does not return
//! from the system call: a few instructions of inline assembly switch it to
//! [`child::vfork_entry`] on a stack of its own, which never returns.
//!
//! Owns: the trampoline, the child stacks, `Outcome`, the denial probe.
//! Calls: `child`, `raw`, `pidfd`.

use super::child::{self, report, ChildContext};
use super::raw::{self, errno_of};
use std::cell::RefCell;
use std::ffi::c_void;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::AtomicI32;

/// `struct clone_args` (linux/sched.h), up to the `cgroup` field.
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

/// The size of the first version of `struct clone_args` (Linux 5.3).
const CLONE_ARGS_SIZE_VER0: usize = 64;
/// The size with the `cgroup` field (Linux 5.7).
const CLONE_ARGS_SIZE_VER2: usize = 88;
const _: () = assert!(std::mem::size_of::<CloneArgs>() == CLONE_ARGS_SIZE_VER2);

const CLONE_VM: u64 = libc::CLONE_VM as u64;
const CLONE_VFORK: u64 = libc::CLONE_VFORK as u64;
const CLONE_PIDFD: u64 = 0x1000;
const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The child's stack: small, since the child only makes system calls, with
/// an inaccessible guard page below it so that an overflow faults instead of
/// writing over our heap.
struct ChildStack {
    base: *mut c_void,
    len: usize,
}

const STACK_SIZE: usize = 64 * 1024;

impl ChildStack {
    fn new() -> io::Result<ChildStack> {
        let guard = page_size();
        let len = STACK_SIZE + guard;
        // SAFETY: a fresh private anonymous mapping; no existing memory is
        // affected.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = ChildStack { base, len };
        // SAFETY: the first page of the mapping we own.
        if unsafe { libc::mprotect(base, guard, libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// The lowest usable address and the usable size; the top (`lowest +
    /// size`) is page-aligned, so 16-byte aligned as both ABIs require.
    fn usable(&self) -> (u64, u64) {
        let guard = self.len - STACK_SIZE;
        (self.base as u64 + guard as u64, STACK_SIZE as u64)
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours, and no child uses it any more: each
        // child is done with it before its clone3 returns.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

thread_local! {
    /// One stack per spawning thread, reused: a child is finished with it
    /// (exec'd or exited) by the time its clone3 returns to this thread.
    static STACK: RefCell<Option<ChildStack>> = const { RefCell::new(None) };
}

/// Runs `f` with a child stack: this thread's cached one, or a fresh one if
/// that is in use (a re-entrant spawn) or the thread is being torn down.
fn with_stack<R>(f: impl FnOnce(&ChildStack) -> io::Result<R>) -> io::Result<R> {
    let mut f = Some(f);
    let cached = STACK.try_with(|cell| {
        let Ok(mut slot) = cell.try_borrow_mut() else {
            return None;
        };
        if slot.is_none() {
            match ChildStack::new() {
                Ok(stack) => *slot = Some(stack),
                Err(e) => return Some(Err(e)),
            }
        }
        let stack = slot.as_ref()?;
        Some((f.take()?)(stack))
    });
    match cached {
        Ok(Some(result)) => result,
        _ => match f.take() {
            Some(f) => f(&ChildStack::new()?),
            None => Err(io::Error::other("brood: child stack unavailable")),
        },
    }
}

/// How a clone3 attempt ended.
pub(super) enum Outcome {
    /// The child exec'd.
    Spawned { pid: u32, pidfd: OwnedFd },
    /// clone3 itself failed with this errno; no child exists.
    CloneFailed(i32),
    /// The child was created and reaped, and the spawn failed with this error.
    ChildFailed(io::Error),
    /// Setting up the clone failed; no child exists, and nothing was learnt
    /// about clone3.
    SetupFailed(io::Error),
}

/// Spawns `ctx`'s image with clone3; `cgroup` is an open cgroup v2
/// directory to start the child in.
///
/// Every signal is blocked on this thread from before the clone until after
/// it returns, so no handler of ours can run in the child before it has
/// cleared its handlers (`CLONE_CLEAR_SIGHAND` does that atomically, but a
/// signal could otherwise arrive in the child between its creation and its
/// first instruction; the kernel checks the mask). The child restores our
/// previous mask itself just before exec.
pub(super) fn spawn(
    ctx: &mut ChildContext<'_>,
    cgroup: Option<BorrowedFd<'_>>,
) -> io::Result<Outcome> {
    with_stack(|stack| Ok(spawn_on(ctx, cgroup, stack)))
}

fn spawn_on(
    ctx: &mut ChildContext<'_>,
    cgroup: Option<BorrowedFd<'_>>,
    stack: &ChildStack,
) -> Outcome {
    let mut pidfd: libc::c_int = -1;
    let (stack_low, stack_size) = stack.usable();
    let mut args = CloneArgs {
        flags: CLONE_VM | CLONE_VFORK | CLONE_PIDFD | CLONE_CLEAR_SIGHAND,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        stack: stack_low,
        stack_size,
        ..CloneArgs::default()
    };
    let mut size = CLONE_ARGS_SIZE_VER0;
    if let Some(dir) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = dir.as_raw_fd() as u64;
        size = CLONE_ARGS_SIZE_VER2;
    }

    let all: u64 = !0;
    let mut previous: u64 = 0;
    if let Some(e) = errno_of(raw::set_signal_mask(&all, &mut previous)) {
        return Outcome::SetupFailed(io::Error::from_raw_os_error(e));
    }
    ctx.vfork = Some(child::VforkSignals {
        restore_mask: previous,
    });
    let report: &AtomicI32 = ctx.report;
    report.store(report::NOT_REACHED, std::sync::atomic::Ordering::Relaxed);

    // SAFETY: `args` describes a CLONE_VM | CLONE_VFORK child on `stack`,
    // which nothing else uses until this call returns; the child runs
    // `vfork_entry(ctx)`, which never returns and touches only `ctx` (alive
    // on our stack for the whole call, since we are suspended until the
    // child exec'd or exited) and its own stack.
    let ret = unsafe {
        trampoline(
            &mut args,
            size,
            child::vfork_entry,
            ctx as *const ChildContext<'_>,
        )
    };
    // Restoring cannot fail: the same call succeeded above with a valid set.
    let _ = raw::set_signal_mask(&previous, std::ptr::null_mut());
    ctx.vfork = None;

    if let Some(e) = errno_of(ret) {
        return Outcome::CloneFailed(e);
    }
    let pid = ret as u32;
    // SAFETY: with CLONE_PIDFD the kernel stored a fresh close-on-exec
    // descriptor for the child in `pidfd`, owned by nobody else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    match report.load(std::sync::atomic::Ordering::Relaxed) {
        report::EXECING => Outcome::Spawned { pid, pidfd },
        report::NOT_REACHED => {
            reap(&pidfd);
            Outcome::ChildFailed(io::Error::other(
                "brood: the child was killed before it could exec",
            ))
        }
        errno => {
            reap(&pidfd);
            Outcome::ChildFailed(io::Error::from_raw_os_error(errno))
        }
    }
}

/// The entry point of the child, as the trampoline calls it.
type Entry = for<'a> extern "C" fn(*const ChildContext<'a>) -> !;

/// `clone3(args, size)`; in the child, calls `entry(ctx)` on the stack that
/// `args` names, with no return address to come back to. Returns the raw
/// result in the parent.
///
/// # Safety
///
/// `args` must describe a child that shares no stack with us (a stack in
/// `args`, which only the child uses), and `entry` must never return.
#[cfg(target_arch = "x86_64")]
unsafe fn trampoline(
    args: &mut CloneArgs,
    size: usize,
    entry: Entry,
    ctx: *const ChildContext<'_>,
) -> raw::Ret {
    let ret: raw::Ret;
    // SAFETY: see the function's contract. The parent path only executes
    // `syscall` (clobbering rcx and r11, returning in rax). The child
    // starts at the next instruction with rax = 0 and rsp at the top of its
    // (16-byte aligned) stack; r12 and r13 survive the system call, and the
    // `call` leaves rsp = 8 mod 16 at the entry, as the ABI wants. rbp is
    // cleared so that backtraces in the child end there.
    unsafe {
        core::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r13",
            "call r12",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 as isize => ret,
            in("rdi") args as *mut CloneArgs,
            in("rsi") size,
            in("r12") entry,
            in("r13") ctx,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// See the x86-64 version.
///
/// # Safety
///
/// As for the x86-64 version.
#[cfg(target_arch = "aarch64")]
unsafe fn trampoline(
    args: &mut CloneArgs,
    size: usize,
    entry: Entry,
    ctx: *const ChildContext<'_>,
) -> raw::Ret {
    let ret: raw::Ret;
    // SAFETY: see the function's contract. `svc 0` preserves every register
    // but x0. The child resumes after it with x0 = 0 and sp at the top of
    // its (16-byte aligned) stack; x9 and x10 still hold the entry and its
    // argument. The frame pointer and link register are cleared so that
    // backtraces in the child end there; `brk` traps if `entry` returned.
    unsafe {
        core::arch::asm!(
            "svc 0",
            "cbnz x0, 2f",
            "mov x29, xzr",
            "mov x30, xzr",
            "mov x0, x10",
            "blr x9",
            "brk #0x1",
            "2:",
            inlateout("x0") args as *mut CloneArgs => ret,
            in("x1") size,
            in("x8") libc::SYS_clone3,
            in("x9") entry,
            in("x10") ctx,
            options(nostack),
        );
    }
    ret
}

/// `clone3(NULL, 0)`: a kernel that has clone3 rejects the size with
/// `EINVAL` before looking at anything else, so any other answer (ENOSYS,
/// or EPERM from a seccomp filter, which cannot see inside the struct and
/// so denies every clone3 alike) means clone3 is unavailable to us.
pub(super) fn denied() -> bool {
    // SAFETY: a null struct with size 0 is rejected before it is read.
    let ret = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<CloneArgs>(), 0usize) };
    !(ret == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL))
}

/// Reaps a child whose spawn failed (it has exited, or is about to).
fn reap(pidfd: &OwnedFd) {
    use std::os::fd::AsFd;
    // ECHILD (SIGCHLD ignored, so the kernel reaped it) is as good.
    let _ = crate::sys::pidfd::waitid(pidfd.as_fd(), false);
}
