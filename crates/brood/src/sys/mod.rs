//! The operating-system boundary: every system call, and the only module that
//! contains `unsafe`.
//!
//! Each function wraps one system call (or a short fixed sequence of them),
//! turns `-1`/errno into [`io::Error`](std::io::Error) (see [`errno`]), and
//! states in a `// SAFETY:` note the invariant its `unsafe` block relies on.
//! Everything above this module is safe Rust and free of platform `cfg`s:
//! what differs between platforms is chosen here.
//!
//! # The platform contract
//!
//! Every Unix provides all of these modules with the same items:
//!
//! | module | Linux | elsewhere |
//! | --- | --- | --- |
//! | [`process`] | `wait4`, the `waitid` peek, `kill`, `killpg`, `getpgid`, `prctl(PR_SET_CHILD_SUBREAPER)` | the same; the subreaper call fails with `Unsupported` |
//! | [`fd`] | pipes, `O_NONBLOCK`, `read`/`write`/`writev`, `poll`, `F_SETPIPE_SZ` | the same; pipe sizing is a no-op |
//! | [`errno`] | `-1`/errno to `io::Error`, the out-of-resources test | the same |
//! | [`sigchld`] | the SIGCHLD handler and the wake-pipe record it writes | the same |
//! | [`pidfd`] | `pidfd_open`, `pidfd_send_signal`, `waitid(P_PIDFD)` (`pidfd/linux.rs`) | stand-ins that fail with `Unsupported` (`pidfd/unsupported.rs`) |
//! | [`poller`] | an edge-triggered epoll set (`poller/epoll.rs`), for readability and change notifications | `poll(2)` on the wake pipe alone (`poller/poll.rs`) |
//! | [`cgroupfs`] | `fstatfs`, the `*at` calls, `poll(POLLPRI)` for cgroup v2 (`cgroupfs/linux.rs`) | stand-ins that fail with `Unsupported` (`cgroupfs/unsupported.rs`) |
//! | [`spawn`] | brood's own spawn: clone3 into a cgroup with a fork fallback (`spawn/linux.rs` and its vehicles); the placement hook for std's spawn | the placement hook; the spawn is a stand-in that fails with `Unsupported` (`spawn/unsupported.rs`) |
//! | [`async_fd`] | handing descriptors to Tokio's reactor | the same |
//!
//! The stand-ins exist so that callers need no `cfg`: off Linux the pidfd
//! exit watcher is never chosen and no child is contained in a cgroup, so
//! they are never reached at run time.
#![allow(unsafe_code)]

pub(crate) mod async_fd;
pub(crate) mod cgroupfs;
pub(crate) mod errno;
pub(crate) mod fd;
pub(crate) mod pidfd;
pub(crate) mod poller;
pub(crate) mod process;
pub(crate) mod sigchld;
pub(crate) mod spawn;
