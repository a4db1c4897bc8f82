//! [`SpawnPlan`]: a child described the way `std::process::Command`
//! describes it, prepared for brood's own spawn.
//!
//! Preparing does every allocation and every lookup the child would
//! otherwise need (argv, the complete environment, the `PATH` candidates, the
//! standard streams' descriptors), so that the child between clone and exec
//! only makes system calls.
//!
//! Equivalence with std is the contract. Where std's behaviour depends on
//! which of its two paths it takes (`posix_spawnp`, or fork and `execvp`
//! when a uid or gid is set, or `PATH` changed for a bare program name), the
//! plan works out which path std would take and reproduces it:
//!
//! | | std's `posix_spawnp` path | std's fork path |
//! | --- | --- | --- |
//! | `PATH` searched | ours | the child's |
//! | glibc's internal signals (32, 33) | ignored in the child | as inherited |
//!
//! One difference is deliberate: on its fork path std (through glibc's
//! `execvp`) runs a file that fails with `ENOEXEC` (an executable text file
//! without `#!`) with `/bin/sh`. brood runs no shell: that exec fails with
//! `ENOEXEC` on both paths, as it does on std's usual `posix_spawnp` path.
//!
//! Owns: [`SpawnPlan`], [`StdioSpec`], [`SpawnedChild`]. Calls: `std_shape`,
//! `sys::spawn`, `sys::fd`.

use crate::sys::spawn::{self as sys_spawn, search, CStringArray, ChildImage, Choice, Support};
use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub(crate) use crate::sys::spawn::Vehicle;

/// One standard stream of the child.
#[derive(Debug)]
pub(crate) enum StdioSpec<'a> {
    /// Ours (std's default for `spawn`).
    Inherit,
    /// `/dev/null`, opened read-only for stdin and write-only otherwise.
    Null,
    /// A new pipe; the other end is returned with the child.
    Piped,
    /// A descriptor to `dup2` (it loses close-on-exec there, as with std).
    Fd(BorrowedFd<'a>),
}

/// Environment changes, as std records them: either on top of ours, or
/// (after `env_clear`) on top of nothing.
#[derive(Debug, Default, Clone)]
struct EnvChanges {
    clear: bool,
    /// `Some` sets, `None` removes. Sorted by key: a changed environment is
    /// passed in key order, as std passes it.
    vars: BTreeMap<OsString, Option<OsString>>,
    /// `PATH` was set or removed.
    saw_path: bool,
}

impl EnvChanges {
    fn is_unchanged(&self) -> bool {
        !self.clear && self.vars.is_empty()
    }

    /// std's rule for "the child's `PATH` may differ from ours".
    fn changed_path(&self) -> bool {
        self.saw_path || self.clear
    }
}

/// A child to spawn with brood's own spawn. See the module documentation.
#[derive(Debug)]
pub(crate) struct SpawnPlan<'a> {
    program: OsString,
    arg0: Option<OsString>,
    args: Vec<OsString>,
    env: EnvChanges,
    cwd: Option<PathBuf>,
    uid: Option<u32>,
    gid: Option<u32>,
    pgroup: Option<i32>,
    stdio: [StdioSpec<'a>; 3],
    /// See `ChildImage::pause`.
    #[cfg(test)]
    pub(crate) pause: Option<(std::os::fd::RawFd, std::os::fd::RawFd)>,
}

/// A spawned child and our ends of its pipes.
#[derive(Debug)]
pub(crate) struct SpawnedChild {
    pub(crate) pid: u32,
    /// See `sys::spawn::Spawned::pidfd`.
    pub(crate) pidfd: Option<OwnedFd>,
    pub(crate) stdin: Option<OwnedFd>,
    pub(crate) stdout: Option<OwnedFd>,
    pub(crate) stderr: Option<OwnedFd>,
    /// How it was made, for the tests.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) vehicle: Vehicle,
}

/// A plan turned into what the child needs.
struct Prepared {
    image: ChildImage,
    /// Descriptors the child `dup2`s from that we opened for it (pipe ends,
    /// copies moved above 2). Closed once the child is spawned.
    _for_child: Vec<OwnedFd>,
    ours: [Option<OwnedFd>; 3],
}

fn nul_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "nul byte found in provided data",
    )
}

fn cstring(bytes: impl Into<Vec<u8>>) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| nul_error())
}

