//! Segment files: write-once, append-only, time-partitioned files of zstd-compressed records.
//!
//! A segment holds the samples of one time partition (see `PARTITION_MS` in `tsdb`) as a
//! sequence of records, one per flush. All records of a segment form **one zstd stream**: each
//! flush ends with a zstd flush (`ZSTD_e_flush`), so the bytes on disk decode up to the last
//! complete record while the compressor keeps its history window. A flush of a few thousand
//! samples therefore compresses almost as well as one big block would, and every sample is
//! written to flash once. Reading a segment means decoding it from the start, which is why
//! partitions are bounded in time.
//!
//! ```text
//! file header (36 bytes)
//!   0  magic "EPSEG\0"        6 bytes
//!   6  format version u16 LE  (2; 1 is still read: its value column is varints)
//!   8  base_t i64 LE          timestamps' delta base for every series' first sample
//!  16  seq u64 LE             unique, increasing segment number
//!  24  partition i64 LE       start (ms) of the time partition
//!  32  crc32 u32 LE           IEEE CRC-32 of bytes 0..32
//! record (32-byte header + payload), repeated
//!   0  comp_len u32 LE        payload bytes (a zstd-flushed piece of the segment's stream)
//!   4  raw_len u32 LE         bytes the payload decodes to (one `encoding` record)
//!   8  min_t i64 LE           smallest timestamp in the record
//!  16  max_t i64 LE           largest timestamp in the record
//!  24  n_samples u32 LE
//!  28  crc32 u32 LE           CRC-32 of header bytes 0..28 and the payload
//! ```
//!
//! The unfinished segment is named `SEQ.live`. Sealing fsyncs it and renames it to
//! `SEQ_MINT_MAXT.seg`, so start-up learns every sealed segment's time range from the
//! directory listing without reading it. A `.live` file found at start-up was being written
//! when the process died: its records are checked, a torn or corrupt tail is cut off, and it is
//! sealed. Sealed files are never modified again; retention deletes whole files.

use super::encoding::{decode_record, encode_record, RawSample, SeriesState, ValueCoder};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// File magic.
pub const MAGIC: &[u8; 6] = b"EPSEG\0";
/// The format version this build writes (and the newest it reads). Version 1 stored the value
/// column as varints; version 2 range-codes it (see `encoding::ValueCoder`). Everything else is
/// the same, and both are read.
pub const VERSION: u16 = 2;
/// File header size.
pub const HEADER_LEN: usize = 36;
/// Record header size.
pub const REC_HEADER_LEN: usize = 32;
/// Upper bound on one record's decoded size; larger claims are treated as corruption.
const MAX_RAW_LEN: u32 = 256 << 20;
/// zstd level of live segments. Since format 2 range-codes the value column, zstd only sees
/// the series, mode and timestamp columns, which repeat from record to record: on the 24 h
/// gen.py file (4 scrapes per record) level 7 with a 256 KiB window stores 0.693 B/sample
/// with a 6.0 MiB compressor, level 9 0.693 with 14.7 MiB, level 19 0.687 with 85-90 MiB and
/// four times the CPU, level 5 0.698 with 5.2 MiB. Measured with
/// `EXP_FILE=/tmp/full.om EXP_CFGS=7:18:4,9:0:4,19:22:4,5:0:4 cargo test --lib -- --ignored
/// tsdb::exp::exp --nocapture`.
pub const ZSTD_LEVEL: i32 = 7;
/// zstd window (log2 bytes) of live segments: a record's columns repeat those of the record
/// before, a few tens of KiB back, so a larger window buys nothing but compressor memory.
pub const ZSTD_WINDOW_LOG: u32 = 18;
/// zstd level of bulk (import) segments: records of tens of thousands of samples compress well
/// at level 5 already, and an import is bound by CPU.
pub const ZSTD_LEVEL_BULK: i32 = 5;

