//! Shards: one run split over the workers of a cluster engine, each brood
//! running only the jobs whose key falls in its own shard.
//!
//! brood does not schedule across machines. A Slurm job array, a set of
//! `srun` steps, a Kubernetes Indexed Job or an HTCondor cluster already
//! starts N copies of a command and gives each an index; `brood run --shard`
//! turns that index into a disjoint slice of the jobs, so that the N copies
//! together run every job exactly once.
//!
//! # The job key
//!
//! Shards are cut from the job's content key ([`crate::jobkey`]), the one
//! `--resume` and the job log use: it depends on the expanded command alone,
//! not on the job's position in the input, the machine or the run, so
//! reordering or inserting inputs leaves every other job's shard unchanged.
//!
//! # The shard of a job
//!
//! The first 8 bytes of the digest, read as a big-endian `u64`, modulo the
//! shard count N. Shards are numbered from 0: `--shard 0/4` .. `--shard 3/4`.
//! SHA-256 spreads keys evenly; the bias of reducing a 64-bit value modulo N
//! is below N/2^64, nothing for any real N.
//!
//! # `--shard auto`
//!
//! Reads the index and the count from the engine's environment. An empty
//! variable counts as unset. Anything missing or inconsistent is a one-line
//! error that names the variable; with no engine variables at all, `auto` is
//! an error rather than "run everything".
//!
//! - **Slurm job arrays** (`sbatch --array=...`): `SLURM_ARRAY_TASK_ID`, and
//!   `SLURM_ARRAY_TASK_COUNT` or `SLURM_ARRAY_TASK_MIN`/`MAX` (with
//!   `SLURM_ARRAY_TASK_STEP`). Array ids need not start at 0: the shard is
//!   `(ID - MIN) / STEP` of `COUNT`. Slurm sets all five (22.05, checked by
//!   `scripts/slurm-e2e --smoke`), and brood checks them against each other:
//!   - `ID` must lie in `MIN..=MAX` on the grid `MIN + k * STEP`;
//!   - `COUNT` must equal the number of grid points `(MAX - MIN) / STEP + 1`.
//!     A list such as `--array=1,5,7` fails this (COUNT 3, but 1..=7 with
//!     STEP 1 spans 7 ids): its ids do not map onto `0..COUNT`, and a guess
//!     would lose jobs or run them twice. Slurm reports STEP 1 for every list,
//!     even `0,2,4,6`, so a stepped range is recognised only from its STEP.
//!   - Without `COUNT` (Slurm before it existed), `MIN..=MAX` is taken as a
//!     dense range, and only with a STEP of 1: nothing would confirm that a
//!     stepped range has no gaps.
//!   - Without `MIN`/`MAX`, ids must run `0..COUNT` with a STEP of 1.
//! - **Slurm steps** (`srun -n P brood run ...`): `SLURM_PROCID` of
//!   `SLURM_NTASKS`, but only inside a step, which `SLURM_STEP_ID` marks. A
//!   batch script has `SLURM_PROCID=0` and, under `sbatch -n P`,
//!   `SLURM_NTASKS=P` too, without being one of P workers: taking them there
//!   would run one P-th of the jobs and lose the rest.
//! - **Both** (`srun` inside an array task): array task `a` of `A` and step
//!   task `p` of `P` make shard `a * P + p` of `A * P`, so every worker of
//!   every task gets its own slice.
//! - **Kubernetes Indexed Jobs**: `JOB_COMPLETION_INDEX`, with the count from
//!   `--shard-count N` or `BROOD_SHARD_COUNT` (Kubernetes exports no count; set
//!   it to the Job's `completions`). Both given and different is an error.
//! - **HTCondor** exports no index to the job's environment; write it into the
//!   submit file: `arguments = run --shard $(Process)/10 ...` with `queue 10`.
//!
//! A shard count from `--shard-count` or `BROOD_SHARD_COUNT` is also checked
//! against the count Slurm gives: a mismatch is an error. Slurm and Kubernetes
//! variables together are an error too.
//!
//! # `{shard}` in the job log path
//!
//! `--joblog 'log.{shard}.jsonl'` writes shard 2's log to `log.2.jsonl`: every
//! `{shard}` is replaced by the shard index in decimal. Without `--shard`,
//! brood runs the single shard 0 of 1, so `{shard}` becomes `0`.
//!
//! # Caveats
//!
//! - Re-submitting *part* of an array (`sbatch --array=1,3` after tasks 1
//!   and 3 were pre-empted) changes COUNT, MIN and MAX, so `auto` either
//!   fails (a list) or computes other shards (`--array=2` is shard 0 of 1,
//!   which is every job). Give the shard explicitly instead:
//!   `--shard "$SLURM_ARRAY_TASK_ID/4"`, or keep `--shard-count 4` next to
//!   `auto`, which turns the mismatch into an error.
//! - Changing the command changes every key: a resumed run must expand to
//!   the same argv as the first one, byte for byte.
//! - A brood started by one of the jobs inherits the engine's variables; given
//!   `--shard auto` too, it would take the same slice of *its* jobs.

use crate::jobkey::JobKey;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The environment `--shard auto` reads: the process's is
/// `std::env::vars_os().collect()`.
pub type Environment = HashMap<OsString, OsString>;

