//! Retention by time and by size, and behaviour on a full disk (a real 2 MiB tmpfs).
#![allow(clippy::print_stdout)] // skip reasons are printed

use edgeprom::model::{Labels, Matcher};
use edgeprom::storage::{Appendable, Queryable, SelectHints, SeriesRef, StorageError};
use edgeprom::tsdb::{Options, Tsdb, PARTITION_MS};
use std::path::Path;
use std::time::Duration;

const STEP: i64 = 60_000;
const BASE: i64 = 1_700_000_000_000 / PARTITION_MS * PARTITION_MS;

fn opts(dir: &Path) -> Options {
    Options {
        path: dir.to_path_buf(),
        retention_time: Duration::ZERO,
        retention_size: 0,
        flush_interval: Duration::from_millis(50),
        max_series: 0,
        read_cache_size: edgeprom::tsdb::DEFAULT_READ_CACHE_BYTES,
    }
}

fn labels(i: usize) -> Labels {
    Labels::from_pairs([("__name__", "ret_test"), ("i", &i.to_string())])
}

/// Ingests `hours` of 20 series at 1/min, flushing every 10 minutes of data.
fn fill(db: &Tsdb, from: i64, hours: i64, noisy: bool) -> i64 {
    let mut refs = [SeriesRef(0); 20];
    let n = hours * 3_600_000 / STEP;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut t = from;
    for k in 0..n {
        t = from + k * STEP;
        let mut a = db.appender();
        for (i, r) in refs.iter_mut().enumerate() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = if noisy {
                f64::from_bits(x >> 2)
            } else {
                (k * i as i64) as f64
            };
            *r = a.append(*r, &labels(i), t, v).expect("append");
        }
        a.commit().expect("commit");
        if k % 10 == 9 {
            db.flush().expect("flush");
        }
    }
    db.flush().expect("flush");
    t
}

fn oldest(db: &Tsdb) -> Option<i64> {
    let q = db.querier(i64::MIN, i64::MAX).expect("q");
    q.select(
        &SelectHints::default(),
        &[Matcher::equal("__name__", "ret_test")],
    )
    .filter_map(|mut s| s.samples.next().map(|x| x.0))
    .min()
}

fn newest(db: &Tsdb) -> Option<i64> {
    let q = db.querier(i64::MIN, i64::MAX).expect("q");
    q.select(
        &SelectHints::default(),
        &[Matcher::equal("__name__", "ret_test")],
    )
    .filter_map(|s| s.samples.last().map(|x| x.0))
    .max()
}

#[test]
fn retention_by_time_removes_whole_old_partitions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let last = {
        let db = Tsdb::open(opts(dir.path())).expect("open");
        let last = fill(&db, BASE, 10, false);
        db.close().expect("close");
        last
    };
    // (retention, oldest allowed sample): whole 2 h partitions go once entirely too old.
    let cases = [
        (Duration::ZERO, BASE),
        (Duration::from_secs(5 * 3600), BASE + 2 * PARTITION_MS),
    ];
    for (rt, want_oldest) in cases {
        let db = Tsdb::open(Options {
            retention_time: rt,
            ..opts(dir.path())
        })
        .expect("open");
        assert_eq!(oldest(&db), Some(want_oldest), "retention {rt:?}");
        assert_eq!(newest(&db), Some(last), "newest data kept");
        // Older than the retention window: out of bounds, as Prometheus.
        if !rt.is_zero() {
            let mut a = db.appender();
            let r = a.append(SeriesRef(0), &labels(0), BASE, 1.0);
            assert!(matches!(r, Err(StorageError::OutOfBounds)), "{r:?}");
        }
        db.close().expect("close");
    }
}

#[test]
fn retention_by_size_counts_every_file_and_removes_oldest_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Tsdb::open(opts(dir.path())).expect("open");
    fill(&db, BASE, 12, true);
    db.close().expect("close");
    let full = dir_bytes(dir.path());
    let limit = full / 2;
    let db = Tsdb::open(Options {
        retention_size: limit,
        ..opts(dir.path())
    })
    .expect("open");
    let on_disk = dir_bytes(dir.path());
    assert!(on_disk <= limit, "{on_disk} > {limit}");
    assert_eq!(db.disk_bytes(), on_disk, "the store counts every file");
    let o = oldest(&db).expect("data left");
    assert!(o > BASE, "oldest removed first");
    assert_eq!(
        newest(&db),
        Some(BASE + 12 * 3_600_000 - STEP),
        "newest kept"
    );
    // Periodic retention: more data, then apply again.
    fill(&db, BASE + 12 * 3_600_000, 4, true);
    db.apply_retention();
    assert!(dir_bytes(dir.path()) <= limit + live_bytes(dir.path()));
}

fn dir_bytes(d: &Path) -> u64 {
    std::fs::read_dir(d)
        .expect("ls")
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

fn live_bytes(d: &Path) -> u64 {
    std::fs::read_dir(d)
        .expect("ls")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "live"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

struct Mount(std::path::PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn full_disk_fails_appends_cleanly_and_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&mnt)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        println!("SKIPPED full_disk test: cannot mount a tmpfs here (needs root)");
        return;
    }
    let _m = Mount(mnt.clone());
    let data = mnt.join("data");
    // Something else fills the disk too; removing it later gives space back.
    let filler = mnt.join("filler");
    std::fs::write(&filler, vec![0u8; 1 << 20]).expect("filler");
    let db = Tsdb::open(opts(&data)).expect("open");
    let mut refs = [SeriesRef(0); 20];
    let mut accepted: Vec<i64> = Vec::new();
    let mut x: u64 = 1;
    let mut t = BASE;
    let mut failed = false;
    for _ in 0..200_000 {
        let mut a = db.appender();
        for (i, r) in refs.iter_mut().enumerate() {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *r = a
                .append(*r, &labels(i), t, f64::from_bits(x >> 2))
                .expect("append");
        }
        match a.commit() {
            Ok(()) => accepted.push(t),
            Err(StorageError::Write(msg)) => {
                assert!(msg.contains("disk"), "{msg}");
                failed = true;
                break;
            }
            Err(e) => panic!("unexpected {e}"),
        }
        if db.flush().is_err() {
            // The next commit must be refused.
            t += STEP;
            continue;
        }
        t += STEP;
    }
    assert!(failed, "the disk never filled");
    assert!(db.is_ready(), "still ready while the disk is full");
    // Queries keep working and see everything accepted (flushed or still in memory).
    let q = db.querier(i64::MIN, i64::MAX).expect("q");
    let n = q
        .select(&SelectHints::default(), &[Matcher::equal("i", "3")])
        .next()
        .map_or(0, |s| s.samples.count());
    assert_eq!(n, accepted.len());
    // Space returns: the next flush succeeds and ingestion resumes by itself.
    std::fs::remove_file(&filler).expect("free space");
    db.flush().expect("flush after space returned");
    let mut a = db.appender();
    a.append(refs[0], &labels(0), t + STEP, 1.0)
        .expect("append");
    a.commit().expect("commit accepted again");
    db.close().expect("close");
    let db = Tsdb::open(opts(&data)).expect("reopen");
    let q = db.querier(i64::MIN, i64::MAX).expect("q");
    let got: Vec<i64> = q
        .select(&SelectHints::default(), &[Matcher::equal("i", "3")])
        .next()
        .map(|s| s.samples.map(|x| x.0).collect())
        .unwrap_or_default();
    assert_eq!(got, accepted, "nothing accepted was lost");
    db.close().expect("close");
}
