//! The settlement journal: makes a settlement durable against a killed
//! process without a database round trip, so that an answer never waits
//! for the database.
//!
//! `settle` appends its [`Settlement`] itself, with one `write(2)` under a
//! lock ([`Journal::append`]): once in the page cache, a record survives a
//! `kill -9` of the process. This costs a few microseconds of the settling
//! task and no hand-off to another thread and back (which cost more than the
//! write, in wake-ups, under load). The settlement then goes on to the
//! committer (`writer`), which writes settlements to the database in batches.
//!
//! The journal is a series of segments, `<instance>.<seq>.journal`, one JSON
//! settlement per line. The journal's own thread ([`Journal::tidy`]), every
//! [`FSYNC_INTERVAL`]: closes the segment written since its last round
//! (appends go on in a new one, opened beforehand) and `fdatasync`s it,
//! which bounds what a power or disk loss can take; and deletes the closed
//! segments whose settlements are all committed, so that the journal holds
//! only what the database does not have yet (plus the open segment). No
//! append ever writes to a file being synced, and no call's task deletes a
//! file: on ext4 both wait for the disk (a writeback holds the pages and the
//! inode that an append needs; an unlink on a filesystem mounted with
//! `discard` waits for the discard), which stalled answers for up to 86 ms
//! under load (README, Performance).
//!
//! Each running instance holds an exclusive lock on `<instance>.lock`; at
//! start, an instance replays the segments of every instance whose lock it
//! can take (that instance is dead), committing each settlement the
//! database does not have yet, read back by request id.

use crate::usage::UsageEntry;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// How often written records are forced to the disk: what a power or disk
/// failure can lose at most (records written to the page cache since).
pub const FSYNC_INTERVAL: Duration = Duration::from_millis(200);

/// One settled call, as journaled and as committed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Settlement {
    /// The instance whose lease the call held from.
    pub instance_id: String,
    pub organization_id: String,
    /// The whole charge: the provider's usage, priced, even beyond the hold.
    pub charged: i64,
    /// The part of `charged` taken out of the lease (the rest lowers the
    /// balance beyond what was set aside).
    pub from_lease: i64,
    pub budget: Option<BudgetCharge>,
    pub entry: UsageEntry,
}

impl Settlement {
    /// Writes the settlement as serde's JSON (what `Deserialize` reads
    /// back), field by field: serde_json's generic path cost ten thousand
    /// instructions a call on the answer's path, this about a fifth.
    /// A test holds the two byte for byte equal.
    fn write_json(&self, out: &mut Vec<u8>) {
        let e = &self.entry;
        let u = &e.usage;
        json_str(out, b"{\"instance_id\":", &self.instance_id);
        json_str(out, b",\"organization_id\":", &self.organization_id);
        json_int(out, b",\"charged\":", self.charged);
        json_int(out, b",\"from_lease\":", self.from_lease);
        match &self.budget {
            Some(budget) => {
                json_str(out, b",\"budget\":{\"account\":", &budget.account);
                json_int(out, b",\"from_lease\":", budget.from_lease);
                out.push(b'}');
            }
            None => out.extend_from_slice(b",\"budget\":null"),
        }
        json_str(out, b",\"entry\":{\"request_id\":", &e.request_id);
        match &e.api_key_id {
            Some(id) => json_str(out, b",\"api_key_id\":", id),
            None => out.extend_from_slice(b",\"api_key_id\":null"),
        }
        json_str(out, b",\"model\":", &e.model);
        json_str(out, b",\"provider\":", &e.provider);
        json_int(out, b",\"usage\":{\"prompt_tokens\":", u.prompt_tokens);
        json_int(out, b",\"completion_tokens\":", u.completion_tokens);
        json_int(out, b",\"cached_prompt_tokens\":", u.cached_prompt_tokens);
        json_int(out, b",\"cache_write_tokens\":", u.cache_write_tokens);
        json_int(out, b"},\"cost\":", e.cost);
        json_int(out, b",\"list_cost_usd_micros\":", e.list_cost_usd_micros);
        out.extend_from_slice(if e.byok {
            b",\"byok\":true"
        } else {
            b",\"byok\":false"
        });
        out.extend_from_slice(if e.stream {
            b",\"stream\":true"
        } else {
            b",\"stream\":false"
        });
        json_str(out, b",\"status\":", e.status.as_str());
        json_int(out, b",\"latency_ms\":", e.latency_ms);
        out.extend_from_slice(b"}}");
    }
}