/// Parsed file header.
#[derive(Clone, Copy, Debug)]
pub struct Header {
    /// Format version.
    pub version: u16,
    /// Timestamp delta base.
    pub base_t: i64,
    /// Segment number.
    pub seq: u64,
    /// Partition start.
    pub partition: i64,
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}
fn le_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_le_bytes(a)
}

fn encode_header(h: &Header) -> [u8; HEADER_LEN] {
    let mut b = [0u8; HEADER_LEN];
    b[0..6].copy_from_slice(MAGIC);
    b[6..8].copy_from_slice(&h.version.to_le_bytes());
    b[8..16].copy_from_slice(&h.base_t.to_le_bytes());
    b[16..24].copy_from_slice(&h.seq.to_le_bytes());
    b[24..32].copy_from_slice(&h.partition.to_le_bytes());
    let crc = crc32fast::hash(&b[0..32]);
    b[32..36].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Parses and checks a file header.
pub fn parse_header(b: &[u8]) -> Result<Header, String> {
    if b.len() < HEADER_LEN {
        return Err(format!("file shorter than its {HEADER_LEN}-byte header"));
    }
    if &b[0..6] != MAGIC {
        return Err("bad magic".into());
    }
    if crc32fast::hash(&b[0..32]) != le_u32(b, 32) {
        return Err("header checksum mismatch".into());
    }
    let version = u16::from_le_bytes([b[6], b[7]]);
    if version == 0 || version > VERSION {
        return Err(format!(
            "unsupported format version {version} (newest known {VERSION})"
        ));
    }
    Ok(Header {
        version,
        base_t: le_i64(b, 8),
        seq: le_i64(b, 16) as u64,
        partition: le_i64(b, 24),
    })
}

/// One record header as found in a file.
#[derive(Clone, Copy, Debug)]
pub struct RecordInfo {
    /// Offset of the payload in the file.
    pub payload_at: usize,
    /// Payload length.
    pub comp_len: usize,
    /// Decoded length.
    pub raw_len: usize,
    /// Time range.
    pub min_t: i64,
    /// Time range.
    pub max_t: i64,
    /// Sample count.
    #[allow(dead_code)] // kept for tools and status; read by tests
    pub n_samples: u32,
}

/// What a check of a segment's bytes found.
#[derive(Debug, Default, Clone)]
pub struct Scan {
    /// Intact records.
    pub records: Vec<RecordInfo>,
    /// Bytes up to the end of the last intact record.
    pub valid_len: usize,
    /// Why the rest of the file (from `valid_len`) was rejected, if it was.
    pub damage: Option<String>,
}

impl Scan {
    /// Smallest and largest timestamp over intact records.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        let mn = self.records.iter().map(|r| r.min_t).min()?;
        let mx = self.records.iter().map(|r| r.max_t).max()?;
        Some((mn, mx))
    }
    /// Samples over intact records.
    #[allow(dead_code)]
    pub fn samples(&self) -> u64 {
        self.records.iter().map(|r| u64::from(r.n_samples)).sum()
    }
}

/// Checks the records of a segment (header already parsed) by their checksums.
pub fn scan(b: &[u8]) -> Scan {
    let mut s = Scan {
        valid_len: HEADER_LEN.min(b.len()),
        ..Scan::default()
    };
    let mut at = HEADER_LEN;
    while at < b.len() {
        let Some(h) = b.get(at..at + REC_HEADER_LEN) else {
            s.damage = Some(format!("torn record header at offset {at}"));
            break;
        };
        let comp_len = le_u32(h, 0) as usize;
        let raw_len = le_u32(h, 4);
        let Some(payload) =
            b.get(at + REC_HEADER_LEN..(at + REC_HEADER_LEN).saturating_add(comp_len))
        else {
            s.damage = Some(format!(
                "torn record at offset {at} (payload of {comp_len} bytes)"
            ));
            break;
        };
        let mut crc = crc32fast::Hasher::new();
        crc.update(&h[0..28]);
        crc.update(payload);
        if crc.finalize() != le_u32(h, 28) {
            s.damage = Some(format!("record checksum mismatch at offset {at}"));
            break;
        }
        let (min_t, max_t) = (le_i64(h, 8), le_i64(h, 16));
        if raw_len > MAX_RAW_LEN || min_t > max_t {
            s.damage = Some(format!("implausible record header at offset {at}"));
            break;
        }
        s.records.push(RecordInfo {
            payload_at: at + REC_HEADER_LEN,
            comp_len,
            raw_len: raw_len as usize,
            min_t,
            max_t,
            n_samples: le_u32(h, 24),
        });
        at += REC_HEADER_LEN + comp_len;
        s.valid_len = at;
    }
    s
}

