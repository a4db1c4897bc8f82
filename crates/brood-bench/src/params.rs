//! Every scenario's parameters as a typed struct, with its defaults written
//! once, in the table below; the full run uses exactly these defaults.
//!
//! A case travels from the driver to a worker as `key=value` arguments. A
//! worker starts from the defaults and sets the keys it is given; a key a
//! scenario does not have is an error, so that a misspelt size cannot
//! silently run a different case for one library than for another.

use crate::scenarios::Scenario;

/// Declares one struct per scenario, its defaults, and the `key=value` form.
macro_rules! scenario_params {
    ($(
        $(#[$doc:meta])*
        $scenario:ident {
            $( $(#[$field_doc:meta])* $field:ident = $default:expr, )*
        }
    )*) => {
        $(
            $(#[$doc])*
            #[derive(Clone, Copy, Debug, PartialEq, Eq)]
            pub struct $scenario {
                $( $(#[$field_doc])* pub $field: u64, )*
            }

            impl Default for $scenario {
                fn default() -> Self {
                    $scenario { $( $field: $default, )* }
                }
            }

            impl $scenario {
                /// `(key, value)` for every field, keys in alphabetical order.
                fn pairs(&self) -> Vec<(&'static str, u64)> {
                    let mut pairs = vec![$( (stringify!($field), self.$field), )*];
                    pairs.sort();
                    pairs
                }

                fn set(&mut self, key: &str, value: u64) -> Result<(), String> {
                    match key {
                        $( stringify!($field) => self.$field = value, )*
                        _ => {
                            return Err(format!(
                                "{} has no parameter {key:?}",
                                stringify!($scenario)
                            ))
                        }
                    }
                    Ok(())
                }
            }
        )*

        /// One scenario at one size.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Case {
            $( #[allow(missing_docs)] $scenario($scenario), )*
        }

        impl Case {
            /// `scenario` with its default parameters.
            pub fn defaults(scenario: Scenario) -> Case {
                match scenario {
                    $( Scenario::$scenario => Case::$scenario($scenario::default()), )*
                }
            }

            /// Which scenario this is.
            pub fn scenario(&self) -> Scenario {
                match self {
                    $( Case::$scenario(_) => Scenario::$scenario, )*
                }
            }

            fn pairs(&self) -> Vec<(&'static str, u64)> {
                match self {
                    $( Case::$scenario(p) => p.pairs(), )*
                }
            }

            fn set(&mut self, key: &str, value: u64) -> Result<(), String> {
                match self {
                    $( Case::$scenario(p) => p.set(key, value), )*
                }
            }
        }
    };
}

scenario_params! {
    /// S1: sequential spawn + wait of /bin/true.
    S1 {
        /// Operations.
        n = 2000,
    }
    /// S2: a burst of /bin/true with a bounded number in flight.
    S2 {
        /// Children.
        n = 2000,
        /// Children in flight at most.
        inflight = 256,
    }
    /// S3: many live children, spawned all, then awaited.
    S3 {
        /// Children.
        n = 2000,
        /// Seconds each child sleeps.
        sleep_s = 2,
    }
    /// S4: `output()` of `head -c bytes /dev/zero`.
    S4 {
        /// Bytes captured per run (256 MiB).
        bytes = 268_435_456,
        /// Captures per worker.
        captures = 3,
    }
    /// S5: exit-to-wake latency.
    S5 {
        /// Children, one after another.
        runs = 500,
    }
    /// S6: staggered exits.
    S6 {
        /// Children.
        n = 500,
        /// Milliseconds from the release to the first exit.
        delay_ms = 200,
        /// Milliseconds over which the exits are spread.
        stagger_ms = 2000,
    }
    /// S7: concurrent spawn + wait (`s7.rs`); exactly one of `tasks` and
    /// `threads` is above 0.
    S7 {
        /// Operations in all.
        n = 2000,
        /// Tasks on the multi-thread runtime.
        tasks = 8,
        /// OS threads outside the runtime.
        threads = 0,
    }
}

impl Case {
    /// The case as `key=value` arguments, keys in alphabetical order; also
    /// the label that tells a case from its siblings in the report.
    pub fn to_args(self) -> Vec<String> {
        self.pairs()
            .into_iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect()
    }

    /// The number of children (or operations) of a scenario that has one.
    pub fn n(&self) -> Option<u64> {
        match self {
            Case::S1(S1 { n }) | Case::S2(S2 { n, .. }) | Case::S3(S3 { n, .. }) => Some(*n),
            Case::S6(S6 { n, .. }) | Case::S7(S7 { n, .. }) => Some(*n),
            Case::S4(_) | Case::S5(_) => None,
        }
    }

    /// The same case with `n` children (for runs with none, whose fixed
    /// costs are subtracted); unchanged for a scenario without `n`.
    pub fn with_n(mut self, n: u64) -> Case {
        if self.n().is_some() {
            self.set("n", n).expect("the scenario has n");
        }
        self
    }
}

/// How a worker runs its case, besides the case's own parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerOptions {
    /// How many `/bin/true` to spawn and wait before measuring, so that
    /// one-time set-up (runtime threads, signal handlers, reaper threads,
    /// lazy statics) is outside the figures. The strace runs use 0, so that
    /// every call counted belongs to a measured child.
    pub warmup: u64,
    /// Deny `pidfd_open` with seccomp before anything else (S6, for the
    /// libraries whose own SIGCHLD fallback is measured).
    pub deny_pidfd: bool,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            warmup: 5,
            deny_pidfd: false,
        }
    }
}

impl WorkerOptions {
    /// The options that differ from the defaults, as `key=value` arguments.
    pub fn to_args(self) -> Vec<String> {
        let defaults = WorkerOptions::default();
        let mut args = Vec::new();
        if self.deny_pidfd != defaults.deny_pidfd {
            args.push(format!("deny_pidfd={}", u64::from(self.deny_pidfd)));
        }
        if self.warmup != defaults.warmup {
            args.push(format!("warmup={}", self.warmup));
        }
        args
    }
}

/// A worker's command line after `<lib> <scenario>`: its options and its
/// case, `key=value` each.
pub fn parse_worker_args(
    scenario: Scenario,
    args: &[String],
) -> Result<(Case, WorkerOptions), String> {
    let mut options = WorkerOptions::default();
    let mut case = Case::defaults(scenario);
    for (key, value) in key_values(args)? {
        match key {
            "warmup" => options.warmup = value,
            "deny_pidfd" => options.deny_pidfd = value != 0,
            _ => case.set(key, value)?,
        }
    }
    Ok((case, options))
}

fn key_values(args: &[String]) -> Result<Vec<(&str, u64)>, String> {
    args.iter()
        .map(|arg| {
            let (key, value) = arg
                .split_once('=')
                .ok_or_else(|| format!("expected key=value, got {arg:?}"))?;
            let value = value
                .parse()
                .map_err(|e| format!("bad value in {arg:?}: {e}"))?;
            Ok((key, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_full_run_sizes_are_the_defaults() {
        assert_eq!(
            Case::defaults(Scenario::S4).to_args(),
            ["bytes=268435456", "captures=3"]
        );
        assert_eq!(
            Case::defaults(Scenario::S6).to_args(),
            ["delay_ms=200", "n=500", "stagger_ms=2000"]
        );
    }

    #[test]
    fn worker_arguments_round_trip() {
        let case = Case::S2(S2 { n: 40, inflight: 8 });
        let options = WorkerOptions {
            warmup: 0,
            deny_pidfd: true,
        };
        let args: Vec<String> = case
            .to_args()
            .into_iter()
            .chain(options.to_args())
            .collect();
        assert_eq!(args, ["inflight=8", "n=40", "deny_pidfd=1", "warmup=0"]);
        assert_eq!(parse_worker_args(Scenario::S2, &args), Ok((case, options)));
        assert_eq!(WorkerOptions::default().to_args(), Vec::<String>::new());
    }

    #[test]
    fn a_key_the_scenario_lacks_is_an_error() {
        let parse = |scenario, arg: &str| parse_worker_args(scenario, &[arg.to_owned()]);
        let err = parse(Scenario::S5, "n=3").unwrap_err();
        assert!(err.contains("S5 has no parameter \"n\""), "{err}");
        assert!(parse(Scenario::S1, "n").is_err());
        assert!(parse(Scenario::S1, "n=x").is_err());
        assert_eq!(
            parse(Scenario::S5, "runs=3"),
            Ok((Case::S5(S5 { runs: 3 }), WorkerOptions::default()))
        );
    }

    #[test]
    fn with_n_changes_only_the_count() {
        let case = Case::S6(S6 {
            n: 250,
            delay_ms: 100,
            stagger_ms: 1000,
        });
        assert_eq!(
            case.with_n(0),
            Case::S6(S6 {
                n: 0,
                delay_ms: 100,
                stagger_ms: 1000
            })
        );
        assert_eq!(case.n(), Some(250));
        assert_eq!(Case::defaults(Scenario::S5).with_n(0).n(), None);
    }
}