/// `key` (with its separators), then `value`.
fn json_int(out: &mut Vec<u8>, key: &[u8], value: i64) {
    out.extend_from_slice(key);
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// `key` (with its separators), then `value` as a JSON string: as is when
/// nothing in it needs escaping (ids and model names), else escaped by
/// serde_json.
fn json_str(out: &mut Vec<u8>, key: &[u8], value: &str) {
    out.extend_from_slice(key);
    if value.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else {
        // Into a Vec, a str cannot fail to serialize.
        let _ = serde_json::to_writer(&mut *out, value);
    }
}

/// What a settlement charges to its key's budget: the whole charge, of
/// which `from_lease` out of this instance's budget lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BudgetCharge {
    pub account: String,
    pub from_lease: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("settlement journal in {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Appended and committed settlements per segment, to know when one may go.
#[derive(Default)]
struct Segments {
    /// seq → (appended, committed, closed)
    by_seq: BTreeMap<u64, (u64, u64, bool)>,
}

/// This instance's journal: where it writes, and what is committed.
pub(crate) struct Journal {
    dir: PathBuf,
    instance_id: String,
    segments: Mutex<Segments>,
    /// The segment being appended to; held for one write.
    appender: Mutex<Appender>,
    /// Closed segments, all committed, for the journal's thread to delete.
    doomed: Mutex<Vec<u64>>,
    /// Held for the life of the instance: tells others it is alive.
    _lock: File,
}

#[derive(Default)]
struct Appender {
    open: Option<Open>,
    next_seq: u64,
    /// Segments closed after a failed write, not yet synced.
    unsynced: Vec<File>,
}

impl Journal {
    /// Creates the directory and takes this instance's lock.
    pub fn open(dir: &Path, instance_id: &str) -> Result<Journal, JournalError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let lock_path = dir.join(format!("{instance_id}.lock"));
        let lock = File::create(&lock_path).map_err(io_error(&lock_path))?;
        lock.try_lock().map_err(|e| JournalError::Io {
            path: lock_path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok(Journal {
            dir: dir.to_owned(),
            instance_id: instance_id.to_owned(),
            segments: Mutex::new(Segments::default()),
            appender: Mutex::new(Appender::default()),
            doomed: Mutex::new(Vec::new()),
            _lock: lock,
        })
    }

    fn segment_path(&self, seq: u64) -> PathBuf {
        segment_path(&self.dir, &self.instance_id, seq)
    }

    fn segments(&self) -> MutexGuard<'_, Segments> {
        lock(&self.segments)
    }

    fn appender(&self) -> MutexGuard<'_, Appender> {
        lock(&self.appender)
    }

    /// Appends one settlement (one line, one write); returns the number of
    /// the segment it is in, or `None` when it could not be written (the
    /// caller then waits for its commit instead).
    pub fn append(&self, settlement: &Settlement) -> Option<u64> {
        let mut line = Vec::with_capacity(512);
        settlement.write_json(&mut line);
        line.push(b'\n');
        // Counted under the appender's lock: a segment is closed under it
        // too, and deleted only once all it was counted to hold is committed.
        let mut appender = self.appender();
        let seq = append(self, &mut appender, &line)?;
        self.appended(seq, 1);
        Some(seq)
    }

    /// One round of the journal's thread: closes the segment written since
    /// the last round (appends go on in a new one, opened here first) and
    /// syncs it, then deletes the closed segments that are all committed.
    pub fn tidy(&self) {
        for file in self.rotate() {
            if let Err(e) = file.sync_data() {
                tracing::warn!(error = %e, "syncing the settlement journal failed");
            }
        }
        let doomed = std::mem::take(&mut *lock(&self.doomed));
        for seq in doomed {
            self.delete_segment(seq);
        }
    }

    /// Swaps the open segment, if written to, for a new one; returns the
    /// files to sync (itself and any closed after a failed write). Without
    /// a new segment (it could not be opened) the open one is synced in place.
    fn rotate(&self) -> Vec<File> {
        let next = {
            let mut appender = self.appender();
            if appender.open.as_ref().is_none_or(|o| o.bytes == 0) {
                return std::mem::take(&mut appender.unsynced);
            }
            appender.next_seq += 1;
            appender.next_seq - 1
        };
        // Opened outside the lock: creating a file may wait for the disk.
        let fresh = match open_segment(self, next) {
            Ok(fresh) => Some(fresh),
            Err(e) => {
                tracing::warn!(error = %e, "opening the next settlement journal segment failed");
                None
            }
        };
        let mut appender = self.appender();
        let mut files = std::mem::take(&mut appender.unsynced);
        match fresh {
            Some(fresh) => {
                if let Some(old) = appender.open.replace(fresh) {
                    self.close(old.seq);
                    files.push(old.file);
                }
            }
            None => files.extend(appender.open.as_ref().and_then(|o| o.file.try_clone().ok())),
        }
        files
    }

    /// Settlements appended and not yet committed, over every segment.
    pub fn uncommitted(&self) -> u64 {
        self.segments()
            .by_seq
            .values()
            .map(|(appended, committed, _)| appended.saturating_sub(*committed))
            .sum()
    }

    /// Counts `n` settlements of segment `seq` as committed; once it is
    /// closed and all committed, the journal's thread deletes it.
    pub fn committed(&self, seq: u64, n: u64) {
        let done = {
            let mut segments = self.segments();
            let Some(entry) = segments.by_seq.get_mut(&seq) else {
                return;
            };
            entry.1 += n;
            let done = entry.2 && entry.1 >= entry.0;
            if done {
                segments.by_seq.remove(&seq);
            }
            done
        };
        if done {
            self.remove_segment(seq);
        }
    }

    fn appended(&self, seq: u64, n: u64) {
        self.segments().by_seq.entry(seq).or_default().0 += n;
    }

    /// Closes segment `seq`: deleted in the journal thread's next round
    /// if all of it is committed.
    fn close(&self, seq: u64) {
        let done = {
            let mut segments = self.segments();
            let entry = segments.by_seq.entry(seq).or_default();
            entry.2 = true;
            let done = entry.1 >= entry.0;
            if done {
                segments.by_seq.remove(&seq);
            }
            done
        };
        if done {
            self.remove_segment(seq);
        }
    }

    /// Leaves segment `seq` (closed, all committed) to the journal's thread.
    fn remove_segment(&self, seq: u64) {
        lock(&self.doomed).push(seq);
    }

    fn delete_segment(&self, seq: u64) {
        let path = self.segment_path(seq);
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "removing a committed journal segment failed");
        }
    }

    /// Whether every appended settlement is committed.
    pub fn all_committed(&self) -> bool {
        self.segments().by_seq.values().all(|(a, c, _)| c >= a)
    }

    /// On a clean stop with everything committed: removes what is left
    /// (the open segment and the lock file).
    pub fn remove_if_all_committed(&self) {
        if !self.all_committed() {
            return;
        }
        let open = self.appender().open.take().map(|o| o.seq);
        let mut seqs: Vec<u64> = std::mem::take(&mut self.segments().by_seq)
            .into_keys()
            .collect();
        seqs.extend(open);
        seqs.append(&mut lock(&self.doomed));
        for seq in seqs {
            self.delete_segment(seq);
        }
        let _ = std::fs::remove_file(self.dir.join(format!("{}.lock", self.instance_id)));
    }
}

