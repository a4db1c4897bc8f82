//! The job key: what identifies a job across runs, for `--resume` and the
//! job log's `key` field.
//!
//! The key is the lowercase hex of the first 16 bytes of SHA-256 over the
//! job's expanded command: each argv word's bytes followed by one NUL byte.
//! Under `--shell` (and with no command) that is the argv actually exec'd:
//! `sh`, `-c`, the script. A job is keyed by what it runs, not by its
//! position, so a resumed run stays right when inputs were reordered or
//! added. `{%}` (the job slot) is keyed as written, since any slot may run
//! the same job; `{#}` is keyed as expanded, so a template that uses it
//! makes a job's key depend on its position.

use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;

/// The key of a job that runs `argv`.
pub fn job_key(argv: &[OsString]) -> String {
    let mut hash = Sha256::new();
    for word in argv {
        hash.update(word.as_bytes());
        // NUL cannot occur inside an argv word, so it separates them
        // unambiguously: ["ab"] and ["a", "b"] differ.
        hash.update([0u8]);
    }
    let digest = hash.finalize();
    let mut hex = String::with_capacity(32);
    for byte in &digest[..16] {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(words: &[&str]) -> String {
        job_key(&words.iter().map(OsString::from).collect::<Vec<_>>())
    }

    #[test]
    fn known_value() {
        // printf 'echo\0a\0' | sha256sum | cut -c1-32
        assert_eq!(key(&["echo", "a"]), "007aa922bcc84dc8fe0e8e81e5cf3336");
        // printf '' | sha256sum | cut -c1-32
        assert_eq!(key(&[]), "e3b0c44298fc1c149afbf4c8996fb924");
    }

    #[test]
    fn word_boundaries_count() {
        assert_ne!(key(&["ab"]), key(&["a", "b"]));
        assert_ne!(key(&["a", ""]), key(&["a"]));
        assert_eq!(key(&["x", "y"]), key(&["x", "y"]));
        assert_eq!(key(&["x"]).len(), 32);
        assert!(key(&["x"])
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }
}
