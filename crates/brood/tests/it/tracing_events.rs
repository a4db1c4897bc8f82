//! The optional `tracing` feature: events for spawn, exit (with status and
//! rusage), signal sent, and orphan reaped.
//!
//! Compiled only with the feature (see `main.rs`); `scripts/test` runs it
//! as `cargo nextest run -p brood --features tracing --test it
//! tracing_events::`. It installs a global subscriber, so it needs a process
//! of its own, which nextest gives every test (with `cargo test`, filter it
//! to this module as above).

use brood_testkit::{bounded, eventually, TEST_LIMIT};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Records each event as "message field=value ...".
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

struct Line(String);
impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        meta.target() == "brood"
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = Line(String::new());
        event.record(&mut line);
        self.0.lock().unwrap().push(line.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

impl Recorder {
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    fn has(&self, prefix: &str, needle: &str) -> bool {
        self.lines()
            .iter()
            .any(|l| l.starts_with(prefix) && l.contains(needle))
    }
}

#[test]
fn spawn_exit_signal_and_orphan_events() {
    let recorder = Recorder::default();
    // A global default so the background reaper thread reports too.
    tracing::subscriber::set_global_default(recorder.clone()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(bounded(TEST_LIMIT, async {
        let mut child = brood::Command::new("sh")
            .args(["-c", "exit 3"])
            .spawn()
            .unwrap();
        let pid = child.id().unwrap().to_string();
        child.wait().await.unwrap();
        assert!(recorder.has("spawned", &pid), "{:?}", recorder.lines());
        assert!(
            recorder.has("exited", "exit status: 3"),
            "{:?}",
            recorder.lines()
        );
        assert!(recorder.has("exited", "max_rss="), "{:?}", recorder.lines());

        let mut sleeper = brood::Command::new("sleep").arg("30").spawn().unwrap();
        sleeper.signal(brood::Signal::TERM).unwrap();
        sleeper.wait().await.unwrap();
        assert!(
            recorder.has("signal sent", "SIGTERM"),
            "{:?}",
            recorder.lines()
        );

        // Dropped unreaped: the background reaper reports the orphan.
        let orphan = brood::Command::new("sleep").arg("0.05").spawn().unwrap();
        let opid = orphan.id().unwrap().to_string();
        drop(orphan);
        assert!(
            eventually(Duration::from_secs(5), || recorder
                .has("orphan reaped", &opid))
            .await,
            "{:?}",
            recorder.lines()
        );
    }));
}
