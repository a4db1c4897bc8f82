//! The bench binary's own child modes, and the S6 release gate.
//!
//! `brood-bench stamp`: writes its CLOCK_MONOTONIC (ns, decimal) to stdout
//! and `_exit(0)`s at once (S5).
//!
//! `brood-bench sleeper OFFSET_NS`: reads the 8-byte release time `t0` from
//! stdin, sleeps until `t0 + OFFSET_NS` on CLOCK_MONOTONIC, and `_exit(0)`s
//! (S6). No shell, no allocation after start-up: the exit time is known to
//! the parent within the kernel's timer slack.

use crate::sys::{exit_now, now_ns};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Stdio;

pub fn stamp() -> ! {
    let text = format!("{}\n", now_ns());
    let bytes = text.as_bytes();
    // SAFETY: writes from a live buffer to fd 1.
    let n = unsafe { libc::write(1, bytes.as_ptr().cast(), bytes.len()) };
    exit_now(if n == bytes.len() as isize { 0 } else { 1 })
}

pub fn sleeper(offset_ns: &str) -> ! {
    let Ok(offset_ns) = offset_ns.parse::<u64>() else {
        exit_now(2)
    };
    let mut buf = [0u8; 8];
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: reads into the unfilled tail of `buf`.
        let n = unsafe { libc::read(0, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        match n {
            n if n > 0 => got += n as usize,
            // EOF: the parent died before releasing us.
            0 => exit_now(3),
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            _ => exit_now(4),
        }
    }
    let deadline = u64::from_le_bytes(buf) + offset_ns;
    let ts = libc::timespec {
        tv_sec: (deadline / 1_000_000_000) as libc::time_t,
        tv_nsec: (deadline % 1_000_000_000) as libc::c_long,
    };
    loop {
        // SAFETY: `ts` is a valid timespec; no remainder is requested.
        let rc = unsafe {
            libc::clock_nanosleep(
                libc::CLOCK_MONOTONIC,
                libc::TIMER_ABSTIME,
                &ts,
                std::ptr::null_mut(),
            )
        };
        if rc != libc::EINTR {
            break;
        }
    }
    exit_now(0)
}

/// S6's release gate: children block reading their stdin until the parent
/// writes one 8-byte record per child holding the release time.
pub struct Gate {
    read: Option<OwnedFd>,
    write: File,
}

impl Gate {
    pub fn new() -> io::Result<Gate> {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 just returned these two descriptors to us.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
        Ok(Gate {
            read: Some(read),
            write,
        })
    }

    /// A stdin for one more child.
    pub fn stdin(&self) -> io::Result<Stdio> {
        let read = self.read.as_ref().expect("gate already released");
        Ok(Stdio::from(read.try_clone()?))
    }

    /// Releases `n` children; returns the release time they add their
    /// offsets to.
    pub fn release(mut self, n: u64) -> io::Result<u64> {
        self.read = None;
        let t0 = now_ns();
        let record = t0.to_le_bytes();
        // Writes of at most PIPE_BUF bytes are atomic, so the pipe always
        // holds whole records and every child's 8-byte read gets one.
        const PER_WRITE: usize = 4096 / 8;
        let mut left = n as usize;
        let chunk: Vec<u8> = record.repeat(PER_WRITE.min(left.max(1)));
        while left > 0 {
            let k = left.min(PER_WRITE);
            self.write.write_all(&chunk[..k * 8])?;
            left -= k;
        }
        Ok(t0)
    }
}