/// The placeholder in a job log path that becomes the shard index.
pub const SHARD_PLACEHOLDER: &str = "{shard}";

/// The index of the shard `key` falls in, out of `count` (at least 1).
pub fn shard_index(key: &JobKey, count: u64) -> u64 {
    key.shard_hash() % count
}

/// Shard `index` of `count`: the jobs whose key's shard hash is `index`
/// modulo `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shard {
    index: u64,
    count: u64,
}

impl Shard {
    /// The one shard that holds every job: what brood runs without `--shard`.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` of `count`; `index` must be below `count`.
    pub fn new(index: u64, count: u64) -> Result<Shard, ShardError> {
        if count == 0 {
            return Err(ShardError::new("the shard count must be at least 1"));
        }
        if index >= count {
            return Err(ShardError::new(format!(
                "shards are numbered from 0, so {index}/{count} does not exist \
                 (0/{count} .. {}/{count})",
                count - 1
            )));
        }
        Ok(Shard { index, count })
    }

    /// How many shards there are.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether the job with this key belongs to this shard.
    pub fn contains(&self, key: &JobKey) -> bool {
        shard_index(key, self.count) == self.index
    }

    /// `path` with every `{shard}` replaced by this shard's index.
    pub fn expand_path(&self, path: &Path) -> PathBuf {
        let bytes = path.as_os_str().as_bytes();
        let needle = SHARD_PLACEHOLDER.as_bytes();
        let index = self.index.to_string();
        let mut out = Vec::with_capacity(bytes.len());
        let mut rest = bytes;
        while let Some(at) = rest.windows(needle.len()).position(|w| w == needle) {
            out.extend_from_slice(&rest[..at]);
            out.extend_from_slice(index.as_bytes());
            rest = &rest[at + needle.len()..];
        }
        out.extend_from_slice(rest);
        PathBuf::from(OsString::from_vec(out))
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The value of `--shard`: a fixed `I/N`, or `auto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardArg {
    /// `--shard I/N`.
    Fixed(Shard),
    /// `--shard auto`: from the engine's environment.
    Auto,
}

impl FromStr for ShardArg {
    type Err = ShardError;

    /// Parses `I/N` (whole numbers, the index from 0) or `auto`. The message
    /// of an error does not repeat the option's name (clap adds it).
    fn from_str(s: &str) -> Result<ShardArg, ShardError> {
        if s == "auto" {
            return Ok(ShardArg::Auto);
        }
        let (index, count) = s.split_once('/').ok_or_else(|| {
            ShardError::new(format!(
                "expected I/N (e.g. 0/4, from 0) or auto, not {s:?}"
            ))
        })?;
        let number = |part: &str| {
            parse_number(part).ok_or_else(|| {
                ShardError::new(format!(
                    "expected I/N with whole numbers (e.g. 0/4, from 0) or auto, not {s:?}"
                ))
            })
        };
        Ok(ShardArg::Fixed(Shard::new(number(index)?, number(count)?)?))
    }
}

/// Parses the value of `--shard-count`: a whole number, at least 1.
pub fn parse_shard_count(s: &str) -> Result<u64, ShardError> {
    match parse_number(s) {
        Some(0) => Err(ShardError::new("the shard count must be at least 1")),
        Some(n) => Ok(n),
        None => Err(ShardError::new(format!(
            "expected a whole number, not {s:?}"
        ))),
    }
}

/// Decimal digits only: `u64::from_str` would also take `+4`.
fn parse_number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Where a shard came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `--shard I/N`.
    Flag,
    /// A Slurm array task.
    SlurmArray,
    /// A task of an `srun` step.
    SlurmStep,
    /// A task of an `srun` step inside a Slurm array task.
    SlurmArrayStep,
    /// A Kubernetes Indexed Job.
    Kubernetes,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Flag => "--shard",
            Origin::SlurmArray => "Slurm array task",
            Origin::SlurmStep => "Slurm step task",
            Origin::SlurmArrayStep => "Slurm step task in an array task",
            Origin::Kubernetes => "Kubernetes Indexed Job",
        })
    }
}

/// The shard a brood runs, and where it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The shard.
    pub shard: Shard,
    /// Where it came from.
    pub origin: Origin,
}

/// The shard to run: `arg` itself, or for `auto` the one `env` describes.
/// `shard_count` is `--shard-count`; `BROOD_SHARD_COUNT` is read from `env`.
pub fn resolve(
    arg: ShardArg,
    shard_count: Option<u64>,
    env: &Environment,
) -> Result<Resolved, ShardError> {
    match arg {
        ShardArg::Fixed(shard) => match shard_count {
            Some(n) if n != shard.count() => Err(ShardError::new(format!(
                "--shard {shard} and --shard-count {n} disagree"
            ))),
            _ => Ok(Resolved {
                shard,
                origin: Origin::Flag,
            }),
        },
        ShardArg::Auto => Auto::new(env, shard_count)?.resolve(),
    }
}

/// `--shard auto`'s reading of one environment.
struct Auto<'a> {
    env: &'a Environment,
    /// The count from `--shard-count` or `BROOD_SHARD_COUNT`, with the name of
    /// the one it came from.
    given_count: Option<(u64, &'static str)>,
}

const ARRAY_ID: &str = "SLURM_ARRAY_TASK_ID";
const ARRAY_COUNT: &str = "SLURM_ARRAY_TASK_COUNT";
const ARRAY_MIN: &str = "SLURM_ARRAY_TASK_MIN";
const ARRAY_MAX: &str = "SLURM_ARRAY_TASK_MAX";
const ARRAY_STEP: &str = "SLURM_ARRAY_TASK_STEP";
const PROCID: &str = "SLURM_PROCID";
const NTASKS: &str = "SLURM_NTASKS";
const STEP_ID: &str = "SLURM_STEP_ID";
const K8S_INDEX: &str = "JOB_COMPLETION_INDEX";
const COUNT_VAR: &str = "BROOD_SHARD_COUNT";

impl<'a> Auto<'a> {
    fn new(env: &'a Environment, flag: Option<u64>) -> Result<Auto<'a>, ShardError> {
        let mut auto = Auto {
            env,
            given_count: None,
        };
        let from_env = auto.number(COUNT_VAR)?;
        if from_env == Some(0) {
            return Err(auto.error(format!("{COUNT_VAR}=0: the shard count must be at least 1")));
        }
        auto.given_count = match (flag, from_env) {
            (Some(f), Some(e)) if f != e => {
                return Err(auto.error(format!("--shard-count {f} and {COUNT_VAR}={e} disagree")))
            }
            (Some(f), _) => Some((f, "--shard-count")),
            (None, Some(e)) => Some((e, COUNT_VAR)),
            (None, None) => None,
        };
        Ok(auto)
    }

    fn resolve(&self) -> Result<Resolved, ShardError> {
        let array = self.is_set(ARRAY_ID);
        let step = self.is_set(STEP_ID);
        let kubernetes = self.is_set(K8S_INDEX);
        if kubernetes && (array || step) {
            let slurm = if array { ARRAY_ID } else { STEP_ID };
            return Err(self.error(format!(
                "both Slurm ({slurm}) and Kubernetes ({K8S_INDEX}) variables are set; \
                 give --shard I/N"
            )));
        }
        if kubernetes {
            return self.kubernetes();
        }
        let (shard, origin) = match (array, step) {
            (true, false) => (self.slurm_array()?, Origin::SlurmArray),
            (false, true) => (self.slurm_step()?, Origin::SlurmStep),
            (true, true) => {
                let (task, tasks) = self.slurm_array()?;
                let (proc, procs) = self.slurm_step()?;
                let count = tasks
                    .checked_mul(procs)
                    .ok_or_else(|| self.error(format!("{ARRAY_COUNT} times {NTASKS} overflows")))?;
                ((task * procs + proc, count), Origin::SlurmArrayStep)
            }
            (false, false) => return Err(self.nothing_found()),
        };
        let (index, count) = shard;
        if let Some((given, name)) = self.given_count.filter(|&(n, _)| n != count) {
            let hint = if array {
                format!(" (re-submitting part of an array? give --shard \"${ARRAY_ID}/{given}\")")
            } else {
                String::new()
            };
            return Err(self.error(format!(
                "{name} {given} disagrees with the {count} shards of this {origin}{hint}"
            )));
        }
        Ok(Resolved {
            shard: Shard::new(index, count)?,
            origin,
        })
    }

    /// (index, count) of this array task.
    fn slurm_array(&self) -> Result<(u64, u64), ShardError> {
        let id = self.required(ARRAY_ID, "")?;
        let count = self.number(ARRAY_COUNT)?;
        let step = self.number(ARRAY_STEP)?;
        if step == Some(0) {
            return Err(self.error(format!("{ARRAY_STEP}=0 is not a step")));
        }
        let step_is_one = step.is_none_or(|s| s == 1);
        let range = match (self.number(ARRAY_MIN)?, self.number(ARRAY_MAX)?) {
            (Some(min), Some(max)) => Some((min, max)),
            (None, None) => None,
            (Some(_), None) => return Err(self.missing(ARRAY_MAX, &format!("{ARRAY_MIN} is set"))),
            (None, Some(_)) => return Err(self.missing(ARRAY_MIN, &format!("{ARRAY_MAX} is set"))),
        };
        let Some((min, max)) = range else {
            let Some(count) = count else {
                return Err(self.error(format!(
                    "{ARRAY_ID} is set, but neither {ARRAY_COUNT} nor {ARRAY_MIN}/{ARRAY_MAX} is"
                )));
            };
            if count == 0 {
                return Err(self.error(format!("{ARRAY_COUNT}=0: an array has at least one task")));
            }
            if !step_is_one {
                return Err(self.error(format!(
                    "{ARRAY_STEP}={} needs {ARRAY_MIN} and {ARRAY_MAX} to map the ids",
                    self.text(ARRAY_STEP)
                )));
            }
            if id >= count {
                return Err(self.error(format!(
                    "{ARRAY_ID}={id} is not below {ARRAY_COUNT}={count} (without {ARRAY_MIN} \
                     the ids must run from 0)"
                )));
            }
            return Ok((id, count));
        };
        let step = step.unwrap_or(1);
        if min > max {
            return Err(self.error(format!("{ARRAY_MIN}={min} is above {ARRAY_MAX}={max}")));
        }
        if id < min || id > max {
            return Err(self.error(format!(
                "{ARRAY_ID}={id} is outside {ARRAY_MIN}..{ARRAY_MAX} ({min}..{max})"
            )));
        }
        if (id - min) % step != 0 {
            return Err(self.error(format!(
                "{ARRAY_ID}={id} is not {ARRAY_MIN}={min} plus a multiple of {ARRAY_STEP}={step}"
            )));
        }
        let span = (max - min) / step + 1;
        match count {
            Some(count) if count < span => Err(self.error(format!(
                "{ARRAY_COUNT}={count}, but {ARRAY_MIN}..{ARRAY_MAX} ({min}..{max}) with \
                 {ARRAY_STEP} {step} holds {span} ids: the array has gaps (a list such as \
                 --array=1,5,7); use a range, or --shard \"${ARRAY_ID}/N\""
            ))),
            Some(count) if count > span => Err(self.error(format!(
                "{ARRAY_COUNT}={count} is more than the {span} ids {ARRAY_MIN}..{ARRAY_MAX} \
                 ({min}..{max}) with {ARRAY_STEP} {step} can hold"
            ))),
            None if step != 1 => Err(self.error(format!(
                "{ARRAY_STEP}={step} needs {ARRAY_COUNT} to confirm that the range has no gaps"
            ))),
            _ => Ok(((id - min) / step, span)),
        }
    }

    /// (index, count) of this task of an `srun` step.
    fn slurm_step(&self) -> Result<(u64, u64), ShardError> {
        let why = format!("{STEP_ID} is set (an srun step)");
        let proc = self.required(PROCID, &why)?;
        let procs = self.required(NTASKS, &why)?;
        if proc >= procs {
            return Err(self.error(format!("{PROCID}={proc} is not below {NTASKS}={procs}")));
        }
        Ok((proc, procs))
    }

    fn kubernetes(&self) -> Result<Resolved, ShardError> {
        let index = self.required(K8S_INDEX, "")?;
        let Some((count, name)) = self.given_count else {
            return Err(self.error(format!(
                "{K8S_INDEX} is set, but not the shard count: give --shard-count N or set \
                 {COUNT_VAR} (the Job's completions)"
            )));
        };
        if index >= count {
            return Err(self.error(format!(
                "{K8S_INDEX}={index} is not below the shard count {count} ({name})"
            )));
        }
        Ok(Resolved {
            shard: Shard::new(index, count)?,
            origin: Origin::Kubernetes,
        })
    }

    fn nothing_found(&self) -> ShardError {
        let hint = if self.is_set(PROCID) {
            format!(
                "; {PROCID} is set but {STEP_ID} is not, so this is a batch script, not one \
                 of an srun step's tasks"
            )
        } else if let Some((_, name)) = self.given_count {
            format!("; {name} gives the count, but {K8S_INDEX} no index")
        } else {
            String::new()
        };
        self.error(format!(
            "no engine variables ({ARRAY_ID}, {STEP_ID} with {PROCID}/{NTASKS}, or \
             {K8S_INDEX}){hint}; give --shard I/N"
        ))
    }

    fn is_set(&self, name: &str) -> bool {
        self.env
            .get(OsStr::new(name))
            .is_some_and(|v| !v.is_empty())
    }

    fn text(&self, name: &str) -> String {
        self.env
            .get(OsStr::new(name))
            .map(|v| v.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The variable as a whole number; `None` if unset or empty.
    fn number(&self, name: &str) -> Result<Option<u64>, ShardError> {
        if !self.is_set(name) {
            return Ok(None);
        }
        let value = self.env[OsStr::new(name)].to_str().and_then(parse_number);
        match value {
            Some(n) => Ok(Some(n)),
            None => Err(self.error(format!(
                "{name}={:?} is not a whole number",
                self.text(name)
            ))),
        }
    }

    /// The variable as a whole number, which must be set because `why`.
    fn required(&self, name: &str, why: &str) -> Result<u64, ShardError> {
        match self.number(name)? {
            Some(n) => Ok(n),
            None => Err(self.missing(name, why)),
        }
    }

    /// "`because`, but `name` is not set", or just "`name` is not set".
    fn missing(&self, name: &str, because: &str) -> ShardError {
        if because.is_empty() {
            self.error(format!("{name} is not set"))
        } else {
            self.error(format!("{because}, but {name} is not set"))
        }
    }

    fn error(&self, message: String) -> ShardError {
        ShardError::new(format!("--shard auto: {message}"))
    }
}

/// Why a shard could not be parsed or found: one line, naming the option or
/// the variable at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardError {
    message: String,
}

impl ShardError {
    fn new(message: impl Into<String>) -> ShardError {
        ShardError {
            message: message.into(),
        }
    }
}

impl fmt::Display for ShardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ShardError {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn env(vars: &[(&str, &str)]) -> Environment {
        vars.iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    fn auto(vars: &[(&str, &str)]) -> Result<Resolved, ShardError> {
        resolve(ShardArg::Auto, None, &env(vars))
    }

    fn auto_shard(vars: &[(&str, &str)]) -> Shard {
        match auto(vars) {
            Ok(r) => r.shard,
            Err(e) => panic!("{vars:?}: {e}"),
        }
    }

    /// The error's text; it must be one line and name every one of `names`.
    fn auto_error(vars: &[(&str, &str)], names: &[&str]) -> String {
        let message = match auto(vars) {
            Ok(r) => panic!("{vars:?} gave {r:?}, expected an error"),
            Err(e) => e.to_string(),
        };
        assert!(!message.contains('\n'), "{message}");
        for name in names {
            assert!(message.contains(name), "{message:?} does not name {name}");
        }
        message
    }

    fn array(id: u64, count: u64, min: u64, max: u64, step: u64) -> Vec<(String, String)> {
        [
            (ARRAY_ID, id),
            (ARRAY_COUNT, count),
            (ARRAY_MIN, min),
            (ARRAY_MAX, max),
            (ARRAY_STEP, step),
            (PROCID, 0),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn borrowed(vars: &[(String, String)]) -> Vec<(&str, &str)> {
        vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    #[test]
    fn keys_match_sha256_computed_elsewhere() {
        // Reference values from Python's hashlib, over the same byte layout.
        let cases: [(&[&[u8]], &str, u64); 5] = [
            (
                &[],
                "e3b0c44298fc1c149afbf4c8996fb924",
                16406829232824261652,
            ),
            (
                &[b"echo", b"hi"],
                "f90045af254cd1f6169be8a9e3d16893",
                17942417533991440886,
            ),
            (
                &[b"echo hi"],
                "9358d79935463189e4de189a42f80ce1",
                10617473174549705097,
            ),
            (
                &[b"sh", b"-c", b"echo $1", b"sh", b"a b"],
                "b6bd1822c2e0a728ee6f5f1cc0f90384",
                13167707423078655784,
            ),
            (
                &[b"\xff\xfe", b"x"],
                "923ea505e5cf4d7dbb9688d73d806f7b",
                10538041622842527101,
            ),
        ];
        for (argv, hex, hash) in cases {
            let key = JobKey::of_argv(argv.iter().map(|a| OsStr::from_bytes(a)));
            assert_eq!(key.to_string(), hex, "{argv:?}");
            assert_eq!(key.shard_hash(), hash, "{argv:?}");
            assert_eq!(hex.parse::<JobKey>(), Ok(key));
            assert_eq!(hex.to_uppercase().parse::<JobKey>(), Ok(key));
        }
        let echo_hi = JobKey::of_argv(["echo", "hi"]);
        assert_eq!(shard_index(&echo_hi, 4), 2);
        assert_eq!(shard_index(&echo_hi, 7), 4);
        assert!(Shard::new(2, 4).unwrap().contains(&echo_hi));
        assert!(!Shard::new(1, 4).unwrap().contains(&echo_hi));
        assert!(Shard::ALL.contains(&echo_hi));
    }

    #[test]
    fn shard_values_parse_strictly() {
        assert_eq!("auto".parse(), Ok(ShardArg::Auto));
        assert_eq!(
            "0/4".parse(),
            Ok(ShardArg::Fixed(Shard::new(0, 4).unwrap()))
        );
        assert_eq!(
            "3/4".parse(),
            Ok(ShardArg::Fixed(Shard::new(3, 4).unwrap()))
        );
        assert_eq!("0/1".parse(), Ok(ShardArg::Fixed(Shard::ALL)));
        assert_eq!(
            "007/010".parse(),
            Ok(ShardArg::Fixed(Shard::new(7, 10).unwrap()))
        );
        for (bad, says) in [
            ("4/4", "numbered from 0"),
            ("9/4", "0/4 .. 3/4"),
            ("1/0", "at least 1"),
            ("0/0", "at least 1"),
            ("", "I/N"),
            ("1", "I/N"),
            ("AUTO", "I/N"),
            ("+1/4", "whole numbers"),
            ("-1/4", "whole numbers"),
            (" 1/4", "whole numbers"),
            ("1/4 ", "whole numbers"),
            ("1/4/8", "whole numbers"),
            ("1.0/4", "whole numbers"),
            ("1/99999999999999999999", "whole numbers"),
        ] {
            let message = bad.parse::<ShardArg>().unwrap_err().to_string();
            assert!(message.contains(says), "{bad:?}: {message}");
            assert!(!message.contains('\n'));
        }
        assert_eq!(parse_shard_count("12"), Ok(12));
        assert!(parse_shard_count("0")
            .unwrap_err()
            .to_string()
            .contains("at least 1"));
        assert!(parse_shard_count("+3").is_err());
        assert!(parse_shard_count("").is_err());
    }

    #[test]
    fn joblog_paths_take_the_shard_index() {
        let two = Shard::new(2, 4).unwrap();
        assert_eq!(
            two.expand_path(Path::new("log.{shard}.jsonl")),
            Path::new("log.2.jsonl")
        );
        assert_eq!(
            two.expand_path(Path::new("/d/{shard}/log.{shard}.jsonl")),
            Path::new("/d/2/log.2.jsonl")
        );
        assert_eq!(
            two.expand_path(Path::new("log.jsonl")),
            Path::new("log.jsonl")
        );
        assert_eq!(two.expand_path(Path::new("{shard")), Path::new("{shard"));
        assert_eq!(
            Shard::ALL.expand_path(Path::new("log.{shard}")),
            Path::new("log.0")
        );
        let raw = Path::new(OsStr::from_bytes(b"\xff{shard}\xfe"));
        assert_eq!(
            two.expand_path(raw).as_os_str().as_bytes(),
            b"\xff2\xfe",
            "bytes that are not UTF-8 are kept"
        );
    }

    #[test]
    fn fixed_shards_ignore_the_environment_but_check_the_count() {
        let e = env(&[(ARRAY_ID, "3"), (ARRAY_COUNT, "4"), (COUNT_VAR, "9")]);
        let fixed = ShardArg::Fixed(Shard::new(1, 4).unwrap());
        let r = resolve(fixed, None, &e).unwrap();
        assert_eq!(
            (r.shard, r.origin),
            (Shard::new(1, 4).unwrap(), Origin::Flag)
        );
        assert_eq!(resolve(fixed, Some(4), &e).unwrap().shard.index, 1);
        let message = resolve(fixed, Some(5), &e).unwrap_err().to_string();
        assert!(message.contains("--shard 1/4") && message.contains("--shard-count 5"));
    }

    // The environments below are those Slurm 22.05 sets, as `scripts/slurm-e2e
    // --smoke` asserts on a real cluster.

    #[test]
    fn slurm_dense_array() {
        // sbatch --array=0-3
        for id in 0..4 {
            let vars = array(id, 4, 0, 3, 1);
            let r = auto(&borrowed(&vars)).unwrap();
            assert_eq!(
                (r.shard, r.origin),
                (Shard::new(id, 4).unwrap(), Origin::SlurmArray)
            );
        }
        // sbatch --array=1-4: ids need not start at 0.
        for id in 1..5 {
            let vars = array(id, 4, 1, 4, 1);
            assert_eq!(auto_shard(&borrowed(&vars)), Shard::new(id - 1, 4).unwrap());
        }
    }

    #[test]
    fn slurm_stepped_array_with_an_offset() {
        // sbatch --array=3-10:2 gives ids 3 5 7 9, MAX=9, STEP=2, COUNT=4.
        for (k, id) in [3, 5, 7, 9].into_iter().enumerate() {
            let vars = array(id, 4, 3, 9, 2);
            assert_eq!(
                auto_shard(&borrowed(&vars)),
                Shard::new(k as u64, 4).unwrap()
            );
        }
        // A MAX given as the range's end rather than its last id maps the same.
        let vars = array(9, 4, 3, 10, 2);
        assert_eq!(auto_shard(&borrowed(&vars)), Shard::new(3, 4).unwrap());
    }

    #[test]
    fn slurm_list_arrays_are_refused() {
        // sbatch --array=1,5,7: COUNT=3 MIN=1 MAX=7 STEP=1.
        for id in [1, 5, 7] {
            let vars = array(id, 3, 1, 7, 1);
            auto_error(&borrowed(&vars), &[ARRAY_COUNT, "gaps"]);
        }
        // sbatch --array=0,2,4,6: Slurm still says STEP=1.
        let vars = array(2, 4, 0, 6, 1);
        auto_error(&borrowed(&vars), &[ARRAY_COUNT, "gaps"]);
    }

    #[test]
    fn slurm_batch_step_is_not_a_step_shard() {
        // sbatch -n 2, the batch script itself: SLURM_PROCID=0 SLURM_NTASKS=2.
        let message = auto_error(&[(PROCID, "0"), (NTASKS, "2")], &[STEP_ID, PROCID]);
        assert!(message.contains("batch script"), "{message}");
        // ... while an array task's batch script is its array shard.
        let mut vars = array(1, 2, 0, 1, 1);
        vars.push((NTASKS.into(), "2".into()));
        assert_eq!(auto_shard(&borrowed(&vars)), Shard::new(1, 2).unwrap());
    }

    #[test]
    fn slurm_srun_steps() {
        // srun -n 2 inside sbatch -n 2.
        for proc in 0..2 {
            let p = proc.to_string();
            let r = auto(&[(PROCID, &p), (NTASKS, "2"), (STEP_ID, "0")]).unwrap();
            assert_eq!(
                (r.shard, r.origin),
                (Shard::new(proc, 2).unwrap(), Origin::SlurmStep)
            );
        }
        auto_error(
            &[(PROCID, "2"), (NTASKS, "2"), (STEP_ID, "0")],
            &[PROCID, NTASKS],
        );
        auto_error(&[(PROCID, "0"), (STEP_ID, "0")], &[NTASKS, STEP_ID]);
        auto_error(&[(NTASKS, "2"), (STEP_ID, "0")], &[PROCID, STEP_ID]);
    }

    #[test]
    fn slurm_steps_inside_array_tasks_combine() {
        // sbatch --array=0-1 -n 2, then srun -n 2: four workers in all.
        let mut seen = HashSet::new();
        for task in 0..2 {
            for proc in 0..2 {
                let mut vars = array(task, 2, 0, 1, 1);
                vars.retain(|(k, _)| k != PROCID);
                vars.extend([
                    (PROCID.into(), proc.to_string()),
                    (NTASKS.into(), "2".into()),
                    (STEP_ID.into(), "0".into()),
                ]);
                let r = auto(&borrowed(&vars)).unwrap();
                assert_eq!(r.origin, Origin::SlurmArrayStep);
                assert_eq!(r.shard.count(), 4);
                assert!(seen.insert(r.shard.index));
            }
        }
        assert_eq!(seen, (0..4).collect());
    }

    #[test]
    fn slurm_arrays_without_some_variables() {
        // COUNT alone: ids from 0.
        assert_eq!(
            auto_shard(&[(ARRAY_ID, "2"), (ARRAY_COUNT, "3")]),
            Shard::new(2, 3).unwrap()
        );
        auto_error(
            &[(ARRAY_ID, "3"), (ARRAY_COUNT, "3")],
            &[ARRAY_ID, ARRAY_COUNT, ARRAY_MIN],
        );
        auto_error(
            &[(ARRAY_ID, "0"), (ARRAY_COUNT, "0")],
            &[ARRAY_COUNT, "at least one"],
        );
        auto_error(
            &[(ARRAY_ID, "2"), (ARRAY_COUNT, "3"), (ARRAY_STEP, "2")],
            &[ARRAY_STEP, ARRAY_MIN],
        );
        // MIN/MAX alone: a dense range, with a STEP of 1 only.
        assert_eq!(
            auto_shard(&[(ARRAY_ID, "5"), (ARRAY_MIN, "4"), (ARRAY_MAX, "7")]),
            Shard::new(1, 4).unwrap()
        );
        assert_eq!(
            auto_shard(&[
                (ARRAY_ID, "5"),
                (ARRAY_MIN, "4"),
                (ARRAY_MAX, "7"),
                (ARRAY_STEP, "1")
            ]),
            Shard::new(1, 4).unwrap()
        );
        auto_error(
            &[
                (ARRAY_ID, "6"),
                (ARRAY_MIN, "4"),
                (ARRAY_MAX, "8"),
                (ARRAY_STEP, "2"),
            ],
            &[ARRAY_STEP, ARRAY_COUNT],
        );
        // The id alone, or half a range.
        auto_error(&[(ARRAY_ID, "1")], &[ARRAY_ID, ARRAY_COUNT, ARRAY_MIN]);
        auto_error(
            &[(ARRAY_ID, "1"), (ARRAY_MIN, "0")],
            &[ARRAY_MIN, ARRAY_MAX],
        );
        auto_error(
            &[(ARRAY_ID, "1"), (ARRAY_MAX, "3")],
            &[ARRAY_MIN, ARRAY_MAX],
        );
    }

    #[test]
    fn slurm_arrays_that_contradict_themselves() {
        let inconsistent = [
            (array(9, 4, 0, 3, 1), [ARRAY_ID, ARRAY_MIN]), // outside MIN..MAX
            (array(4, 4, 3, 9, 2), [ARRAY_ID, ARRAY_STEP]), // off the grid
            (array(3, 5, 0, 3, 1), [ARRAY_COUNT, "more than"]), // COUNT too big
            (array(3, 4, 3, 0, 1), [ARRAY_MIN, ARRAY_MAX]), // MIN above MAX
            (array(3, 4, 3, 9, 0), [ARRAY_STEP, ARRAY_STEP]), // STEP 0
        ];
        for (vars, names) in inconsistent {
            auto_error(&borrowed(&vars), &names);
        }
    }

    #[test]
    fn variables_that_are_not_numbers_are_named() {
        auto_error(
            &[(ARRAY_ID, "x"), (ARRAY_COUNT, "4")],
            &[ARRAY_ID, "\"x\"", "whole number"],
        );
        auto_error(&[(ARRAY_ID, "1"), (ARRAY_COUNT, "-4")], &[ARRAY_COUNT]);
        auto_error(&[(ARRAY_ID, "1"), (ARRAY_COUNT, "4 ")], &[ARRAY_COUNT]);
        auto_error(&[(K8S_INDEX, "1"), (COUNT_VAR, "four")], &[COUNT_VAR]);
        let mut e = env(&[(ARRAY_COUNT, "4")]);
        e.insert(ARRAY_ID.into(), OsString::from_vec(b"\xff".to_vec()));
        let message = resolve(ShardArg::Auto, None, &e).unwrap_err().to_string();
        assert!(message.contains(ARRAY_ID), "{message}");
    }

    #[test]
    fn empty_variables_count_as_unset() {
        assert_eq!(
            auto_shard(&[
                (ARRAY_ID, "1"),
                (ARRAY_COUNT, "2"),
                (K8S_INDEX, ""),
                (STEP_ID, "")
            ]),
            Shard::new(1, 2).unwrap()
        );
        auto_error(
            &[(ARRAY_ID, ""), (ARRAY_COUNT, "2")],
            &["no engine variables"],
        );
    }

    #[test]
    fn kubernetes_indexed_jobs() {
        let e = env(&[(K8S_INDEX, "2")]);
        let r = resolve(ShardArg::Auto, Some(4), &e).unwrap();
        assert_eq!(
            (r.shard, r.origin),
            (Shard::new(2, 4).unwrap(), Origin::Kubernetes)
        );
        assert_eq!(
            auto_shard(&[(K8S_INDEX, "2"), (COUNT_VAR, "4")]),
            Shard::new(2, 4).unwrap()
        );
        let both = env(&[(K8S_INDEX, "2"), (COUNT_VAR, "4")]);
        assert_eq!(
            resolve(ShardArg::Auto, Some(4), &both)
                .unwrap()
                .shard
                .count(),
            4
        );
        let message = resolve(ShardArg::Auto, Some(5), &both)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("--shard-count 5") && message.contains(COUNT_VAR),
            "{message}"
        );
        auto_error(
            &[(K8S_INDEX, "2")],
            &[K8S_INDEX, COUNT_VAR, "--shard-count"],
        );
        auto_error(
            &[(K8S_INDEX, "4"), (COUNT_VAR, "4")],
            &[K8S_INDEX, COUNT_VAR],
        );
        auto_error(
            &[(K8S_INDEX, "0"), (COUNT_VAR, "0")],
            &[COUNT_VAR, "at least 1"],
        );
    }

