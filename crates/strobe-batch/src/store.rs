//! Where a batch's results live, behind one trait, and the file store `strobe batch` uses.
//!
//! The state of a line is durable the moment its result is: a line is done exactly when its
//! `custom_id` has a result in the store, so a resumed batch sends every other line again and
//! nothing else. [`FileStore`] keeps results in the output and error files themselves (JSONL,
//! append-only); a service keeps them in a database through the same trait.
//!
//! Exactly once, honestly: every `custom_id` gets exactly one result line across crashes and
//! resumes. A request may still reach the server twice: a crash after the server answered but
//! before its result was committed sends that line again on resume.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A line's final result, formatted as an OpenAI batch output line.
#[derive(Clone, Debug, PartialEq)]
pub struct LineResult {
    pub custom_id: String,
    /// True for the output file, false for the error file.
    pub success: bool,
    /// The whole line, newline excluded.
    pub json: String,
}

/// A store of batch results.
pub trait BatchStore: Send {
    /// Whether `custom_id` already has its result.
    fn is_done(&self, custom_id: &str) -> bool;
    /// Results stored so far (successes, failures).
    fn counts(&self) -> (u64, u64);
    /// Adds a result; a `custom_id` that already has one is refused (`Ok(false)`), so a result
    /// is never written twice. Not durable until [`BatchStore::commit`].
    fn append(&mut self, result: &LineResult) -> Result<bool, StoreError>;
    /// Makes every appended result durable (on disk, synced).
    fn commit(&mut self) -> Result<(), StoreError>;
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {problem}; this is not a file strobe wrote, or it was edited (move it away to start over)")]
    Corrupt {
        path: PathBuf,
        line: usize,
        problem: String,
    },
}

/// What opening an existing store found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    pub succeeded: u64,
    pub failed: u64,
    /// Bytes of half-written last lines cut off (a crash in the middle of a write).
    pub repaired_bytes: u64,
}

/// Results in two append-only JSONL files: the output (successes) and the error file.
pub struct FileStore {
    output: Side,
    errors: Side,
    done: HashSet<String>,
}

struct Side {
    path: PathBuf,
    file: File,
    pending: Vec<u8>,
    count: u64,
}

impl Side {
    fn open(
        path: &Path,
        done: &mut HashSet<String>,
        rec: &mut Recovered,
    ) -> Result<Side, StoreError> {
        let io = |source| StoreError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        // Everything after the last newline is a line whose write was cut short: no result.
        let good = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if good < bytes.len() {
            rec.repaired_bytes += (bytes.len() - good) as u64;
            file.set_len(good as u64).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        file.seek(SeekFrom::End(0)).map_err(io)?;
        let mut count = 0;
        for (i, line) in bytes[..good].split(|&b| b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let corrupt = |problem: String| StoreError::Corrupt {
                path: path.to_owned(),
                line: i + 1,
                problem,
            };
            let v: serde_json::Value = serde_json::from_slice(line)
                .map_err(|e| corrupt(format!("not a JSON line ({e})")))?;
            let id = v
                .get("custom_id")
                .and_then(|c| c.as_str())
                .ok_or_else(|| corrupt("no custom_id".into()))?;
            if !done.insert(id.to_owned()) {
                return Err(corrupt(format!("custom_id `{id}` has a second result")));
            }
            count += 1;
        }
        Ok(Side {
            path: path.to_owned(),
            file,
            pending: Vec::new(),
            count,
        })
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let io = |source| StoreError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(&self.pending).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.pending.clear();
        Ok(())
    }
}

impl FileStore {
    /// Opens (or creates) the two files, repairing a half-written last line in each and
    /// collecting the `custom_id`s that already have results.
    pub fn open(output: &Path, errors: &Path) -> Result<(FileStore, Recovered), StoreError> {
        let mut done = HashSet::new();
        let mut rec = Recovered::default();
        let output = Side::open(output, &mut done, &mut rec)?;
        let errors = Side::open(errors, &mut done, &mut rec)?;
        rec.succeeded = output.count;
        rec.failed = errors.count;
        Ok((
            FileStore {
                output,
                errors,
                done,
            },
            rec,
        ))
    }
}

impl BatchStore for FileStore {
    fn is_done(&self, custom_id: &str) -> bool {
        self.done.contains(custom_id)
    }

