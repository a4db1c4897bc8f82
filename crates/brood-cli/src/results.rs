//! `--results DIR`: each job's output saved in files, laid out as GNU
//! parallel lays it out: `DIR/1/<arg 1>/2/<arg 2>/.../{stdout,stderr,seq}`.
//!
//! In each value, `\` becomes `\\`, a tab `\t`, NUL `\0` and `/` `\_`, as
//! GNU parallel escapes them, and each value is cut to 255 bytes (the
//! longest file name most file systems take).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// The directory of a job with these arguments.
pub fn job_dir(root: &Path, args: &[Vec<u8>]) -> PathBuf {
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
    }
}
