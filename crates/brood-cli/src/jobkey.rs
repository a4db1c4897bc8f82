//! The job key: what identifies a job across runs and machines, for
//! `--resume`, `--shard`, `brood log merge` and the job log's `key` field.
//!
//! The key is the first 16 bytes of SHA-256 over the job's expanded
//! command: each argv word's bytes followed by one NUL byte. The job log
//! writes it as 32 lowercase hex digits. Under `--shell` (and with no
//! command) that is the argv actually exec'd: `sh`, `-c`, the script. A job
//! is keyed by what it runs, not by its position, so a resumed run stays
//! right when inputs were reordered or added, and a job falls in the same
//! shard whichever machine computes it. `{%}` (the job slot) is keyed as
//! written, since any slot may run the same job; `{#}` is keyed as
//! expanded, so a template that uses it makes a job's key depend on its
//! position.
//!
//! This is the one implementation of the key: the shard of a job
//! ([`JobKey::shard_hash`]) and the logs' keys are all cut from it.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::str::FromStr;

/// A job's content key: the first 16 bytes of SHA-256 over its argv, each
/// word followed by a NUL byte. Displayed (and logged) as 32 lowercase hex
/// digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobKey([u8; 16]);

impl JobKey {
    /// The key of a job that runs `argv`.
    pub fn of_argv<I>(argv: I) -> JobKey
    where
        I: IntoIterator,
        I::Item: AsRef<OsStr>,
    {
        let mut hash = Sha256::new();
        for word in argv {
            hash.update(word.as_ref().as_bytes());
            // NUL cannot occur inside an argv word, so it separates them
            // unambiguously: ["ab"] and ["a", "b"] differ.
            hash.update([0u8]);
        }
        let digest = hash.finalize();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        JobKey(key)
    }

    /// The key from its 16 bytes.
    #[cfg(test)]
    pub fn from_bytes(bytes: [u8; 16]) -> JobKey {
        JobKey(bytes)
    }

    /// The value shards are cut from: the first 8 bytes, big-endian.
    pub fn shard_hash(&self) -> u64 {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(first)
    }
}

impl fmt::Display for JobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for JobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JobKey({self})")
    }
}

/// A string that is not a job key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidKey(String);

impl fmt::Display for InvalidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "job key {:?} is not 32 hex digits", self.0)
    }
}

impl std::error::Error for InvalidKey {}

impl FromStr for JobKey {
    type Err = InvalidKey;

    /// Parses 32 hex digits, as the job log writes them (upper case is
    /// accepted too).
    fn from_str(s: &str) -> Result<JobKey, InvalidKey> {
        let bad = || InvalidKey(s.to_string());
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut key = [0u8; 16];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(JobKey(key))
    }
}

impl Serialize for JobKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for JobKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<JobKey, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(words: &[&str]) -> String {
        JobKey::of_argv(words).to_string()
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

    #[test]
    fn parses_what_it_prints_and_nothing_else() {
        let k = JobKey::of_argv(["echo", "a"]);
        assert_eq!(k.to_string().parse::<JobKey>(), Ok(k));
        assert_eq!(k.to_string().to_uppercase().parse::<JobKey>(), Ok(k));
        // A multi-byte character must not be sliced through.
        let accented = "é3b0c44298fc1c149afbf4c8996fb92";
        for bad in [
            "",
            "abc",
            &"0".repeat(31),
            &"g".repeat(32),
            &"0".repeat(33),
            accented,
        ] {
            assert!(bad.parse::<JobKey>().is_err(), "{bad:?}");
        }
        // In JSON it is the hex string.
        let json = serde_json::to_string(&k).unwrap();
        assert_eq!(json, format!("\"{k}\""));
        assert_eq!(serde_json::from_str::<JobKey>(&json).unwrap(), k);
        assert!(serde_json::from_str::<JobKey>("\"xyz\"").is_err());
        assert!(serde_json::from_str::<JobKey>("7").is_err());
    }

    #[test]
    fn the_shard_hash_is_the_first_eight_bytes_big_endian() {
        // printf 'echo\0a\0' | sha256sum: 007aa922bcc84dc8...
        assert_eq!(
            JobKey::of_argv(["echo", "a"]).shard_hash(),
            0x007a_a922_bcc8_4dc8
        );
    }
}
