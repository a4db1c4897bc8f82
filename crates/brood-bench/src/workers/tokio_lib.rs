//! `tokio::process` (pidfd reaper where `pidfd_open` works, SIGCHLD
//! otherwise).

tokio_style_worker!(tokio::process::Command, || None);
