//! Held-back job output with bounded memory.
//!
//! Group mode holds a job's output until the job ends, and `--keep-order`
//! holds later jobs' output until earlier ones are printed. A spool keeps
//! the first bytes in memory and moves to an unlinked temporary file in
//! `$TMPDIR` once its job holds more than [`PER_JOB`] bytes, or once all
//! spools together hold more than [`TOTAL`]. So brood's memory stays
//! bounded whatever the jobs print, even for a job that never ends; the
//! disk holds the rest, as GNU parallel's own spool files do.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes one job may hold in memory.
pub const PER_JOB: usize = 1 << 20;
/// Bytes all jobs together may hold in memory.
pub const TOTAL: usize = 16 << 20;

/// Bytes held in memory by all spools.
static HELD: AtomicUsize = AtomicUsize::new(0);

/// One stream's held-back output.
#[derive(Debug, Default)]
pub struct Spool {
    memory: Vec<u8>,
    file: Option<File>,
    len: u64,
}

impl Spool {
    /// Appends bytes.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.len += bytes.len() as u64;
        if let Some(file) = &mut self.file {
            return file.write_all(bytes);
        }
        let held = HELD.fetch_add(bytes.len(), Ordering::Relaxed) + bytes.len();
        self.memory.extend_from_slice(bytes);
        if self.memory.len() > PER_JOB || held > TOTAL {
            self.spill()?;
        }
        Ok(())
    }

    /// Moves the in-memory bytes to a new unlinked temporary file.
    fn spill(&mut self) -> io::Result<()> {
        let mut file = tempfile::tempfile()?;
        file.write_all(&self.memory)?;
        self.release();
        self.file = Some(file);
        Ok(())
    }

    fn release(&mut self) {
        HELD.fetch_sub(self.memory.len(), Ordering::Relaxed);
        self.memory = Vec::new();
    }

    /// Whether anything is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the spool moved to a file.
    #[cfg(test)]
    pub fn on_disk(&self) -> bool {
        self.file.is_some()
    }

    /// Writes everything held to `out` and empties the spool.
    pub fn drain_to(&mut self, out: &mut dyn Write) -> io::Result<()> {
        if let Some(mut file) = self.file.take() {
            file.seek(SeekFrom::Start(0))?;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = file.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n])?;
            }
        } else {
            out.write_all(&self.memory)?;
            self.release();
        }
        self.len = 0;
        Ok(())
    }
}

impl Spool {
    /// Moves everything `other` holds to the end of this spool.
    pub fn append(&mut self, mut other: Spool) {
        if self.is_empty() {
            std::mem::swap(self, &mut other);
            return;
        }
        let _ = other.drain_to(self);
    }
}

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Spool::write(self, buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        self.release();
    }
}

/// Bytes held in memory by all spools (for tests).
#[cfg(test)]
pub fn held() -> usize {
    HELD.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_output_stays_in_memory_large_moves_to_disk() {
        let mut s = Spool::default();
        s.write(b"hello ").unwrap();
        s.write(b"world").unwrap();
        assert!(!s.on_disk());
        let mut out = Vec::new();
        s.drain_to(&mut out).unwrap();
        assert_eq!(out, b"hello world");
        assert!(s.is_empty());

        let mut big = Spool::default();
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..40 {
            big.write(&chunk).unwrap();
        }
        assert!(big.on_disk());
        assert_eq!(big.len, 40 * 64 * 1024);
        assert!(held() < TOTAL);
        let mut out = Vec::new();
        big.drain_to(&mut out).unwrap();
        assert_eq!(out.len(), 40 * 64 * 1024);
        assert!(out.iter().all(|&b| b == b'x'));
    }
}
