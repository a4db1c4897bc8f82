//! A job tree contained in a cgroup of its own: the job starts a daemon
//! (double fork and `setsid`, so it leaves the job's process group and
//! session) that burns CPU, and then hangs. On the timeout brood stops the
//! whole tree, daemon included, and reports the CPU the tree used.
//!
//! ```text
//! cargo run -p brood --example contain
//! ```
//!
//! Needs a writable cgroup v2 hierarchy (Linux); elsewhere, or without one,
//! `Containment::Auto` falls back to a process group, which the daemon
//! escapes: the example then says so.

use brood::{Command, Containment};
use std::time::Duration;

const JOB: &str = r#"
    # The daemon: the middle shell exits at once, so the grandchild is
    # re-parented, and setsid puts it in a session of its own.
    sh -c 'setsid sh -c "while :; do :; done" &'
    echo "job $$ started a daemon"
    exec sleep 1000
"#;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut job = Command::new("sh")
        .args(["-c", JOB])
        .contain(Containment::Auto)
        .spawn()?;
    println!("contained by {:?}", job.containment());

    let timeout = Duration::from_secs(1);
    let status = match job.wait_timeout(timeout).await? {
        Some(status) => status,
        None => {
            println!("members at the timeout: {:?}", job.members()?);
            // SIGTERM to every member (frozen while signalled), then
            // cgroup.kill after the grace; returns once the tree is gone.
            job.terminate(Duration::from_millis(200)).await?
        }
    };
    println!("job: {status}");
    println!("members left: {:?}", job.members()?);

    match job.tree_usage() {
        Some(usage) => println!(
            "the tree used {:?} of CPU in user mode and {:?} in the kernel",
            usage.user_time(),
            usage.system_time()
        ),
        None => println!("no cgroup here: the daemon escaped the process group and still runs"),
    }
    Ok(())
}
