//! The series log: every series' labels, written once when the series is first flushed.
//!
//! Segments refer to series by a numeric id; this append-only file maps ids to label sets, so
//! start-up rebuilds the inverted index without touching sample data.
//!
//! ```text
//! file header (12 bytes): magic "EPSER\0" | version u16 LE (1) | crc32 u32 LE of bytes 0..8
//! record, repeated: comp_len u32 LE | raw_len u32 LE | crc32 u32 LE (of bytes 0..8 + payload)
//!                   | payload: zstd frame of
//!                     { uvarint sid, uvarint n_labels, n x (uvarint len, name, uvarint len, value) }*
//! ```
//!
//! A torn or corrupt tail is cut at start-up (the series in it are re-logged at the next flush
//! if they are still being written; samples in segments that refer to an unknown id are skipped
//! and counted as corruption). A damaged record *followed by an intact one* (bit rot, not a torn
//! write) is skipped rather than cut, so one bad record loses only its own series; a damaged
//! file header is rewritten when the records behind it are intact. Whenever damage was found the
//! store re-derives the highest series id from the segments, so a lost id is never handed to a
//! new series (see `Tsdb::open`).
//!
//! Like the segment writer, the log keeps no file open between appends (see `SegmentWriter`).

use super::encoding::{put_uvarint, Cursor};
use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 6] = b"EPSER\0";
const VERSION: u16 = 1;
const HEADER_LEN: usize = 12;
const REC_HEADER_LEN: usize = 12;
/// The file name inside the data directory.
pub const FILE_NAME: &str = "series.log";

/// One logged series: id and (name, value) pairs sorted by name.
pub type Entry = (u32, Vec<(String, String)>);

/// What opening the log found.
pub struct Loaded {
    /// Every intact entry in file order.
    pub entries: Vec<Entry>,
    /// What was cut off, if anything.
    pub damage: Option<String>,
}

/// The append side of the log.
pub struct SeriesLog {
    path: PathBuf,
    len: u64,
    raw: Vec<u8>,
}

fn header() -> [u8; HEADER_LEN] {
    header_for(VERSION)
}

fn header_for(version: u16) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..6].copy_from_slice(MAGIC);
    h[6..8].copy_from_slice(&version.to_le_bytes());
    let c = crc32fast::hash(&h[0..8]);
    h[8..12].copy_from_slice(&c.to_le_bytes());
    h
}

impl SeriesLog {
    /// Opens (creating if missing) the log in `dir`, reads every intact entry and cuts a
    /// damaged tail.
    pub fn open(dir: &Path) -> io::Result<(SeriesLog, Loaded)> {
        let path = dir.join(FILE_NAME);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        if bytes.len() >= 8 && bytes[0..6] == MAGIC[..] {
            let v = u16::from_le_bytes([bytes[6], bytes[7]]);
            if v > VERSION && bytes.get(0..HEADER_LEN) == Some(&header_for(v)[..]) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: format version {v}, this build reads up to {VERSION}",
                        path.display()
                    ),
                ));
            }
        }
        let mut damages: Vec<String> = Vec::new();
        let mut entries = Vec::new();
        // (bytes to keep, whether the header must be (re)written)
        let (valid, new_header) = if bytes.len() < HEADER_LEN {
            if !bytes.is_empty() {
                damages.push("torn header, log restarted".into());
            }
            (HEADER_LEN, true)
        } else {
            let bad_header = bytes[0..HEADER_LEN] != header();
            let (v, d) = parse_records(&bytes, &mut entries);
            damages.extend(d);
            if bad_header {
                damages.push(if entries.is_empty() {
                    "bad header, log restarted".into()
                } else {
                    "bad header rewritten; the records behind it are intact".into()
                });
            }
            (v, bad_header)
        };
        let damage =
            (!damages.is_empty()).then(|| format!("{}: {}", path.display(), damages.join("; ")));
        if bytes.len() != valid || new_header {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            if bytes.len() != valid {
                file.set_len(valid as u64)?;
            }
            if new_header {
                use std::os::unix::fs::FileExt;
                file.write_all_at(&header(), 0)?;
            }
            file.sync_data()?;
        }
        Ok((
            SeriesLog {
                path,
                len: valid as u64,
                raw: Vec::new(),
            },
            Loaded { entries, damage },
        ))
    }

    /// Bytes in the file.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends entries durably; returns bytes written. On error the file is cut back.
    pub fn append<'a>(
        &mut self,
        entries: impl Iterator<Item = (u32, &'a [(String, String)])>,
    ) -> io::Result<u64> {
        self.raw.clear();
        let mut n = 0;
        for (sid, labels) in entries {
            n += 1;
            put_uvarint(&mut self.raw, u64::from(sid));
            put_uvarint(&mut self.raw, labels.len() as u64);
            for (k, v) in labels {
                put_uvarint(&mut self.raw, k.len() as u64);
                self.raw.extend_from_slice(k.as_bytes());
                put_uvarint(&mut self.raw, v.len() as u64);
                self.raw.extend_from_slice(v.as_bytes());
            }
        }
        if n == 0 {
            return Ok(0);
        }
        let payload = zstd::bulk::compress(&self.raw, 3)?;
        let mut rec = Vec::with_capacity(REC_HEADER_LEN + payload.len());
        rec.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        rec.extend_from_slice(&(self.raw.len() as u32).to_le_bytes());
        let mut c = crc32fast::Hasher::new();
        c.update(&rec);
        c.update(&payload);
        rec.extend_from_slice(&c.finalize().to_le_bytes());
        rec.extend_from_slice(&payload);
        let file = OpenOptions::new().write(true).open(&self.path)?;
        let res = {
            use std::os::unix::fs::FileExt;
            file.write_all_at(&rec, self.len)
                .and_then(|_| file.sync_data())
        };
        if let Err(e) = res {
            let _ = file.set_len(self.len);
            return Err(e);
        }
        self.len += rec.len() as u64;
        Ok(rec.len() as u64)
    }
}

