//! A seccomp filter that makes chosen system calls fail with a chosen
//! errno, as a kernel that lacks them (or a container that forbids them)
//! would: how the tests and the benchmark deny pidfds.
//!
//! The filter is a classic BPF program: check the architecture (a call from
//! another ABI is allowed untouched), then compare the system call number,
//! and optionally the low half of its first argument, against each rule.
//! [`install`] puts it on every thread of the process
//! (`SECCOMP_FILTER_FLAG_TSYNC`), [`install_on_this_thread`] on the calling
//! thread only; either way every thread and child created later gets it.
//! It cannot be removed: install it in a process of its own (a
//! [worker](crate::worker)).

use std::io;

/// A rule: system call `nr` (with its first argument equal to `arg0`, if
/// given) fails with `errno` instead of running.
#[derive(Clone, Copy, Debug)]
pub struct Deny {
    /// The system call number (`libc::SYS_*`).
    pub nr: libc::c_long,
    /// Only when the first argument's low 32 bits equal this.
    pub arg0: Option<u32>,
    /// The error the call returns.
    pub errno: i32,
}

/// The rule a kernel older than 5.3 amounts to: `pidfd_open` does not exist.
pub const PIDFD_OPEN_ENOSYS: Deny = Deny {
    nr: libc::SYS_pidfd_open,
    arg0: None,
    errno: libc::ENOSYS,
};

/// `AUDIT_ARCH_*` of <linux/audit.h> for the architecture this is built for.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: Option<u32> = Some(0xc000_003e);
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: Option<u32> = Some(0xc000_00b7);
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const AUDIT_ARCH: Option<u32> = None;

/// Offsets in `struct seccomp_data`.
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
/// The low half of `args[0]` (little-endian).
const OFFSET_ARG0_LOW: u32 = 16;

const LOAD_WORD: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JUMP_IF_EQUAL: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const RETURN: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

fn statement(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

/// Compares the loaded word with `k`: skips `if_equal` instructions when
/// equal, `otherwise` instructions when not.
fn jump_if_equal(k: u32, if_equal: u8, otherwise: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: JUMP_IF_EQUAL,
        jt: if_equal,
        jf: otherwise,
        k,
    }
}

/// The BPF program for `rules` on architecture `arch`.
fn program(arch: u32, rules: &[Deny]) -> Vec<libc::sock_filter> {
    let allow = statement(RETURN, libc::SECCOMP_RET_ALLOW);
    let mut prog = vec![
        statement(LOAD_WORD, OFFSET_ARCH),
        // Our ABI: go on to the rules; another one: allow.
        jump_if_equal(arch, 1, 0),
        allow,
    ];
    for rule in rules {
        let fail = statement(
            RETURN,
            libc::SECCOMP_RET_ERRNO | (rule.errno as u32 & libc::SECCOMP_RET_DATA),
        );
        prog.push(statement(LOAD_WORD, OFFSET_NR));
        match rule.arg0 {
            None => {
                prog.push(jump_if_equal(rule.nr as u32, 0, 1));
                prog.push(fail);
            }
            Some(arg0) => {
                prog.push(jump_if_equal(rule.nr as u32, 0, 3));
                prog.push(statement(LOAD_WORD, OFFSET_ARG0_LOW));
                prog.push(jump_if_equal(arg0, 0, 1));
                prog.push(fail);
            }
        }
    }
    prog.push(allow);
    prog
}

/// Installs a filter applying `rules` on every thread of this process, and
/// on every thread and child created later. Irreversible.
pub fn install(rules: &[Deny]) -> io::Result<()> {
    install_with(rules, libc::SECCOMP_FILTER_FLAG_TSYNC)
}

/// Installs a filter applying `rules` on the calling thread alone, and on
/// the threads and children it creates later: for a call that the rest of
/// the process must keep (glibc makes threads and `posix_spawn` children
/// with `clone3`, for one). Irreversible for that thread.
pub fn install_on_this_thread(rules: &[Deny]) -> io::Result<()> {
    install_with(rules, 0)
}

fn install_with(rules: &[Deny], flags: libc::c_ulong) -> io::Result<()> {
    let Some(arch) = AUDIT_ARCH else {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the seccomp filter knows x86-64 and aarch64 only",
        ));
    };
    let prog = program(arch, rules);
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: prctl with integer arguments only. No new privileges is what
    // lets an unprivileged process install a filter.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fprog` points to `prog`, a valid filter program that outlives
    // the call (the kernel copies it); the kernel only reads through it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
            flags,
            &fprog as *const libc::sock_fprog,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Denies `pidfd_open` with `ENOSYS` ([`PIDFD_OPEN_ENOSYS`]) and checks that
/// the filter bites: `pidfd_open` on this process must now fail so.
pub fn deny_pidfd_open() -> io::Result<()> {
    install(&[PIDFD_OPEN_ENOSYS])?;
    if !pidfd_open_fails_with(libc::ENOSYS) {
        return Err(io::Error::other(
            "seccomp filter installed but pidfd_open still works",
        ));
    }
    Ok(())
}

/// Whether `pidfd_open` on this process fails with `errno`.
fn pidfd_open_fails_with(errno: i32) -> bool {
    // SAFETY: pidfd_open takes two integers and returns a new descriptor or
    // -1; a descriptor returned is closed right away.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
    if fd >= 0 {
        // SAFETY: `fd` was just returned to us and is used nowhere else.
        unsafe { libc::close(fd as libc::c_int) };
        return false;
    }
    io::Error::last_os_error().raw_os_error() == Some(errno)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_checks_the_arch_then_each_rule() {
        let rules = [
            PIDFD_OPEN_ENOSYS,
            Deny {
                nr: libc::SYS_waitid,
                arg0: Some(3),
                errno: libc::EINVAL,
            },
        ];
        let prog = program(0xc000_003e, &rules);
        // 3 for the arch check, 3 for the first rule, 5 for the second, 1
        // final allow.
        assert_eq!(prog.len(), 12);
        assert_eq!(prog[1].k, 0xc000_003e);
        assert_eq!(prog[4].k, libc::SYS_pidfd_open as u32);
        assert_eq!(
            prog[5].k,
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
            "pidfd_open fails with ENOSYS"
        );
        assert_eq!((prog[7].jt, prog[7].jf), (0, 3), "waitid: check arg0 next");
        assert_eq!(prog[9].k, 3);
        assert_eq!(prog[11].k, libc::SECCOMP_RET_ALLOW);
    }
}
