//! Share one child between tasks: a supervisor waits for it, a watchdog
//! signals it, and a reporter learns its status, all through cloned
//! `ChildHandle`s, after the `Child` itself was dropped.
//!
//! `cargo run -p brood --example shared_handle`

use brood::{Command, Signal};
use std::time::Duration;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let child = Command::new("sleep").arg("30").spawn()?;
    let handle = child.handle();
    drop(child); // no kill_on_drop: it keeps running, and brood still reaps it

    let supervisor = tokio::spawn({
        let handle = handle.clone();
        async move {
            let status = handle.wait().await?;
            println!("supervisor: pid {} ended: {status}", handle.id());
            std::io::Result::Ok(status)
        }
    });
    let reporter = tokio::spawn({
        let handle = handle.clone();
        async move {
            let status = handle.wait().await?;
            println!("reporter: saw the same status: {status}");
            std::io::Result::Ok(status)
        }
    });
    let watchdog = tokio::spawn({
        let handle = handle.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            println!("watchdog: 200 ms is enough, sending SIGTERM");
            handle.signal(Signal::TERM)
        }
    });

    watchdog.await.unwrap()?;
    let a = supervisor.await.unwrap()?;
    let b = reporter.await.unwrap()?;
    assert_eq!(a, b);
    // Signalling after the exit is a no-op, never a stray signal.
    handle.signal(Signal::KILL)?;
    Ok(())
}