/// Reads every intact record into `out`. Returns the length to keep (everything up to the end
/// of the last intact record) and what was wrong. A damaged record whose length field still
/// leads to an intact record is skipped (reported, kept in the file); anything else damaged
/// ends the log there.
fn parse_records(b: &[u8], out: &mut Vec<Entry>) -> (usize, Vec<String>) {
    let mut at = HEADER_LEN;
    let mut damage = Vec::new();
    while at < b.len() {
        let next = match record(b, at, out) {
            Ok(next) => next,
            Err((why, claimed_end)) => {
                // Bit rot inside a record leaves its length, and so the next record, intact;
                // a torn write leaves nothing after it.
                let resync =
                    claimed_end.filter(|&e| e < b.len() && record(b, e, &mut Vec::new()).is_ok());
                match resync {
                    Some(e) => {
                        damage.push(format!("{why}; record skipped, its series are lost"));
                        e
                    }
                    None => {
                        damage.push(format!("{why}; log cut at offset {at}"));
                        return (at, damage);
                    }
                }
            }
        };
        at = next;
    }
    (at, damage)
}

/// Parses the record at `at` into `out`; returns where the next one starts, or what is wrong
/// and where the record's length field says it ends (when that is inside the file).
fn record(b: &[u8], at: usize, out: &mut Vec<Entry>) -> Result<usize, (String, Option<usize>)> {
    let Some(h) = b.get(at..at + REC_HEADER_LEN) else {
        return Err((format!("torn record header at offset {at}"), None));
    };
    let comp = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
    let raw_len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize;
    let crc = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    let end = (at + REC_HEADER_LEN).saturating_add(comp);
    let Some(p) = b.get(at + REC_HEADER_LEN..end) else {
        return Err((format!("torn record at offset {at}"), None));
    };
    let mut c = crc32fast::Hasher::new();
    c.update(&h[0..8]);
    c.update(p);
    if c.finalize() != crc || raw_len > (64 << 20) {
        return Err((
            format!("record checksum mismatch at offset {at}"),
            Some(end),
        ));
    }
    let raw = match zstd::bulk::decompress(p, raw_len) {
        Ok(r) if r.len() == raw_len => r,
        _ => {
            return Err((
                format!("record at offset {at} does not decompress"),
                Some(end),
            ))
        }
    };
    let before = out.len();
    if !parse_entries(&raw, out) {
        out.truncate(before);
        return Err((format!("malformed record at offset {at}"), Some(end)));
    }
    Ok(end)
}

fn parse_entries(raw: &[u8], out: &mut Vec<Entry>) -> bool {
    let mut c = Cursor::new(raw);
    while c.pos() < raw.len() {
        let sid = c.uvarint();
        let n = c.uvarint();
        if c.is_bad() || sid > u64::from(u32::MAX - 1) || n > raw.len() as u64 {
            return false;
        }
        let mut labels = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let kl = c.uvarint() as usize;
            let k = c.bytes(kl);
            let vl = c.uvarint() as usize;
            let v = c.bytes(vl);
            let (Ok(k), Ok(v)) = (std::str::from_utf8(k), std::str::from_utf8(v)) else {
                return false;
            };
            labels.push((k.to_string(), v.to_string()));
        }
        if c.is_bad() {
            return false;
        }
        out.push((sid as u32, labels));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_reopen_and_cut_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l1 = vec![("__name__".to_string(), "up".to_string())];
        let l2 = vec![
            ("__name__".to_string(), "x".to_string()),
            ("a".into(), "b".into()),
        ];
        {
            let (mut log, loaded) = SeriesLog::open(dir.path()).expect("open");
            assert!(loaded.entries.is_empty() && loaded.damage.is_none());
            log.append([(0u32, &l1[..])].into_iter()).expect("append");
            log.append([(1u32, &l2[..])].into_iter()).expect("append");
        }
        let path = dir.path().join(FILE_NAME);
        let full = std::fs::metadata(&path).expect("meta").len();
        let (_, loaded) = SeriesLog::open(dir.path()).expect("reopen");
        assert_eq!(loaded.entries, vec![(0, l1.clone()), (1, l2.clone())]);
        // Tear the last record: the first survives, damage is reported, file is cut.
        let f = OpenOptions::new().write(true).open(&path).expect("open");
        f.set_len(full - 3).expect("truncate");
        let (_, loaded) = SeriesLog::open(dir.path()).expect("reopen");
        assert_eq!(loaded.entries, vec![(0, l1)]);
        assert!(loaded.damage.is_some());
        assert!(std::fs::metadata(&path).expect("meta").len() < full - 3);
    }
}