/// Decodes the samples of a segment's bytes (header included) whose time is in `[mint, maxt]`,
/// calling `f(sid, t, v)` in file order. Stops early once no later record can hold a sample
/// `<= maxt`. An `Err` names the damage; samples before it were delivered.
pub fn decode(
    b: &[u8],
    max_sid: u32,
    mint: i64,
    maxt: i64,
    mut f: impl FnMut(u32, i64, f64),
) -> Result<(), String> {
    let h = parse_header(b)?;
    let sc = scan(b);
    // suffix minimum of min_t: stop when nothing later can be <= maxt.
    let mut suffix_min = vec![i64::MAX; sc.records.len() + 1];
    for i in (0..sc.records.len()).rev() {
        suffix_min[i] = suffix_min[i + 1].min(sc.records[i].min_t);
    }
    let mut dec = zstd::stream::raw::Decoder::new().map_err(|e| format!("zstd init: {e}"))?;
    let mut states: Vec<SeriesState> = Vec::new();
    let mut coder = (h.version >= 2).then(ValueCoder::default);
    let mut raw: Vec<u8> = Vec::new();
    let mut scratch = Vec::new();
    for (i, r) in sc.records.iter().enumerate() {
        if suffix_min[i] > maxt {
            break;
        }
        raw.clear();
        raw.resize(r.raw_len, 0);
        let payload = &b[r.payload_at..r.payload_at + r.comp_len];
        inflate(&mut dec, payload, &mut raw)
            .map_err(|e| format!("record at offset {}: {e}", r.payload_at - REC_HEADER_LEN))?;
        let want = r.min_t <= maxt && r.max_t >= mint;
        decode_record(
            &raw,
            &mut states,
            h.base_t,
            max_sid,
            &mut scratch,
            coder.as_mut(),
            |sid, t, v| {
                if want && t >= mint && t <= maxt {
                    f(sid, t, v)
                }
            },
        )
        .map_err(|e| format!("record at offset {}: {e}", r.payload_at - REC_HEADER_LEN))?;
    }
    if let Some(d) = sc.damage {
        return Err(d);
    }
    Ok(())
}

/// Feeds one record's payload to the stream decoder, expecting exactly `out.len()` bytes.
fn inflate(
    dec: &mut zstd::stream::raw::Decoder<'static>,
    mut input: &[u8],
    out: &mut [u8],
) -> Result<(), String> {
    use zstd::stream::raw::Operation;
    let mut written = 0;
    loop {
        let st = dec
            .run_on_buffers(input, &mut out[written..])
            .map_err(|e| format!("zstd: {e}"))?;
        input = &input[st.bytes_read..];
        written += st.bytes_written;
        if input.is_empty() && (written == out.len() || st.bytes_written == 0) {
            break;
        }
        if st.bytes_read == 0 && st.bytes_written == 0 {
            break;
        }
    }
    if written != out.len() {
        return Err(format!(
            "decoded {written} bytes, header says {}",
            out.len()
        ));
    }
    // A flushed stream piece leaves nothing pending; anything more is not ours.
    let mut probe = [0u8; 1];
    let st = dec
        .run_on_buffers(&[], &mut probe)
        .map_err(|e| format!("zstd: {e}"))?;
    if st.bytes_written != 0 {
        return Err("record decodes to more bytes than its header says".into());
    }
    Ok(())
}