    #[test]
    fn engines_together_or_none_are_errors() {
        auto_error(
            &[(ARRAY_ID, "0"), (ARRAY_COUNT, "2"), (K8S_INDEX, "0")],
            &[ARRAY_ID, K8S_INDEX],
        );
        auto_error(
            &[
                (STEP_ID, "0"),
                (PROCID, "0"),
                (NTASKS, "2"),
                (K8S_INDEX, "0"),
            ],
            &[STEP_ID, K8S_INDEX],
        );
        auto_error(&[], &["no engine variables", "--shard I/N"]);
        auto_error(
            &[("SLURM_JOB_ID", "7"), ("HOME", "/root")],
            &["no engine variables"],
        );
        auto_error(&[(COUNT_VAR, "4")], &[COUNT_VAR, K8S_INDEX]);
    }

    #[test]
    fn a_given_count_must_agree_with_slurm() {
        let vars = array(2, 4, 0, 3, 1);
        let e: Environment = borrowed(&vars)
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        assert_eq!(resolve(ShardArg::Auto, Some(4), &e).unwrap().shard.index, 2);
        // Re-submitting only task 2 of an array of four: shard 0 of 1 would run
        // every job; a kept --shard-count turns that into an error.
        let vars = array(2, 1, 2, 2, 1);
        let e: Environment = borrowed(&vars)
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let message = resolve(ShardArg::Auto, Some(4), &e)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("--shard-count 4") && message.contains(ARRAY_ID),
            "{message}"
        );
    }

    #[test]
    fn keys_spread_evenly() {
        let mut counts = [0u32; 4];
        for i in 0..10_000 {
            let key = JobKey::of_argv(["process".to_string(), format!("input-{i}")]);
            counts[shard_index(&key, 4) as usize] += 1;
        }
        // Fixed keys, so this is deterministic; a bad hash or a wrong byte
        // order over these inputs would leave shards empty or doubled.
        for count in counts {
            assert!((2_250..=2_750).contains(&count), "{counts:?}");
        }
    }

    proptest! {
        /// Whatever the jobs (the same command may come twice) and the count,
        /// selecting each shard's jobs as `brood run --shard` does, and putting
        /// the N selections together, gives every job exactly once.
        #[test]
        fn shards_partition_every_job_list(
            argvs in prop::collection::vec(
                prop::collection::vec(prop::collection::vec(any::<u8>(), 0..12), 0..5),
                0..200,
            ),
            count in 1u64..64,
        ) {
            let keys: Vec<JobKey> = argvs
                .iter()
                .map(|argv| JobKey::of_argv(argv.iter().map(|a| OsStr::from_bytes(a))))
                .collect();
            let mut selected: Vec<usize> = (0..count)
                .flat_map(|i| {
                    let shard = Shard::new(i, count).unwrap();
                    keys.iter()
                        .enumerate()
                        .filter(move |(_, key)| shard.contains(key))
                        .map(|(position, _)| position)
                })
                .collect();
            selected.sort_unstable();
            prop_assert_eq!(selected, (0..keys.len()).collect::<Vec<_>>());
        }

        /// The same over raw keys, with counts up to u64::MAX.
        #[test]
        fn shards_partition_any_keys(
            keys in prop::collection::vec(any::<[u8; 16]>(), 0..500),
            count in 1u64..=u64::MAX,
        ) {
            for bytes in keys {
                let key = JobKey::from_bytes(bytes);
                let index = shard_index(&key, count);
                prop_assert!(index < count);
                prop_assert!(Shard::new(index, count).unwrap().contains(&key));
                // Its neighbours do not hold it.
                if count > 1 {
                    let next = Shard::new((index + 1) % count, count).unwrap();
                    prop_assert!(!next.contains(&key));
                }
            }
        }

        /// Every task of any dense or stepped Slurm array (and of any srun step
        /// inside it) gets its own shard, and together they are 0..N.
        #[test]
        fn slurm_arrays_map_onto_every_shard_once(
            min in 0u64..5000,
            step in 1u64..6,
            tasks in 1u64..40,
            max_slack in 0u64..6,
            procs in 1u64..5,
        ) {
            let max = min + (tasks - 1) * step + max_slack % step;
            let mut seen = HashSet::new();
            for k in 0..tasks {
                let id = min + k * step;
                for proc in 0..procs {
                    let mut vars = array(id, tasks, min, max, step);
                    if procs > 1 {
                        vars.retain(|(name, _)| name != PROCID);
                        vars.extend([
                            (PROCID.into(), proc.to_string()),
                            (NTASKS.into(), procs.to_string()),
                            (STEP_ID.into(), "0".into()),
                        ]);
                    }
                    let shard = auto_shard(&borrowed(&vars));
                    prop_assert_eq!(shard.count(), tasks * procs);
                    prop_assert!(seen.insert(shard.index), "shard {} twice", shard);
                }
            }
            prop_assert_eq!(seen.len() as u64, tasks * procs);
        }
    }
}
