//! Workload for `scripts/memcheck` (valgrind): a small tour of brood's paths
//! (spawn, pipes both ways, output capture and caps, timeouts, signals,
//! kill_on_drop, drops unreaped, shared handles) that exits only once every
//! child has been reaped. Kept small: valgrind makes each step slow.

use brood::{Command, Signal};
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn check(ok: bool, what: &str) -> io::Result<()> {
    if ok {
        Ok(())
    } else {
        Err(io::Error::other(format!("memcheck workload: {what}")))
    }
}

/// Pids of our children, from /proc (no zombies may remain at exit).
fn children() -> usize {
    let me = std::process::id().to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.flatten()
        .filter(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            stat.rfind(')')
                .and_then(|i| stat[i + 2..].split(' ').nth(1))
                .is_some_and(|ppid| ppid == me)
        })
        .count()
}

async fn workload() -> io::Result<()> {
    // Status and exit codes.
    let status = Command::new("sh").args(["-c", "exit 3"]).status().await?;
    check(status.code() == Some(3), "exit code")?;

    // Output capture, both streams.
    let out = Command::new("sh")
        .args(["-c", "echo out; echo err >&2"])
        .output()
        .await?;
    check(out.stdout == b"out\n" && out.stderr == b"err\n", "output")?;

    // Pipes both ways.
    let mut cat = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut stdin = cat.stdin.take().unwrap();
    stdin.write_all(&[7u8; 100_000]).await.ok();
    let reader = tokio::spawn({
        let mut stdout = cat.stdout.take().unwrap();
        async move {
            let mut buf = Vec::new();
            stdout.read_to_end(&mut buf).await.map(|_| buf)
        }
    });
    stdin.shutdown().await?;
    drop(stdin);
    let echoed = reader.await.map_err(io::Error::other)??;
    check(echoed.len() == 100_000, "cat round trip")?;
    check(cat.wait().await?.success(), "cat status")?;

    // Output cap: the child is stopped, the error carries what was kept.
    let capped = Command::new("head")
        .args(["-c", "200000", "/dev/zero"])
        .max_output(1000)
        .output()
        .await;
    check(capped.is_err(), "max_output")?;

    // Timeout stops the child.
    let timed = Command::new("sleep")
        .arg("10")
        .timeout(Duration::from_millis(200))
        .status()
        .await;
    check(
        timed.is_err_and(|e| e.kind() == io::ErrorKind::TimedOut),
        "timeout",
    )?;

    // wait_timeout, signal, wait.
    let mut sleeper = Command::new("sleep").arg("10").spawn()?;
    check(
        sleeper
            .wait_timeout(Duration::from_millis(20))
            .await?
            .is_none(),
        "wait_timeout",
    )?;
    sleeper.signal(Signal::TERM)?;
    check(
        sleeper.wait().await?.signal() == Some(libc::SIGTERM),
        "TERM",
    )?;

    // Graceful stop.
    let mut server = Command::new("sleep").arg("10").spawn()?;
    server.terminate(Duration::from_millis(500)).await?;

    // Drops: unreaped, kill_on_drop, with unread pipes, and shared handles.
    let quick = Command::new("sleep").arg("0.05").spawn()?;
    let quick_handle = quick.handle();
    drop(quick);
    let doomed = Command::new("sleep")
        .arg("10")
        .kill_on_drop(true)
        .stdout(Stdio::piped())
        .spawn()?;
    let doomed_handle = doomed.handle();
    drop(doomed);
    let (a, b) = tokio::join!(quick_handle.wait(), doomed_handle.wait());
    check(a?.success(), "dropped child status")?;
    check(b?.signal() == Some(libc::SIGKILL), "kill_on_drop")?;
    drop(Command::new("true").spawn()?);

    // kill().
    let mut victim = Command::new("sleep").arg("10").spawn()?;
    victim.kill().await?;
    check(victim.try_wait()?.is_some(), "kill then try_wait")?;
    Ok(())
}

/// Exit code telling `scripts/memcheck` that the requested reaper cannot run
/// here (valgrind before 3.20 does not know pidfd_open and answers ENOSYS).
const SKIP: i32 = 77;

fn main() -> io::Result<()> {
    match brood::reaper::try_current() {
        Ok(strategy) => println!("memcheck workload under {strategy:?}"),
        Err(e) => {
            println!("memcheck workload skipped: {e}");
            std::process::exit(SKIP);
        }
    }
    // Both runtime flavours.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(workload())?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(workload())?;
    // Dropped children are reaped by the background thread: exit only once
    // none is left, so valgrind sees a quiet process.
    let deadline = Instant::now() + Duration::from_secs(60);
    while children() > 0 {
        if Instant::now() > deadline {
            return Err(io::Error::other("children left unreaped"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("memcheck workload done");
    Ok(())
}