/// A segment as the store tracks it.
#[derive(Clone, Debug)]
pub struct SegmentInfo {
    /// Segment number.
    pub seq: u64,
    /// Current path (`.live` or sealed name).
    pub path: PathBuf,
    /// Smallest timestamp (i64::MAX when empty).
    pub min_t: i64,
    /// Largest timestamp (i64::MIN when empty).
    pub max_t: i64,
    /// Bytes that hold intact, published records; readers read no further.
    pub len: u64,
    /// Whether the file is still being appended to.
    pub live: bool,
}

/// The sealed file name of a segment.
pub fn sealed_name(seq: u64, min_t: i64, max_t: i64) -> String {
    format!("{seq:010}_{min_t}_{max_t}.seg")
}

/// Parses a sealed file name into `(seq, min_t, max_t)`.
pub fn parse_sealed_name(name: &str) -> Option<(u64, i64, i64)> {
    let stem = name.strip_suffix(".seg")?;
    let mut it = stem.splitn(3, '_');
    let seq = it.next()?.parse().ok()?;
    let mn = it.next()?.parse().ok()?;
    let mx = it.next()?.parse().ok()?;
    Some((seq, mn, mx))
}

/// Parses a live file name into its seq.
pub fn parse_live_name(name: &str) -> Option<u64> {
    name.strip_suffix(".live")?.parse().ok()
}

/// fsyncs a directory so that creates, renames and deletes in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The writer of the one segment being appended to.
///
/// It keeps no file open between appends: each append opens the file, writes one record at the
/// known end, fsyncs and closes it. Linux refuses to remount a file system read-only while a
/// file on it is open for writing (EBUSY), so holding the file open would stop an operator
/// from remounting the card read-only (to protect or back it up) while edgeprom runs; one
/// `open` per flush costs nothing next to its `fdatasync`.
pub struct SegmentWriter {
    dir: PathBuf,
    path: PathBuf,
    seq: u64,
    /// Partition start this segment belongs to.
    pub partition: i64,
    base_t: i64,
    len: u64,
    min_t: i64,
    max_t: i64,
    enc: zstd::stream::write::Encoder<'static, Vec<u8>>,
    states: Vec<SeriesState>,
    /// The value coder of a format-2 segment (`None`: format 1, kept for tests).
    coder: Option<ValueCoder>,
    raw: Vec<u8>,
    ts: Vec<u8>,
    rec: Vec<u8>,
    /// Whether the directory entry has been made durable.
    dir_synced: bool,
    /// Leave the directory fsync to the caller (one per flush for many one-shot segments).
    defer_dir_sync: bool,
    /// fsync every record (the store's flushes); a bulk writer (import) syncs once, at seal.
    sync_each: bool,
}

impl SegmentWriter {
    /// Creates `dir/SEQ.live` with its header, durably.
    pub fn create(dir: &Path, seq: u64, partition: i64) -> io::Result<(Self, u64)> {
        Self::create_with(dir, seq, partition, true)
    }

    fn create_with(dir: &Path, seq: u64, partition: i64, sync: bool) -> io::Result<(Self, u64)> {
        Self::create_version(dir, seq, partition, sync, VERSION)
    }

