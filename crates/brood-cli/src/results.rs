//! `--results NAME`: each job's output saved in files, in GNU parallel's
//! three forms.
//!
//! - `NAME` without replacement strings: a tree,
//!   `NAME/1/<arg 1>/2/<arg 2>/.../{stdout,stderr,seq}`. In each value `\`
//!   becomes `\\`, a tab `\t`, NUL `\0` and `/` `\_`, as GNU parallel
//!   escapes them, and each value is cut to 255 bytes (the longest file
//!   name most file systems take).
//! - `NAME` with replacement strings, expanded ending in `/`: that
//!   directory holds the job's `stdout`, `stderr` and `seq`.
//! - `NAME` with replacement strings, expanded not ending in `/`: the job's
//!   stdout in that file, stderr in `.err` and the sequence number in
//!   `.seq` beside it.
//!
//! GNU parallel's table forms (`NAME.csv`, `.tsv`, `.json`, which put every
//! job's whole output into one table) are refused: the job log is brood's
//! table, and output stays in files.

use crate::jobs::JobSpec;
use crate::template;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// Where `--results` puts each job's output.
#[derive(Clone, Debug)]
pub enum Results {
    /// A tree of the arguments.
    Tree(PathBuf),
    /// A name with replacement strings.
    Named(String),
}

/// The files of one job.
pub struct JobFiles {
    /// Its stdout.
    pub stdout: PathBuf,
    /// Its stderr.
    pub stderr: PathBuf,
    /// Its sequence number.
    pub seq: PathBuf,
}

impl Results {
    /// Checks `--results NAME`.
    pub fn parse(name: &Path) -> Result<Results, String> {
        let bytes = name.as_os_str().as_bytes();
        for table in [&b".csv"[..], b".tsv", b".json"] {
            if bytes.ends_with(table) {
                return Err(format!(
                    "--results {}: GNU parallel's table of all output is not supported; \
                     use --joblog for the table and a directory for the output",
                    name.display()
                ));
            }
        }
        let Some(text) = name.to_str() else {
            return Ok(Results::Tree(name.to_path_buf()));
        };
        if template::has_replacement(text).map_err(|e| e.0)? {
            Ok(Results::Named(text.to_string()))
        } else {
            Ok(Results::Tree(name.to_path_buf()))
        }
    }

    /// The files of job `spec` in `slot`; their directory is created.
    pub fn files(&self, spec: &JobSpec, slot: u64) -> std::io::Result<JobFiles> {
        let files = match self {
            Results::Tree(root) => in_dir(job_dir(root, &spec.args)),
            Results::Named(name) => {
                let name = template::expand_text(name, &spec.args, spec.seq, Some(slot));
                if name.ends_with(b"/") {
                    in_dir(PathBuf::from(OsString::from_vec(name)))
                } else {
                    let beside =
                        |ext: &[u8]| PathBuf::from(OsString::from_vec([&name, ext].concat()));
                    JobFiles {
                        stdout: beside(b""),
                        stderr: beside(b".err"),
                        seq: beside(b".seq"),
                    }
                }
            }
        };
        if let Some(dir) = files.stdout.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        Ok(files)
    }
}

fn in_dir(dir: PathBuf) -> JobFiles {
    JobFiles {
        stdout: dir.join("stdout"),
        stderr: dir.join("stderr"),
        seq: dir.join("seq"),
    }
}

/// The tree directory of a job with these arguments.
fn job_dir(root: &Path, args: &[Vec<u8>]) -> PathBuf {
    let mut dir = root.to_path_buf();
    for (i, arg) in args.iter().enumerate() {
        dir.push((i + 1).to_string());
        dir.push(OsString::from_vec(escape(arg)));
    }
    dir
}

fn escape(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    for &b in value {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0 => out.extend_from_slice(b"\\0"),
            b'/' => out.extend_from_slice(b"\\_"),
            b => out.push(b),
        }
    }
    out.truncate(255);
    if out.is_empty() {
        // An empty value still needs a directory level; GNU parallel's
        // empty name collapses into the parent, which brood avoids.
        out.extend_from_slice(b"\\e");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_escaping() {
        let d = job_dir(Path::new("out"), &[b"a/b".to_vec(), b"c\\d\te".to_vec()]);
        assert_eq!(d, Path::new("out/1/a\\_b/2/c\\\\d\\te"));
        assert_eq!(job_dir(Path::new("o"), &[Vec::new()]), Path::new("o/1/\\e"));
    }

    #[test]
    fn forms() {
        assert!(matches!(
            Results::parse(Path::new("out")),
            Ok(Results::Tree(_))
        ));
        assert!(matches!(
            Results::parse(Path::new("my_{}/")),
            Ok(Results::Named(_))
        ));
        for table in ["r.csv", "-.tsv", "x/{}.json"] {
            assert!(Results::parse(Path::new(table))
                .unwrap_err()
                .contains("table"));
        }
    }
}
