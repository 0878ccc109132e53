//! Checking an audit file's hash chain (`task-mcp audit verify`): every line's hash, every
//! `prev`, every `seq`, across rotated files read oldest first. The chain's rules are in
//! `audit.rs`, which writes it; a line is checked by the same function the writer uses to resume.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

use crate::security::audit::{GENESIS, MAX_LINE_BYTES, VerifyFault, check_line};

/// A successful verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records checked.
    pub records: u64,
    /// `seq` of the first record (1 unless the file starts after a rotation; 0 when empty).
    pub first_seq: u64,
    /// `prev` of the first record (the last hash of the previous file after a rotation).
    pub first_prev: String,
    /// `seq` of the last record (0 when empty).
    pub last_seq: u64,
    /// `hash` of the last record (64 zeros when empty): compare with an anchored copy.
    pub last_hash: String,
}

/// Where and why verification failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyError {
    /// The 1-based line number (0 = the file itself).
    pub line: u64,
    /// What is wrong there.
    pub reason: VerifyFault,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for VerifyError {}

/// Verifies one file. A file whose first record has `seq` 1 must start from the genesis hash;
/// a later first record (a file after a rotation) is taken as the start and reported in
/// [`VerifyReport::first_prev`].
///
/// # Errors
/// The first line that breaks the chain, and why.
#[cfg(test)]
pub fn verify(path: &std::path::Path) -> Result<VerifyReport, VerifyError> {
    let file = File::open(path).map_err(|e| VerifyError {
        line: 0,
        reason: VerifyFault::Io(e.to_string()),
    })?;
    verify_reader(BufReader::new(file), None)
}

/// Verifies rotated files as one chain, oldest first (`AUDIT_LOG.3`, `.2`, `.1`, `AUDIT_LOG`).
///
/// # Errors
/// The file (index into `paths`) and the first line that breaks the chain.
pub fn verify_files(paths: &[PathBuf]) -> Result<VerifyReport, (usize, VerifyError)> {
    let mut total: Option<VerifyReport> = None;
    for (i, path) in paths.iter().enumerate() {
        let start = total
            .as_ref()
            .filter(|t| t.records > 0)
            .map(|t| (t.last_seq, t.last_hash.clone()));
        let file = File::open(path).map_err(|e| {
            let reason = VerifyFault::Io(e.to_string());
            (i, VerifyError { line: 0, reason })
        })?;
        let r = verify_reader(BufReader::new(file), start).map_err(|e| (i, e))?;
        total = Some(match total {
            None => r,
            Some(t) if t.records == 0 => r,
            Some(t) if r.records == 0 => t,
            Some(t) => VerifyReport {
                records: t.records + r.records,
                first_seq: t.first_seq,
                first_prev: t.first_prev,
                last_seq: r.last_seq,
                last_hash: r.last_hash,
            },
        });
    }
    Ok(total.unwrap_or_else(empty_report))
}

/// Verifies lines from `reader`. `start` = `(seq, hash)` the first record must follow; `None`
/// accepts the first record's own `seq` and `prev` (genesis required when `seq` is 1).
///
/// # Errors
/// The first line that breaks the chain, and why.
pub fn verify_reader(
    mut reader: impl BufRead,
    start: Option<(u64, String)>,
) -> Result<VerifyReport, VerifyError> {
    let mut report = empty_report();
    let mut expect = start;
    let mut buf = Vec::with_capacity(1024);
    let mut line_no = 0u64;
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| VerifyError {
                line: line_no + 1,
                reason: VerifyFault::Io(e.to_string()),
            })?;
        if n == 0 {
            return Ok(report);
        }
        line_no += 1;
        let fail = |reason| VerifyError {
            line: line_no,
            reason,
        };
        if buf.last() != Some(&b'\n') {
            let reason = if buf.len() > MAX_LINE_BYTES {
                VerifyFault::TooLong
            } else {
                VerifyFault::Torn
            };
            return Err(fail(reason));
        }
        let rec = check_line(&buf[..buf.len() - 1]).map_err(fail)?;
        match &expect {
            Some((seq, hash)) => {
                if rec.prev != *hash {
                    return Err(fail(VerifyFault::BrokenLink {
                        expected: hash.clone(),
                        found: rec.prev,
                    }));
                }
                if rec.seq != seq + 1 {
                    return Err(fail(VerifyFault::SeqGap {
                        expected: seq + 1,
                        found: rec.seq,
                    }));
                }
            }
            None if rec.seq == 1 && rec.prev != GENESIS => {
                return Err(fail(VerifyFault::BrokenLink {
                    expected: GENESIS.to_owned(),
                    found: rec.prev,
                }));
            }
            None if rec.seq == 0 => {
                return Err(fail(VerifyFault::SeqGap {
                    expected: 1,
                    found: 0,
                }));
            }
            None => {}
        }
        if report.records == 0 {
            report.first_seq = rec.seq;
            report.first_prev = rec.prev.clone();
        }
        report.records += 1;
        report.last_seq = rec.seq;
        report.last_hash = rec.hash.clone();
        expect = Some((rec.seq, rec.hash));
    }
}

fn empty_report() -> VerifyReport {
    VerifyReport {
        records: 0,
        first_seq: 0,
        first_prev: GENESIS.to_owned(),
        last_seq: 0,
        last_hash: GENESIS.to_owned(),
    }
}