impl<'a> SpawnPlan<'a> {
    /// A plan to run `program`, with std's defaults: no arguments, our
    /// environment, directory, user and process group, inherited streams.
    pub(crate) fn new(program: impl AsRef<OsStr>) -> Self {
        SpawnPlan {
            program: program.as_ref().to_owned(),
            arg0: None,
            args: Vec::new(),
            env: EnvChanges::default(),
            cwd: None,
            uid: None,
            gid: None,
            pgroup: None,
            stdio: [StdioSpec::Inherit, StdioSpec::Inherit, StdioSpec::Inherit],
            #[cfg(test)]
            pause: None,
        }
    }

    /// Spawns the plan, in the cgroup whose directory `cgroup` is open, if
    /// any, with clone3 where it works and fork otherwise.
    pub(crate) fn spawn(&self, cgroup: Option<BorrowedFd<'_>>) -> io::Result<SpawnedChild> {
        self.spawn_with(cgroup, &sys_spawn::SUPPORT, Choice::Auto)
    }

    /// [`SpawnPlan::spawn`] with an explicit support record and vehicle
    /// choice, for tests and measurements.
    pub(crate) fn spawn_with(
        &self,
        cgroup: Option<BorrowedFd<'_>>,
        support: &Support,
        choice: Choice,
    ) -> io::Result<SpawnedChild> {
        let Prepared {
            image,
            _for_child,
            ours: [stdin, stdout, stderr],
        } = self.prepare()?;
        let spawned = sys_spawn::spawn(&image, cgroup, support, choice)?;
        // `_for_child` (our copies of the child's ends) closes here, so that
        // the child alone holds the pipes' far ends, as with std.
        Ok(SpawnedChild {
            pid: spawned.pid,
            pidfd: spawned.pidfd,
            stdin,
            stdout,
            stderr,
            vehicle: spawned.vehicle,
        })
    }

    /// Whether std would take its `posix_spawnp` path for these options
    /// (with a glibc of 2.29 or later, as any supported distribution has).
    fn std_would_posix_spawn(&self) -> bool {
        let program_is_path = self.program.as_bytes().contains(&b'/');
        // std forks when PATH may have changed for a bare name, since then
        // it must search the child's PATH with execvp.
        let bare_name_in_changed_path = self.env.changed_path() && !program_is_path;
        self.uid.is_none() && self.gid.is_none() && !bare_name_in_changed_path
    }

    fn prepare(&self) -> io::Result<Prepared> {
        let program = cstring(self.program.as_bytes())?;
        let mut argv = CStringArray::with_capacity(self.args.len() + 1);
        argv.push(match &self.arg0 {
            Some(arg0) => cstring(arg0.as_bytes())?,
            None => program.clone(),
        });
        for arg in &self.args {
            argv.push(cstring(arg.as_bytes())?);
        }
        let cwd = match &self.cwd {
            Some(dir) => Some(cstring(dir.as_os_str().as_bytes())?),
            None => None,
        };
        let (envp, child_path) = self.environment()?;

        let posix_spawn = self.std_would_posix_spawn();
        let search_path = if posix_spawn {
            // posix_spawnp reads PATH from our environment in the child.
            std::env::var_os("PATH")
        } else {
            child_path
        };
        let (candidates, direct, no_candidate_errno) =
            candidates(program.as_bytes(), search_path.as_deref())?;

        let mut for_child = Vec::new();
        let mut ours = [None, None, None];
        let mut sources = [None, None, None];
        for (index, spec) in self.stdio.iter().enumerate() {
            let readable = index == 0;
            let theirs: Option<OwnedFd> = match spec {
                StdioSpec::Inherit => None,
                StdioSpec::Null => {
                    // Kept open for every spawn, and above 2 already.
                    sources[index] = Some(crate::sys::fd::dev_null(!readable)?.as_raw_fd());
                    None
                }
                StdioSpec::Piped => {
                    let (read, write) = crate::sys::fd::cloexec_pipe()?;
                    let (mine, theirs) = if readable {
                        (write, read)
                    } else {
                        (read, write)
                    };
                    ours[index] = Some(mine);
                    Some(theirs)
                }
                StdioSpec::Fd(fd) if fd.as_raw_fd() > 2 => {
                    sources[index] = Some(fd.as_raw_fd());
                    None
                }
                // A source among 0-2 could be overwritten by an earlier
                // dup2 (say, stdout to our stderr and stderr to our
                // stdout): like std, use a copy above 2 (close-on-exec).
                StdioSpec::Fd(fd) => Some(fd.try_clone_to_owned()?),
            };
            if let Some(mut fd) = theirs {
                // Ours to open, so it may have landed on 0-2 if one of
                // those is closed in this process: move it up as well.
                if fd.as_raw_fd() <= 2 {
                    fd = fd.as_fd().try_clone_to_owned()?;
                }
                sources[index] = Some(fd.as_raw_fd());
                for_child.push(fd);
            }
        }

        let image = ChildImage {
            candidates,
            direct,
            no_candidate_errno,
            argv,
            envp,
            ignore_internal_signals: cfg!(target_env = "gnu") && posix_spawn,
            stdio: sources,
            gid: self.gid,
            uid: self.uid,
            cwd,
            pgroup: self.pgroup,
            #[cfg(test)]
            pause: self.pause,
        };
        Ok(Prepared {
            image,
            _for_child: for_child,
            ours,
        })
    }

