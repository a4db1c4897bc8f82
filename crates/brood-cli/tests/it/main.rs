//! brood's command-line tests: one binary, a module per area.

mod admission;
mod contain;
mod engine;
mod inputs;
mod joblog;
mod logtools;
mod options;
mod output;
mod parsing;
mod pty;
mod scheduling;
mod shards;
mod signals;
mod support;
