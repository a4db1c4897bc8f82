//! brood's command-line tests: one binary, a module per area.

mod admission;
mod inputs;
mod joblog;
mod options;
mod output;
mod parsing;
mod pty;
mod scheduling;
mod signals;
mod support;
