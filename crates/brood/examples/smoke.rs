use std::process::Stdio;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
#[tokio::main]
async fn main() -> std::io::Result<()> {
    println!("strategy {:?}", brood::reaper::current());
    let st = brood::Command::new("sh")
        .args(["-c", "exit 3"])
        .status()
        .await?;
    println!("status {st:?}");
    let out = brood::Command::new("echo").arg("hi").output().await?;
    println!("out {:?}", out);
    let mut c = brood::Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut i = c.stdin.take().unwrap();
    i.write_all(b"abc").await?;
    i.shutdown().await?;
    let mut s = String::new();
    c.stdout.take().unwrap().read_to_string(&mut s).await?;
    println!("cat {s:?} {:?}", c.wait().await?);
    let t = std::time::Instant::now();
    let mut v = vec![];
    for _ in 0..1000 {
        v.push(brood::Command::new("true").spawn()?);
    }
    for mut c in v {
        c.wait().await?;
    }
    println!("1000 in {:?}", t.elapsed());
    let c = brood::Command::new("sleep").arg("0.1").spawn()?;
    let h = c.handle();
    drop(c);
    println!("handle {:?}", h.wait().await);
    Ok(())
}