    /// Creates a segment of format `version` (1 or 2; tests write format 1 to check that it
    /// still reads).
    fn create_version(
        dir: &Path,
        seq: u64,
        partition: i64,
        sync: bool,
        version: u16,
    ) -> io::Result<(Self, u64)> {
        let path = dir.join(format!("{seq:010}.live"));
        let mut file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)?;
        let h = Header {
            version,
            base_t: partition,
            seq,
            partition,
        };
        let res = file.write_all(&encode_header(&h)).and_then(|_| {
            if sync {
                file.sync_data()
            } else {
                Ok(())
            }
        });
        // Not kept open: a file open for writing makes a read-only remount fail with "busy".
        drop(file);
        if let Err(e) = res {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        if sync {
            let _ = sync_dir(dir);
        }
        let lvl = if sync { ZSTD_LEVEL } else { ZSTD_LEVEL_BULK };
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), lvl)?;
        if sync {
            enc.window_log(ZSTD_WINDOW_LOG)?;
        }
        Ok((
            SegmentWriter {
                dir: dir.to_path_buf(),
                path,
                seq,
                partition,
                base_t: partition,
                len: HEADER_LEN as u64,
                min_t: i64::MAX,
                max_t: i64::MIN,
                enc,
                states: Vec::new(),
                coder: (version >= 2).then(ValueCoder::default),
                raw: Vec::new(),
                ts: Vec::new(),
                rec: Vec::new(),
                dir_synced: false,
                defer_dir_sync: false,
                sync_each: sync,
            },
            HEADER_LEN as u64,
        ))
    }

    /// A writer for bulk loads (import): records are written without an fsync each; `seal`
    /// fsyncs the file once and leaves the directory fsync to the caller. Until sealed the file
    /// is a `.live` segment whose unsynced tail a crash may tear, which the next open cuts.
    pub fn create_bulk(dir: &Path, seq: u64, partition: i64) -> io::Result<(Self, u64)> {
        let (mut w, n) = Self::create_with(dir, seq, partition, false)?;
        w.defer_dir_sync = true;
        Ok((w, n))
    }

    /// The segment's sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Bytes of the file up to the end of its last intact record.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// What readers may see of this segment now.
    pub fn info(&self) -> SegmentInfo {
        SegmentInfo {
            seq: self.seq,
            path: self.path.clone(),
            min_t: self.min_t,
            max_t: self.max_t,
            len: self.len,
            live: true,
        }
    }

    /// Appends one record holding `samples` (sorted by sid then t) and makes it durable.
    /// Returns the bytes written. After an error the writer must be sealed and not used again
    /// (the compressor's state has moved past what is on disk); the file is cut back to its
    /// last intact record.
    pub fn append(&mut self, samples: &[RawSample]) -> io::Result<u64> {
        if samples.is_empty() {
            return Ok(0);
        }
        self.raw.clear();
        encode_record(
            samples,
            &mut self.states,
            self.base_t,
            &mut self.raw,
            &mut self.ts,
            self.coder.as_mut(),
        );
        if self.raw.len() > MAX_RAW_LEN as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "record too large",
            ));
        }
        self.enc.write_all(&self.raw)?;
        self.enc.flush()?;
        let payload = std::mem::take(self.enc.get_mut());
        let (mut mn, mut mx) = (i64::MAX, i64::MIN);
        for s in samples {
            mn = mn.min(s.t);
            mx = mx.max(s.t);
        }
        self.rec.clear();
        self.rec
            .extend_from_slice(&(payload.len() as u32).to_le_bytes());
        self.rec
            .extend_from_slice(&(self.raw.len() as u32).to_le_bytes());
        self.rec.extend_from_slice(&mn.to_le_bytes());
        self.rec.extend_from_slice(&mx.to_le_bytes());
        self.rec
            .extend_from_slice(&(samples.len() as u32).to_le_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&self.rec);
        crc.update(&payload);
        self.rec.extend_from_slice(&crc.finalize().to_le_bytes());
        self.rec.extend_from_slice(&payload);
        let mut reuse = payload;
        reuse.clear();
        *self.enc.get_mut() = reuse;
        // Opened per record, not kept: a file open for writing blocks a read-only remount.
        let file = OpenOptions::new().write(true).open(&self.path)?;
        let res = {
            use std::os::unix::fs::FileExt;
            file.write_all_at(&self.rec, self.len).and_then(|_| {
                if self.sync_each {
                    file.sync_data()
                } else {
                    Ok(())
                }
            })
        };
        if let Err(e) = res {
            let _ = file.set_len(self.len);
            return Err(e);
        }
        drop(file);
        if !self.dir_synced && !self.defer_dir_sync {
            sync_dir(&self.dir)?;
            self.dir_synced = true;
        }
        self.len += self.rec.len() as u64;
        self.min_t = self.min_t.min(mn);
        self.max_t = self.max_t.max(mx);
        Ok(self.rec.len() as u64)
    }

    /// Seals the segment: renames it to its final name (or deletes it when empty).
    /// Returns the sealed info, or `None` when the segment held nothing.
    pub fn seal(self) -> io::Result<Option<SegmentInfo>> {
        // Cut anything a failed append may have left past the last intact record (best
        // effort: on a read-only file system the rename below fails too, and start-up cuts it).
        // A bulk writer (import) makes its records durable here, once.
        match OpenOptions::new().write(true).open(&self.path) {
            Ok(f) => {
                if f.metadata().is_ok_and(|m| m.len() != self.len) {
                    let _ = f.set_len(self.len);
                }
                if !self.sync_each {
                    f.sync_data()?;
                }
            }
            Err(e) if !self.sync_each => return Err(e),
            Err(_) => {}
        }
        let sync = !self.defer_dir_sync;
        seal_file(
            &self.dir, &self.path, self.seq, self.min_t, self.max_t, self.len, sync,
        )
    }
}