pub(crate) fn segment_path(dir: &Path, instance_id: &str, seq: u64) -> PathBuf {
    dir.join(format!("{instance_id}.{seq:08}.journal"))
}

/// Starts the journal's thread ([`Journal::tidy`] every
/// [`FSYNC_INTERVAL`]); it stops with the journal.
pub(crate) fn start_tidying(journal: &Arc<Journal>) -> Result<(), JournalError> {
    let weak = Arc::downgrade(journal);
    std::thread::Builder::new()
        .name("tollgate-journal".into())
        .spawn(move || {
            loop {
                std::thread::sleep(FSYNC_INTERVAL);
                let Some(journal) = weak.upgrade() else {
                    return;
                };
                journal.tidy();
            }
        })
        .map_err(io_error(Path::new("thread")))?;
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The segment being appended to.
struct Open {
    seq: u64,
    file: File,
    bytes: u64,
}

fn open_segment(journal: &Journal, seq: u64) -> std::io::Result<Open> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(journal.segment_path(seq))?;
    Ok(Open {
        seq,
        file,
        bytes: 0,
    })
}

/// Appends `buf` to the open segment (opening one if needed); returns the
/// segment's number, or `None` when the write failed.
fn append(journal: &Journal, appender: &mut Appender, buf: &[u8]) -> Option<u64> {
    if appender.open.is_none() {
        match open_segment(journal, appender.next_seq) {
            Ok(o) => {
                appender.next_seq += 1;
                appender.open = Some(o);
            }
            Err(e) => {
                tracing::error!(error = %e, "opening the settlement journal failed; settlements wait for their commit instead");
                return None;
            }
        }
    }
    let o = appender.open.as_mut()?;
    if let Err(e) = o.file.write_all(buf) {
        tracing::error!(error = %e, "writing the settlement journal failed; settlements wait for their commit instead");
        // A partial line may be left: start a new segment; replay skips
        // lines that do not parse. What the old one holds is synced.
        let old = appender.open.take()?;
        journal.close(old.seq);
        appender.unsynced.push(old.file);
        return None;
    }
    o.bytes += buf.len() as u64;
    Some(o.seq)
}

