//! Denying `pidfd_open` with a seccomp filter, so that a library's SIGCHLD
//! fallback is what gets measured.
//!
//! The filter returns `ENOSYS` for `pidfd_open` (x86-64 syscall 434), the
//! answer of a kernel older than 5.3, and allows everything else. It is
//! installed in a worker process before any thread exists, so every thread
//! (and every child) inherits it.

use std::io;

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod imp {
    use std::io;

    /// `AUDIT_ARCH_X86_64` from <linux/audit.h>: EM_X86_64 | 64-bit | LE.
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const SYS_PIDFD_OPEN: u32 = 434;
    /// Offsets in `struct seccomp_data`.
    const OFFSET_NR: u32 = 0;
    const OFFSET_ARCH: u32 = 4;

    const BPF_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const BPF_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

    fn stmt(code: u16, k: u32) -> libc::sock_filter {
        libc::sock_filter {
            code,
            jt: 0,
            jf: 0,
            k,
        }
    }

    fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
        libc::sock_filter { code, jt, jf, k }
    }

    pub fn deny_pidfd_open() -> io::Result<()> {
        let allow = libc::SECCOMP_RET_ALLOW;
        let enosys = libc::SECCOMP_RET_ERRNO | (libc::ENOSYS as u32 & libc::SECCOMP_RET_DATA);
        let filter = [
            // 0: A = arch
            stmt(BPF_LD_W_ABS, OFFSET_ARCH),
            // 1: another ABI: allow (jump to 5)
            jump(BPF_JEQ_K, AUDIT_ARCH_X86_64, 0, 3),
            // 2: A = syscall number
            stmt(BPF_LD_W_ABS, OFFSET_NR),
            // 3: not pidfd_open: allow (jump to 5)
            jump(BPF_JEQ_K, SYS_PIDFD_OPEN, 0, 1),
            // 4: pidfd_open: fail with ENOSYS
            stmt(BPF_RET_K, enosys),
            // 5:
            stmt(BPF_RET_K, allow),
        ];
        let prog = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `prog` points to `filter`, which outlives the call; the
        // kernel copies the program.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Whether `pidfd_open` on ourselves now fails with ENOSYS.
    pub fn pidfd_open_denied() -> bool {
        // SAFETY: pidfd_open takes integer arguments; a returned fd is closed.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
        if fd >= 0 {
            // SAFETY: `fd` was just returned to us and is not used elsewhere.
            unsafe { libc::close(fd as i32) };
            return false;
        }
        io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS)
    }
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
mod imp {
    use std::io;

    pub fn deny_pidfd_open() -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the pidfd_open filter is written for Linux x86-64 only",
        ))
    }

    pub fn pidfd_open_denied() -> bool {
        false
    }
}

/// Installs the filter and checks that it bites.
pub fn deny_pidfd_open() -> io::Result<()> {
    imp::deny_pidfd_open()?;
    if !imp::pidfd_open_denied() {
        return Err(io::Error::other(
            "seccomp filter installed but pidfd_open still works",
        ));
    }
    Ok(())
}