/// Renames a finished `.live` file to its sealed name (or removes it if it has no records).
pub fn seal_file(
    dir: &Path,
    path: &Path,
    seq: u64,
    min_t: i64,
    max_t: i64,
    len: u64,
    sync: bool,
) -> io::Result<Option<SegmentInfo>> {
    if min_t > max_t {
        fs::remove_file(path)?;
        if sync {
            let _ = sync_dir(dir);
        }
        return Ok(None);
    }
    let to = dir.join(sealed_name(seq, min_t, max_t));
    fs::rename(path, &to)?;
    if sync {
        sync_dir(dir)?;
    }
    Ok(Some(SegmentInfo {
        seq,
        path: to,
        min_t,
        max_t,
        len,
        live: false,
    }))
}

/// Writes a complete segment holding `samples` in one record and seals it (used for data that
/// falls in an older partition than the live one, e.g. a backfill). One fsync; the caller
/// fsyncs the directory once for all one-shot segments of a flush.
pub fn write_oneshot(
    dir: &Path,
    seq: u64,
    partition: i64,
    samples: &[RawSample],
) -> io::Result<(Option<SegmentInfo>, u64)> {
    let (mut w, mut n) = SegmentWriter::create(dir, seq, partition)?;
    w.defer_dir_sync = true;
    match w.append(samples) {
        Ok(k) => n += k,
        Err(e) => {
            let p = w.path.clone();
            drop(w);
            let _ = fs::remove_file(p);
            return Err(e);
        }
    }
    Ok((w.seal()?, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(n: u32, t: i64) -> Vec<RawSample> {
        (0..n)
            .map(|sid| RawSample {
                sid,
                t: t + i64::from(sid % 3),
                v: f64::from(sid) * 0.25 + t as f64,
            })
            .collect()
    }

    #[test]
    fn write_seal_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut w, _) = SegmentWriter::create(dir.path(), 7, 0).expect("create");
        let mut want = Vec::new();
        for k in 0..20 {
            let s = samples(50, 1_000 + k * 15_000);
            w.append(&s).expect("append");
            want.extend(s);
        }
        let info = w.seal().expect("seal").expect("non-empty");
        let name = info
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name");
        assert_eq!(
            parse_sealed_name(name),
            Some((7, 1_000, 1_000 + 19 * 15_000 + 2))
        );
        let bytes = fs::read(&info.path).expect("read");
        let mut got = Vec::new();
        decode(&bytes, 50, i64::MIN, i64::MAX, |sid, t, v| {
            got.push(RawSample { sid, t, v })
        })
        .expect("decode");
        assert_eq!(got, want);
        // A time window: records before and after are skipped or filtered.
        let mut n = 0;
        decode(&bytes, 50, 16_000, 31_000, |_, t, _| {
            assert!((16_000..=31_000).contains(&t));
            n += 1
        })
        .expect("decode");
        assert_eq!(n, 50 + 17); // k=1 whole; k=2 only sid % 3 == 0 (t exactly 31_000)
    }

    /// Samples with every kind of value: counters, two-decimal gauges, histogram-like
    /// neighbours, raw floats, the staleness marker.
    fn mixed(k: i64) -> Vec<RawSample> {
        (0..40u32)
            .map(|sid| {
                let t = 1_000 + k * 15_000;
                let v = match sid % 5 {
                    0 => (k * i64::from(sid + 1)) as f64,
                    1 => 20.0 + ((k * 7 + i64::from(sid)) % 13) as f64 / 100.0,
                    2 => (k * 3 + i64::from(sid)) as f64,
                    3 if k % 9 == 4 => f64::from_bits(crate::model::STALE_NAN_BITS),
                    _ => (k as f64 * 0.1 + f64::from(sid)).sqrt(),
                };
                RawSample { sid, t, v }
            })
            .collect()
    }

    /// Format 1 (varint value column) is what stores made before format 2: a segment written
    /// by the format-1 encoder must still decode, both one written now and the one an earlier
    /// build wrote (`testdata/format1.seg`, zstd level 9 with its default window).
    #[test]
    fn format_1_segment_still_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut w, _) = SegmentWriter::create_version(dir.path(), 3, 0, true, 1).expect("create");
        let mut want = Vec::new();
        for k in 0..30 {
            let s = mixed(k);
            w.append(&s).expect("append");
            want.extend(s);
        }
        let info = w.seal().expect("seal").expect("non-empty");
        let bytes = fs::read(&info.path).expect("read");
        assert_eq!(parse_header(&bytes).expect("header").version, 1);
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/tsdb/testdata/format1.seg");
        if std::env::var_os("EDGEPROM_WRITE_FIXTURE").is_some() {
            fs::write(&fixture, &bytes).expect("write fixture");
        }
        let old = fs::read(&fixture).expect("fixture");
        for b in [&bytes, &old] {
            let mut got = Vec::new();
            decode(b, 40, i64::MIN, i64::MAX, |sid, t, v| {
                got.push((sid, t, v.to_bits()))
            })
            .expect("decode");
            let w: Vec<(u32, i64, u64)> =
                want.iter().map(|s| (s.sid, s.t, s.v.to_bits())).collect();
            assert_eq!(got, w);
        }
        // The same samples in format 2 decode identically (30 records of 40 series are too few for
        // its adaptive probabilities to pay off: 4,983 bytes against 4,692).
        let (mut w2, _) = SegmentWriter::create(dir.path(), 4, 0).expect("create");
        for k in 0..30 {
            w2.append(&mixed(k)).expect("append");
        }
        let info2 = w2.seal().expect("seal").expect("non-empty");
        let b2 = fs::read(&info2.path).expect("read");
        assert_eq!(parse_header(&b2).expect("header").version, 2);
        let mut got = Vec::new();
        decode(&b2, 40, i64::MIN, i64::MAX, |sid, t, v| {
            got.push((sid, t, v.to_bits()))
        })
        .expect("decode");
        assert_eq!(got.len(), want.len());
        assert!(got
            .iter()
            .zip(&want)
            .all(|(g, s)| *g == (s.sid, s.t, s.v.to_bits())));
    }

    #[test]
    fn damaged_bytes_are_reported_not_panicked_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut w, _) = SegmentWriter::create(dir.path(), 1, 0).expect("create");
        for k in 0..5 {
            w.append(&samples(30, k * 10_000)).expect("append");
        }
        let info = w.seal().expect("seal").expect("some");
        let good = fs::read(&info.path).expect("read");
        // Every truncation and every single-byte flip: never a panic; an intact prefix decodes.
        for cut in (0..good.len()).step_by(7) {
            let _ = decode(&good[..cut], 30, i64::MIN, i64::MAX, |_, _, _| {});
        }
        for at in (0..good.len()).step_by(3) {
            let mut b = good.clone();
            b[at] ^= 0x5a;
            let mut n = 0;
            let r = decode(&b, 30, i64::MIN, i64::MAX, |_, _, _| n += 1);
            assert!(r.is_err(), "flip at {at} not detected");
        }
    }
}