    /// The child's complete environment as `KEY=VALUE` strings, and its
    /// `PATH`.
    ///
    /// Unchanged, it is ours, in our order. Changed, it is built as std
    /// builds it: ours (unless cleared) with the changes applied, in key
    /// order.
    fn environment(&self) -> io::Result<(CStringArray, Option<OsString>)> {
        let entry = |key: &OsStr, value: &OsStr| {
            let mut bytes = Vec::with_capacity(key.len() + value.len() + 2);
            bytes.extend_from_slice(key.as_bytes());
            bytes.push(b'=');
            bytes.extend_from_slice(value.as_bytes());
            cstring(bytes)
        };
        if self.env.is_unchanged() {
            // A snapshot through std, which reads `environ` under its lock,
            // so that a concurrent std::env::set_var cannot free what the
            // child reads.
            let vars: Vec<(OsString, OsString)> = std::env::vars_os().collect();
            let mut envp = CStringArray::with_capacity(vars.len());
            let mut path = None;
            for (key, value) in vars {
                envp.push(entry(&key, &value)?);
                if key == "PATH" {
                    path = Some(value);
                }
            }
            return Ok((envp, path));
        }
        let mut map = BTreeMap::new();
        if !self.env.clear {
            map.extend(std::env::vars_os());
        }
        for (key, value) in &self.env.vars {
            match value {
                Some(value) => map.insert(key.clone(), value.clone()),
                None => map.remove(key),
            };
        }
        let mut envp = CStringArray::with_capacity(map.len());
        for (key, value) in &map {
            envp.push(entry(key, value)?);
        }
        let path = map.remove(OsStr::new("PATH"));
        Ok((envp, path))
    }
}

/// The builder, as std's: only the tests build plans by hand (brood reads
/// them from std commands, [`SpawnPlan::from_std`]).
#[cfg(test)]
impl<'a> SpawnPlan<'a> {
    /// As `Command::arg`.
    pub(crate) fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// As `CommandExt::arg0`.
    pub(crate) fn arg0(&mut self, arg0: impl AsRef<OsStr>) -> &mut Self {
        self.arg0 = Some(arg0.as_ref().to_owned());
        self
    }

    /// As `Command::env`.
    pub(crate) fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Self {
        let key = key.as_ref();
        self.env.saw_path |= key == "PATH";
        self.env
            .vars
            .insert(key.to_owned(), Some(value.as_ref().to_owned()));
        self
    }

    /// As `Command::env_remove`.
    pub(crate) fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Self {
        let key = key.as_ref();
        self.env.saw_path |= key == "PATH";
        if self.env.clear {
            self.env.vars.remove(key);
        } else {
            self.env.vars.insert(key.to_owned(), None);
        }
        self
    }

    /// As `Command::env_clear`.
    pub(crate) fn env_clear(&mut self) -> &mut Self {
        self.env.clear = true;
        self.env.vars.clear();
        self
    }

