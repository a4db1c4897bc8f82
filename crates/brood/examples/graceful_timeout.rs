//! Run a command with a deadline; when it runs over, stop its whole process
//! tree gracefully: SIGTERM to the group, then SIGKILL after a grace period.
//!
//! `cargo run -p brood --example graceful_timeout -- 2 sh -c 'sleep 10 & sleep 10'`

use brood::Command;
use std::io::ErrorKind;
use std::time::Duration;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(secs), Some(program)) = (args.next(), args.next()) else {
        eprintln!("usage: graceful_timeout SECONDS PROGRAM [ARGS...]");
        std::process::exit(2);
    };
    let Ok(secs) = secs.parse::<f64>() else {
        eprintln!("graceful_timeout: {secs:?} is not a number of seconds");
        std::process::exit(2);
    };
    let result = Command::new(program)
        .args(args)
        .process_group(0) // stops reach grandchildren too
        .timeout(Duration::from_secs_f64(secs))
        .grace(Duration::from_secs(1))
        .status()
        .await;
    match result {
        Ok(status) => {
            println!("finished in time: {status}");
            std::process::exit(status.code().unwrap_or(1));
        }
        Err(e) if e.kind() == ErrorKind::TimedOut => {
            println!("stopped: {e}");
            std::process::exit(124);
        }
        Err(e) => {
            eprintln!("graceful_timeout: {e}");
            std::process::exit(127);
        }
    }
}
