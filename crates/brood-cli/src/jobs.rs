//! Where jobs come from: units of input grouped into jobs (`-N`, `-n`,
//! `-X`, `-m`), numbered, expanded through the template, keyed, and kept if
//! their key is in this brood's shard (`--shard`) and not to be skipped
//! (`--resume`); or a fixed list (the demo, `--retry-failed`).
//!
//! Jobs are numbered (`{#}`, `seq`) by their place in the whole input,
//! before the shard is cut: job 7 is job 7 in whichever shard it falls, so
//! a template that uses `{#}` expands, and is keyed, the same way in every
//! shard.
//!
//! Jobs are made lazily, one when the scheduler asks, so a product of
//! large sources is never held whole (`--shuf` excepted, which must see
//! every job to shuffle them).

use crate::combine::{Combination, Unit};
use crate::inputs::Record;
use crate::jobkey::JobKey;
use crate::shard::Shard;
use crate::template::Template;
use std::collections::{HashSet, VecDeque};
use std::ffi::OsString;
use std::io;
use std::sync::Arc;
use tokio::sync::mpsc;

/// One job to run.
#[derive(Clone, Debug)]
pub struct JobSpec {
    /// Job number, from 1, in run order.
    pub seq: u64,
    /// The job's arguments ({1} .. {n}).
    pub args: Vec<Vec<u8>>,
    /// What to execute; never empty. `{%}` is still unexpanded if the
    /// template uses it (see [`JobSpec::argv_for_slot`]).
    pub argv: Vec<OsString>,
    /// The content key (see [`crate::jobkey`]).
    pub key: JobKey,
}

impl JobSpec {
    /// The arguments joined with spaces: `{}`, the tag and the job log's
    /// `input`.
    pub fn input(&self) -> Vec<u8> {
        self.args.join(&b' ')
    }

    /// The argv to run in `slot`.
    pub fn argv_for_slot(&self, template: Option<&Template>, slot: u64) -> Vec<OsString> {
        match template {
            Some(t) if t.uses_slot() => t.expand(&self.args, self.seq, Some(slot)),
            _ => self.argv.clone(),
        }
    }
}

/// How units become one job's arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grouping {
    /// One unit per job.
    One,
    /// `-N n`/`-n n`: n units per job; 0 reads one unit and passes none.
    Exactly(usize),
    /// `-X`/`-m`: as many as fit in `max_chars` bytes of argv, spread
    /// evenly over the job slots.
    Fit {
        /// The argv byte budget.
        max_chars: usize,
        /// Job slots to spread over.
        slots: usize,
    },
}

/// Units of input.
pub enum Units {
    /// Sources read whole and combined.
    Combined(Combination),
    /// A lone stdin source, as it arrives.
    Stream(mpsc::UnboundedReceiver<io::Result<Record>>),
    /// Already grouped job arguments (`--shuf`).
    Grouped(VecDeque<Vec<Vec<u8>>>),
}

impl Units {
    async fn next(&mut self) -> Option<io::Result<Unit>> {
        match self {
            Units::Combined(c) => c.next().map(Ok),
            Units::Stream(rx) => rx.recv().await,
            Units::Grouped(_) => unreachable!("grouped units are taken whole"),
        }
    }
}

/// The jobs of a run.
pub struct JobSource {
    template: Option<Arc<Template>>,
    units: Units,
    grouping: Grouping,
    /// Jobs per unit count for `Fit`, fixed at the start.
    per_fit_job: usize,
    next_seq: u64,
    /// Keys to skip (`--resume`, `--resume-failed`).
    skip: HashSet<JobKey>,
    /// Jobs skipped so far.
    pub skipped: usize,
    /// The shard whose jobs are run (all of them without `--shard`).
    shard: Shard,
    /// Jobs left to the other shards so far.
    pub other_shards: usize,
    /// A fixed list (the demo, `--retry-failed`).
    fixed: Option<VecDeque<JobSpec>>,
    total: Option<usize>,
    made: usize,
    exhausted: bool,
    /// A unit that did not fit the last `-X` job.
    pending: Option<Unit>,
}

impl JobSource {
    /// Jobs from `units` through `template`: those of `shard`, less the
    /// ones whose key is in `skip`.
    pub fn new(
        template: Arc<Template>,
        units: Units,
        grouping: Grouping,
        skip: HashSet<JobKey>,
        shard: Shard,
    ) -> JobSource {
        let (total, per_fit_job) = match (&units, grouping) {
            (Units::Combined(c), Grouping::One) => (Some(c.remaining()), 0),
            (Units::Combined(c), Grouping::Exactly(n)) => {
                (Some(c.remaining().div_ceil(n.max(1))), 0)
            }
            (Units::Combined(c), Grouping::Fit { slots, .. }) => {
                (None, c.remaining().div_ceil(slots.max(1)).max(1))
            }
            (Units::Grouped(g), _) => (Some(g.len()), 0),
            (Units::Stream(_), _) => (None, usize::MAX),
        };
        // Which jobs fall in a shard is known only once each is keyed; the
        // total is then counted as they come (see `prescan`).
        let total = total.filter(|_| shard == Shard::ALL);
        JobSource {
            template: Some(template),
            units,
            grouping,
            per_fit_job,
            next_seq: 1,
            skip,
            skipped: 0,
            shard,
            other_shards: 0,
            fixed: None,
            total,
            made: 0,
            exhausted: false,
            pending: None,
        }
    }