    fn counts(&self) -> (u64, u64) {
        (self.output.count, self.errors.count)
    }

    fn append(&mut self, result: &LineResult) -> Result<bool, StoreError> {
        if !self.done.insert(result.custom_id.clone()) {
            return Ok(false);
        }
        let side = if result.success {
            &mut self.output
        } else {
            &mut self.errors
        };
        side.pending.extend_from_slice(result.json.as_bytes());
        side.pending.push(b'\n');
        side.count += 1;
        Ok(true)
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        self.output.commit()?;
        self.errors.commit()
    }
}

/// The error file that goes with an output file: `out.jsonl` → `out.errors.jsonl`.
pub fn errors_path_for(output: &Path) -> PathBuf {
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "batch".into());
    output.with_file_name(format!("{stem}.errors.jsonl"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("strobe-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn result(id: &str, success: bool) -> LineResult {
        LineResult {
            custom_id: id.into(),
            success,
            json: format!(r#"{{"custom_id":"{id}"}}"#),
        }
    }

    #[test]
    fn results_survive_reopening_and_are_never_written_twice() {
        let d = dir("reopen");
        let (out, err) = (d.join("out.jsonl"), d.join("out.errors.jsonl"));
        let (mut s, rec) = FileStore::open(&out, &err).unwrap();
        assert_eq!(rec, Recovered::default());
        assert!(s.append(&result("a", true)).unwrap());
        assert!(s.append(&result("b", false)).unwrap());
        assert!(!s.append(&result("a", false)).unwrap());
        s.commit().unwrap();
        drop(s);
        let (s, rec) = FileStore::open(&out, &err).unwrap();
        assert_eq!((rec.succeeded, rec.failed), (1, 1));
        assert!(s.is_done("a") && s.is_done("b") && !s.is_done("c"));
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "{\"custom_id\":\"a\"}\n"
        );
    }

    #[test]
    fn a_half_written_last_line_is_cut_off() {
        let d = dir("repair");
        let (out, err) = (d.join("out.jsonl"), d.join("e.jsonl"));
        std::fs::write(&out, "{\"custom_id\":\"a\"}\n{\"custom_id\":\"b").unwrap();
        let (mut s, rec) = FileStore::open(&out, &err).unwrap();
        assert_eq!((rec.succeeded, rec.repaired_bytes), (1, 15));
        assert!(!s.is_done("b"));
        s.append(&result("b", true)).unwrap();
        s.commit().unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "{\"custom_id\":\"a\"}\n{\"custom_id\":\"b\"}\n"
        );
    }

    #[test]
    fn foreign_or_duplicated_lines_are_errors_with_their_line() {
        let d = dir("corrupt");
        let (out, err) = (d.join("out.jsonl"), d.join("e.jsonl"));
        std::fs::write(&out, "{\"custom_id\":\"a\"}\nhello\n").unwrap();
        let e = FileStore::open(&out, &err).err().unwrap().to_string();
        assert!(e.contains("out.jsonl:2: not a JSON line"), "{e}");
        std::fs::write(&out, "{\"custom_id\":\"a\"}\n").unwrap();
        std::fs::write(&err, "{\"custom_id\":\"a\"}\n").unwrap();
        let e = FileStore::open(&out, &err).err().unwrap().to_string();
        assert!(
            e.contains("e.jsonl:1: custom_id `a` has a second result"),
            "{e}"
        );
    }

    #[test]
    fn error_file_sits_next_to_the_output() {
        assert_eq!(
            errors_path_for(Path::new("/x/run.jsonl")),
            PathBuf::from("/x/run.errors.jsonl")
        );
    }
}
