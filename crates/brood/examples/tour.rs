//! A tour of brood: a pipeline, kill_on_drop, a graceful timeout of a whole
//! process tree, and 1000 concurrent children with their timing.
//!
//! Run it with `cargo run --release -p brood --example tour`.

use brood::{Command, Signal};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    println!("exit watcher: {:?}", brood::reaper::current());

    // 1. A pipeline: printf | sort | uniq -c, connected by brood's pipes.
    let mut printf = Command::new("printf")
        .arg("pear\napple\npear\nfig\n")
        .stdout(Stdio::piped())
        .spawn()?;
    let mut sort = Command::new("sort")
        .stdin(Stdio::try_from(printf.stdout.take().unwrap())?)
        .stdout(Stdio::piped())
        .spawn()?;
    let uniq = Command::new("uniq")
        .arg("-c")
        .stdin(Stdio::try_from(sort.stdout.take().unwrap())?)
        .stdout(Stdio::piped())
        .spawn()?;
    let counted = uniq.wait_with_output().await?;
    printf.wait().await?;
    sort.wait().await?;
    println!("\n1. pipeline printf | sort | uniq -c:");
    print!("{}", String::from_utf8_lossy(&counted.stdout));

    // 2. Writing to a child's stdin and closing it while the handle lives.
    let mut wc = Command::new("wc")
        .arg("-w")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdin = wc.stdin.as_mut().unwrap();
    stdin.write_all(b"three small words").await?;
    stdin.shutdown().await?; // EOF for wc, although `wc.stdin` still holds it
    let mut words = String::new();
    wc.stdout.take().unwrap().read_to_string(&mut words).await?;
    wc.wait().await?;
    println!(
        "2. wc -w counted {} words after stdin.shutdown()",
        words.trim()
    );

    // 3. kill_on_drop: the child dies with its handle, and is reaped.
    let sleeper = Command::new("sleep").arg("60").kill_on_drop(true).spawn()?;
    let pid = sleeper.id().unwrap();
    drop(sleeper);
    println!("3. dropped `sleep 60` (pid {pid}) with kill_on_drop: it is killed and reaped");

    // 4. A timeout that stops a whole process tree gracefully.
    let start = Instant::now();
    let result = Command::new("sh")
        .args(["-c", "sleep 60 & sleep 60 & wait"])
        .process_group(0)
        .timeout(Duration::from_millis(300))
        .grace(Duration::from_millis(200))
        .status()
        .await;
    println!(
        "4. a tree of three processes with a 300 ms timeout: {} after {:?}",
        result.unwrap_err(),
        start.elapsed()
    );

    // 5. A signal, and resource usage from the same wait.
    let mut child = Command::new("sleep").arg("60").spawn()?;
    child.signal(Signal::TERM)?;
    let (status, usage) = child.wait_with_rusage().await?;
    println!(
        "5. `sleep 60` after SIGTERM: {status}; it used {:?} CPU and {} KiB at peak",
        usage.user_time() + usage.system_time(),
        usage.max_rss() / 1024
    );

    // 6. 1000 children at once.
    let start = Instant::now();
    let children = (0..1000)
        .map(|i| {
            Command::new("sh")
                .args(["-c", &format!("exit {}", i % 3)])
                .spawn()
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let spawned = start.elapsed();
    let mut failures = 0;
    for mut child in children {
        if !child.wait().await?.success() {
            failures += 1;
        }
    }
    println!(
        "6. 1000 concurrent children: spawned in {spawned:?}, all reaped after {:?}; {failures} exited non-zero (expected 666)",
        start.elapsed()
    );
    Ok(())
}
