//! What the background reaper thread sleeps in: its wake pipe, and on Linux
//! the pidfds it watches, with a timeout.
//!
//! Both backends provide a `Poller` with the same methods:
//!
//! - `Poller::new(wake)`: a poller that reports the wake pipe's read end
//!   `wake` (which must outlive it) as readable;
//! - `watch(fd, token)` / `unwatch(fd)`: adds or removes an edge-triggered
//!   watch for readability, reported as `token`;
//! - `watch_changes(fd, token)`: the same for change notifications
//!   (`EPOLLPRI`) of a kernfs file, a cgroup's `cgroup.events`;
//! - `wait(tokens, timeout_ms)`: sleeps up to `timeout_ms` (`-1`: forever),
//!   appends the tokens of ready watches, and returns whether the wake pipe
//!   was readable. An interrupted wait counts as a timeout.
//!
//! On Linux this is epoll (`epoll.rs`). Elsewhere (`poll.rs`) only the wake
//! pipe is waited on, with `poll(2)`: there are no pidfds to watch, and
//! `watch` and `watch_changes` fail with `Unsupported`.

#[cfg(target_os = "linux")]
mod epoll;
#[cfg(target_os = "linux")]
pub(crate) use epoll::Poller;

#[cfg(not(target_os = "linux"))]
mod poll;
#[cfg(not(target_os = "linux"))]
pub(crate) use poll::Poller;
