//! brood, on a Tokio runtime; `BROOD_REAPER` (set by the driver) picks the
//! exit watcher.

tokio_style_worker!(brood::Command, || Some(brood::test_hooks::wait_calls()));