    /// As `Command::current_dir`.
    pub(crate) fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Self {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// As `CommandExt::uid`.
    pub(crate) fn uid(&mut self, uid: u32) -> &mut Self {
        self.uid = Some(uid);
        self
    }

    /// As `CommandExt::gid`.
    pub(crate) fn gid(&mut self, gid: u32) -> &mut Self {
        self.gid = Some(gid);
        self
    }

    /// As `CommandExt::process_group`.
    pub(crate) fn process_group(&mut self, pgroup: i32) -> &mut Self {
        self.pgroup = Some(pgroup);
        self
    }

    /// The child's stdin.
    pub(crate) fn stdin(&mut self, spec: StdioSpec<'a>) -> &mut Self {
        self.stdio[0] = spec;
        self
    }

    /// The child's stdout.
    pub(crate) fn stdout(&mut self, spec: StdioSpec<'a>) -> &mut Self {
        self.stdio[1] = spec;
        self
    }

    /// The child's stderr.
    pub(crate) fn stderr(&mut self, spec: StdioSpec<'a>) -> &mut Self {
        self.stdio[2] = spec;
        self
    }
}

/// The paths the child tries, whether the program named a path, and the
/// errno when there is nothing to try.
///
/// As glibc's (or musl's) `execvp`: a program with a `/` is tried as it is;
/// an empty one fails with `ENOENT`; a bare name is looked up in each entry
/// of `path` (or the libc's default), an empty entry meaning the current
/// directory.
fn candidates(program: &[u8], path: Option<&OsStr>) -> io::Result<(CStringArray, bool, i32)> {
    let mut list = CStringArray::with_capacity(1);
    if program.is_empty() {
        return Ok((list, false, libc::ENOENT));
    }
    if program.contains(&b'/') {
        list.push(cstring(program)?);
        return Ok((list, true, 0));
    }
    if cfg!(target_env = "musl") && program.len() > 255 {
        return Ok((list, false, libc::ENAMETOOLONG));
    }
    let path = path.map_or(search::DEFAULT_PATH, OsStr::as_bytes);
    for dir in path.split(|&b| b == b':') {
        let mut candidate = Vec::with_capacity(dir.len() + program.len() + 2);
        candidate.extend_from_slice(dir);
        if !dir.is_empty() {
            candidate.push(b'/');
        }
        candidate.extend_from_slice(program);
        // A NUL inside PATH would cut the entry short in C; an entry that
        // cannot be a C string names nothing execve could find.
        if let Ok(candidate) = CString::new(candidate) {
            list.push(candidate);
        }
    }
    Ok((list, false, libc::ENOENT))
}

impl EnvChanges {
    /// From std's view of a command's environment changes.
    fn from_std(command: &std::process::Command, clear: bool) -> EnvChanges {
        let mut env = EnvChanges {
            clear,
            ..EnvChanges::default()
        };
        for (key, value) in command.get_envs() {
            env.saw_path |= key == "PATH";
            env.vars.insert(key.to_owned(), value.map(OsStr::to_owned));
        }
        env
    }
}

impl<'a> SpawnPlan<'a> {
    /// The plan for a std command, if brood can represent everything it
    /// holds; `None` means: spawn it with std.
    ///
    /// std's getters give the program, arguments, environment changes and
    /// directory. What they do not give (whether the environment was
    /// cleared, uid, gid, process group and the standard streams) comes
    /// from the command's `{:#?}` description, read by
    /// [`super::std_shape`], which also refuses any option brood does not
    /// know. `arg0` is the caller's record of `CommandExt::arg0`, which only
    /// the description shows, as an escaped string.
    ///
    /// The caller must know that no `pre_exec` hook was registered: std
    /// shows hooks nowhere, so a command that was ever reachable as a
    /// `&mut std::process::Command` must go to std.
    pub(crate) fn from_std(
        command: &'a std::process::Command,
        arg0: Option<&OsStr>,
    ) -> Option<SpawnPlan<'a>> {
        let shape = super::std_shape::describe(command)?;
        let mut plan = SpawnPlan::new(command.get_program());
        plan.args = command.get_args().map(OsStr::to_owned).collect();
        plan.arg0 = arg0.map(OsStr::to_owned);
        if shape.arg0_differs && plan.arg0.is_none() {
            return None;
        }
        plan.env = EnvChanges::from_std(command, shape.env_clear);
        plan.cwd = command.get_current_dir().map(Path::to_owned);
        plan.uid = shape.uid;
        plan.gid = shape.gid;
        plan.pgroup = shape.pgroup;
        for (index, stdio) in shape.stdio.into_iter().enumerate() {
            plan.stdio[index] = match stdio {
                super::std_shape::StdStdio::Default | super::std_shape::StdStdio::Inherit => {
                    StdioSpec::Inherit
                }
                super::std_shape::StdStdio::Null => StdioSpec::Null,
                super::std_shape::StdStdio::Piped => StdioSpec::Piped,
                super::std_shape::StdStdio::Fd(fd) => {
                    StdioSpec::Fd(sys_spawn::borrow_command_fd(command, fd)?)
                }
            };
        }
        Some(plan)
    }
}
