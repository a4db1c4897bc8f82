//! The fallback vehicle: std's fork path, with the whole child side run by
//! a `pre_exec` hook.
//!
//! Used where clone3 is denied (a seccomp filter answering `ENOSYS` or
//! `EPERM`, or a kernel without it) or this architecture has no trampoline.
//! It is slower for a large parent, because fork copies our page tables, but
//! just as atomic: the hook writes `0` to the cgroup's already-open
//! `cgroup.procs` before anything else, so the child is in its cgroup before
//! it execs, and it is the same child routine as the fast vehicle's, so the
//! result is the same.
//!
//! std is told nothing but the hook (stdio inherited, no uid, no directory,
//! no environment change), so in the child std only resets `SIGPIPE` and
//! then runs the hook, which execs itself and returns only the errno of a
//! failure. std sends that errno to the parent over its close-on-exec pipe
//! and `spawn` returns it, exactly as for its own exec failures.
//!
//! Owns: the fork vehicle. Calls: `child`, std's `CommandExt::pre_exec`.

use super::child::{self, ChildContext};
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::Stdio;

/// A context pointer that may cross into the hook. std requires the hook
/// to be `Send + Sync + 'static`; the pointer is only dereferenced in the
/// forked child, during [`spawn`], while the context it points to is alive
/// (in the child's copy of our memory).
struct ContextPtr(*const ChildContext<'static>);

// SAFETY: see the type's documentation; the hook never runs in this process.
unsafe impl Send for ContextPtr {}
// SAFETY: as above.
unsafe impl Sync for ContextPtr {}

impl ContextPtr {
    /// Through a method, so that the hook captures the whole wrapper (a
    /// closure naming `.0` would capture the bare pointer).
    fn get(&self) -> *const ChildContext<'static> {
        self.0
    }
}

/// Forks and runs `ctx` in the child. Returns the pid.
pub(super) fn spawn(ctx: &ChildContext<'_>) -> io::Result<u32> {
    // The erased lifetime is never used beyond this call: the Command, and
    // with it the hook, is dropped before we return.
    let ptr = ContextPtr((ctx as *const ChildContext<'_>).cast());
    // std never execs this itself (the hook execs and never returns
    // success), but it is the user's program all the same.
    let program = ctx
        .image
        .candidates
        .iter()
        .next()
        .map_or(OsStr::new(""), |path| OsStr::from_bytes(path.to_bytes()));
    let mut command = std::process::Command::new(program);
    command
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    let hook = move || -> io::Result<()> {
        // SAFETY: we are in the forked child, whose copy of the context is
        // intact (see ContextPtr).
        let ctx = unsafe { &*ptr.get() };
        Err(io::Error::from_raw_os_error(child::run(ctx)))
    };
    // SAFETY: the hook only makes raw system calls and builds an io::Error
    // from an errno, which does not allocate: all of it is
    // async-signal-safe, as pre_exec requires.
    unsafe { command.pre_exec(hook) };
    let child = command.spawn()?;
    // Dropping a std Child neither waits for nor signals the process.
    Ok(child.id())
}