/// The journal of a dead instance, found at start.
pub(crate) struct Orphan {
    pub instance_id: String,
    pub segments: Vec<PathBuf>,
    /// Held until the orphan is replayed and removed.
    lock: Option<File>,
    lock_path: PathBuf,
}

impl Orphan {
    /// Every settlement in the orphan's segments, in order. A line that
    /// does not parse (torn by a crash mid-write) is skipped.
    pub fn settlements(&self) -> Result<Vec<Settlement>, JournalError> {
        let mut out = Vec::new();
        for path in &self.segments {
            let file = File::open(path).map_err(io_error(path))?;
            for line in std::io::BufReader::new(file).split(b'\n') {
                let line = line.map_err(io_error(path))?;
                if line.is_empty() {
                    continue;
                }
                match serde_json::from_slice::<Settlement>(&line) {
                    Ok(s) => out.push(s),
                    Err(e) => tracing::warn!(
                        path = %path.display(),
                        error = %e,
                        "skipping a torn settlement journal line"
                    ),
                }
            }
        }
        Ok(out)
    }

    /// Deletes the replayed segments, then the lock.
    pub fn remove(mut self) -> Result<(), JournalError> {
        for path in &self.segments {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(path)(e)),
            }
        }
        let _ = std::fs::remove_file(&self.lock_path);
        self.lock.take();
        Ok(())
    }
}

/// The journals in `dir` of instances other than `own` that are not alive
/// (their lock can be taken), each locked for the caller.
pub(crate) fn orphans(dir: &Path, own: &str) -> Result<Vec<Orphan>, JournalError> {
    let mut by_instance: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(dir)(e)),
    };
    for entry in entries {
        let path = entry.map_err(io_error(dir))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        // A lock file without segments (a killed instance that had
        // journaled nothing) is cleaned up like any other orphan.
        if let Some(instance) = name.strip_suffix(".lock") {
            if instance != own {
                by_instance.entry(instance.to_owned()).or_default();
            }
            continue;
        }
        let Some(stem) = name.strip_suffix(".journal") else {
            continue;
        };
        let Some((instance, _seq)) = stem.rsplit_once('.') else {
            continue;
        };
        if instance != own {
            by_instance
                .entry(instance.to_owned())
                .or_default()
                .push(path.clone());
        }
    }
    let mut orphans = Vec::new();
    for (instance_id, mut segments) in by_instance {
        let lock_path = dir.join(format!("{instance_id}.lock"));
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_error(&lock_path))?;
        if lock.try_lock().is_err() {
            continue; // alive: it commits its own journal
        }
        // Zero-padded numbers: the names sort in append order.
        segments.sort();
        orphans.push(Orphan {
            instance_id,
            segments,
            lock: Some(lock),
            lock_path,
        });
    }
    Ok(orphans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UsageStatus;
    use tollgate_core::money::TokenUsage;

    fn settlement(text: &str, budget: bool, key: bool, status: UsageStatus) -> Settlement {
        Settlement {
            instance_id: format!("gw_{text}"),
            organization_id: format!("org_{text}"),
            charged: i64::MAX,
            from_lease: -7,
            budget: budget.then(|| BudgetCharge {
                account: format!("key:{text}"),
                from_lease: i64::MIN,
            }),
            entry: UsageEntry {
                request_id: format!("req_{text}"),
                api_key_id: key.then(|| format!("key_{text}")),
                model: format!("model {text}"),
                provider: text.to_owned(),
                usage: TokenUsage {
                    prompt_tokens: 12,
                    completion_tokens: 0,
                    cached_prompt_tokens: 3,
                    cache_write_tokens: 9_000_000_000,
                },
                cost: 1234,
                list_cost_usd_micros: -1,
                byok: budget,
                stream: key,
                status,
                latency_ms: 5,
            },
        }
    }

    #[test]
    fn a_journal_line_is_the_settlements_serde_json() {
        // Plain ids, and strings that need escaping: quotes, backslashes,
        // control characters, non-ASCII, DEL.
        for text in [
            "01a24c9680237005",
            "a\"b\\c",
            "tab\tnl\n\u{1}",
            "é—😀\u{7f}",
            "",
        ] {
            for (budget, key) in [(false, false), (true, true), (true, false)] {
                for status in UsageStatus::ALL {
                    let settlement = settlement(text, budget, key, status);
                    let mut line = Vec::new();
                    settlement.write_json(&mut line);
                    let expected = serde_json::to_vec(&settlement).unwrap();
                    assert_eq!(
                        String::from_utf8_lossy(&line),
                        String::from_utf8_lossy(&expected)
                    );
                }
            }
        }
    }
}