    /// A fixed list of jobs.
    pub fn fixed(jobs: Vec<JobSpec>) -> JobSource {
        JobSource {
            template: None,
            units: Units::Grouped(VecDeque::new()),
            grouping: Grouping::One,
            per_fit_job: 0,
            next_seq: 1,
            skip: HashSet::new(),
            skipped: 0,
            shard: Shard::ALL,
            other_shards: 0,
            total: Some(jobs.len()),
            fixed: Some(jobs.into()),
            made: 0,
            exhausted: false,
            pending: None,
        }
    }

    /// The template, if jobs come from one.
    pub fn template(&self) -> Option<&Template> {
        self.template.as_deref()
    }

    /// Groups every remaining job's arguments and shuffles them (`--shuf`).
    pub async fn shuffle(&mut self) -> io::Result<()> {
        let mut all = Vec::new();
        while let Some(args) = self.next_args().await {
            all.push(args?);
        }
        fastrand::shuffle(&mut all);
        self.total = Some(all.len()).filter(|_| self.shard == Shard::ALL);
        self.units = Units::Grouped(all.into());
        Ok(())
    }

    /// Makes every remaining job now, so that the total is known before
    /// the first one starts (`--halt N%` under `--shard`: the percentage is
    /// of this shard's jobs). The jobs are held as a fixed list.
    pub async fn prescan(&mut self) -> io::Result<()> {
        let mut jobs = VecDeque::new();
        while let Some(job) = self.next().await {
            jobs.push_back(job?);
        }
        self.fixed = Some(jobs);
        self.exhausted = false;
        Ok(())
    }

    /// One job's arguments; `None` at the end of input.
    async fn next_args(&mut self) -> Option<io::Result<Vec<Vec<u8>>>> {
        if let Units::Grouped(g) = &mut self.units {
            return g.pop_front().map(Ok);
        }
        let want = match self.grouping {
            Grouping::One => 1,
            Grouping::Exactly(n) => n.max(1),
            Grouping::Fit { .. } => self.per_fit_job,
        };
        let mut args = Vec::new();
        let mut units = 0;
        let mut chars = 0;
        while units < want {
            let next = match self.pending.take() {
                Some(u) => Some(Ok(u)),
                None => self.units.next().await,
            };
            let unit = match next {
                None => break,
                Some(Err(e)) => return Some(Err(e)),
                Some(Ok(u)) => u,
            };
            if let Grouping::Fit { max_chars, .. } = self.grouping {
                let cost: usize = unit.iter().map(|a| a.len() + 1).sum();
                chars += cost;
                if units > 0 && chars > max_chars {
                    // Does not fit: it starts the next job.
                    self.pending = Some(unit);
                    break;
                }
            }
            units += 1;
            if self.grouping != Grouping::Exactly(0) {
                args.extend(unit);
            }
        }
        (units > 0).then_some(Ok(args))
    }

    /// The next job to run; `None` at the end. Jobs whose key is to be
    /// skipped are counted in `skipped` and not returned.
    pub async fn next(&mut self) -> Option<io::Result<JobSpec>> {
        if self.exhausted {
            return None;
        }
        if let Some(fixed) = &mut self.fixed {
            let job = fixed.pop_front();
            self.exhausted = job.is_none();
            return job.map(Ok);
        }
        loop {
            let args = match self.next_args().await {
                None => {
                    self.exhausted = true;
                    self.total = Some(self.made + self.skipped);
                    return None;
                }
                Some(Err(e)) => return Some(Err(e)),
                Some(Ok(args)) => args,
            };
            let seq = self.next_seq;
            self.next_seq += 1;
            let template = self.template.as_ref().expect("not a fixed list");
            let argv = template.expand(&args, seq, None);
            let key = JobKey::of_argv(&argv);
            if !self.shard.contains(&key) {
                self.other_shards += 1;
                continue;
            }
            if self.skip.contains(&key) {
                self.skipped += 1;
                continue;
            }
            self.made += 1;
            return Some(Ok(JobSpec {
                seq,
                args,
                argv,
                key,
            }));
        }
    }

    /// The number of jobs in all (skipped ones included), once known.
    pub fn total(&self) -> Option<usize> {
        self.total
    }
}
