//! Tests of deletion, tombstone cleaning and snapshots on real stores in temp dirs.

use super::*;
use crate::model::{Labels, MatchType};
use crate::storage::{Appendable, Queryable, SelectHints};
use crate::tsdb::{Options, PARTITION_MS};
use std::time::Duration;

const T0: i64 = PARTITION_MS * 240_000; // partition-aligned, year 2079
const STEP: i64 = 15_000;

fn opts(dir: &Path) -> Options {
    Options {
        path: dir.to_path_buf(),
        retention_time: Duration::ZERO,
        retention_size: 0,
        flush_interval: Duration::from_secs(3600),
        max_series: 0,
        read_cache_size: crate::tsdb::DEFAULT_READ_CACHE_BYTES,
    }
}

fn lbl(name: &str, i: u32) -> Labels {
    Labels::from_pairs([("__name__", name), ("i", &i.to_string())])
}

/// Appends `n` scrapes from `from` of `keep{i=0..3}` and `gone{i=0..3}`: gauges with one
/// decimal that jump around (so that deleted samples take visible room).
fn fill(db: &Tsdb, from: i64, n: i64) {
    for k in 0..n {
        let t = from + k * STEP;
        let mut a = db.appender();
        for name in ["keep", "gone"] {
            for i in 0..4 {
                a.append(
                    SeriesRef0,
                    &lbl(name, i),
                    t,
                    noise(t, i + if name == "gone" { 100 } else { 0 }),
                )
                .expect("append");
            }
        }
        a.commit().expect("commit");
    }
}

/// A value with one decimal in [0, 100) that does not repeat (splitmix64 of t and i).
fn noise(t: i64, i: u32) -> f64 {
    let mut z = (t as u64) ^ (u64::from(i) << 48);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z % 1000) as f64 / 10.0
}

#[allow(non_upper_case_globals)]
const SeriesRef0: crate::storage::SeriesRef = crate::storage::SeriesRef(0);

type Dump = Vec<(String, Vec<(i64, u64)>)>;

fn dump(db: &Tsdb, ms: &[Matcher]) -> Dump {
    let q = db.querier(i64::MIN, i64::MAX).expect("querier");
    q.select(&SelectHints::default(), ms)
        .map(|s| {
            (
                s.labels.to_string(),
                s.samples.map(|(t, v)| (t, v.to_bits())).collect(),
            )
        })
        .collect()
}

fn m(kind: MatchType, name: &str, value: &str) -> Matcher {
    Matcher::new(kind, name, value).expect("matcher")
}

fn values(db: &Tsdb, name: &str) -> Vec<String> {
    db.querier(i64::MIN, i64::MAX)
        .expect("querier")
        .label_values(name, &[])
        .expect("values")
}

/// Bytes of the segments (sealed and live) in `dir`.
fn sealed_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .expect("ls")
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.ends_with(".seg") || n.ends_with(".live")
        })
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum()
}

/// A store with three partitions: two sealed, the third in the live segment plus some samples
/// not yet flushed.
fn three_partitions(dir: &Path) -> Arc<Tsdb> {
    let db = Tsdb::open(opts(dir)).expect("open");
    let per = PARTITION_MS / STEP;
    fill(&db, T0, per);
    db.flush().expect("flush");
    fill(&db, T0 + PARTITION_MS, per);
    db.flush().expect("flush");
    fill(&db, T0 + 2 * PARTITION_MS, 40);
    db.flush().expect("flush");
    fill(&db, T0 + 2 * PARTITION_MS + 40 * STEP, 10);
    db
}

/// What `dump` should show after deleting `gone{i="0"}` entirely and `keep{i="1"}` within
/// `[lo, hi]`.
fn expected_after_delete(before: &Dump, lo: i64, hi: i64) -> Dump {
    before
        .iter()
        .filter(|(l, _)| l != r#"gone{i="0"}"#)
        .map(|(l, s)| {
            let s = if l == r#"keep{i="1"}"# {
                s.iter()
                    .copied()
                    .filter(|&(t, _)| t < lo || t > hi)
                    .collect()
            } else {
                s.clone()
            };
            (l.clone(), s)
        })
        .collect()
}

#[test]
fn tombstone_intervals_merge_and_cover() {
    // (intervals added, merged result, probes that are covered, probes that are not)
    type Case = (Vec<(i64, i64)>, Vec<(i64, i64)>, Vec<i64>, Vec<i64>);
    let cases: Vec<Case> = vec![
        (
            vec![(10, 20)],
            vec![(10, 20)],
            vec![10, 15, 20],
            vec![9, 21],
        ),
        (
            vec![(10, 20), (30, 40)],
            vec![(10, 20), (30, 40)],
            vec![30],
            vec![25],
        ),
        (vec![(10, 20), (15, 40)], vec![(10, 40)], vec![25], vec![41]),
        (
            vec![(10, 20), (21, 30)],
            vec![(10, 30)],
            vec![20, 21],
            vec![31],
        ),
        (
            vec![(30, 40), (10, 20), (0, 50)],
            vec![(0, 50)],
            vec![0, 50],
            vec![51],
        ),
        (
            vec![(i64::MIN, 5), (3, 9)],
            vec![(i64::MIN, 9)],
            vec![i64::MIN, 9],
            vec![10],
        ),
        (vec![(5, 4)], vec![], vec![], vec![4, 5]),
    ];
    for (add, want, yes, no) in cases {
        let mut t = Tombstones::default();
        for &(a, b) in &add {
            t.add(7, a, b);
        }
        assert_eq!(t.intervals(7).unwrap_or(&[]), &want[..], "{add:?}");
        for p in yes {
            assert!(t.covers(7, p), "{add:?} should cover {p}");
            assert!(!t.covers(8, p), "other series untouched");
        }
        for p in no {
            assert!(!t.covers(7, p), "{add:?} should not cover {p}");
        }
        let back = Tombstones::decode(&t.encode()).expect("decode");
        assert_eq!(back, t, "round trip of {add:?}");
    }
}

#[test]
fn damaged_tombstones_file_is_an_error_naming_it() {
    let mut t = Tombstones::default();
    t.add(1, i64::MIN, 50);
    t.add(2, 100, 200);
    t.add(2, 300, 400);
    let good = t.encode();
    // Every truncation and every byte flip is refused, never a panic.
    for cut in 0..good.len() {
        assert!(Tombstones::decode(&good[..cut]).is_err(), "cut at {cut}");
    }
    for at in 0..good.len() {
        let mut b = good.clone();
        b[at] ^= 0x40;
        assert!(Tombstones::decode(&b).is_err(), "flip at {at}");
    }
    // A newer format version with a valid checksum is named as such.
    let mut newer = good.clone();
    newer[6] = 9;
    let n = newer.len();
    let crc = crc32fast::hash(&newer[..n - 4]);
    newer[n - 4..].copy_from_slice(&crc.to_le_bytes());
    let e = Tombstones::decode(&newer).expect_err("newer version");
    assert!(e.contains("version 9"), "{e}");

    // Opening a data directory with a damaged file fails and names the file.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(TOMBSTONES_FILE);
    fs::write(&path, &good[..good.len() - 3]).expect("write");
    let err = match Tsdb::open(opts(dir.path())) {
        Ok(_) => panic!("opened with a damaged tombstones file"),
        Err(e) => e,
    };
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn deleted_data_disappears_from_every_read_and_stays_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = three_partitions(dir.path());
    let before = dump(&db, &[]);
    assert_eq!(before.len(), 8);
    let (lo, hi) = (
        T0 + PARTITION_MS - 10 * STEP,
        T0 + 2 * PARTITION_MS + 45 * STEP,
    );
    db.delete_series(
        &[vec![
            m(MatchType::Equal, "__name__", "gone"),
            m(MatchType::Equal, "i", "0"),
        ]],
        i64::MIN,
        i64::MAX,
    )
    .expect("delete gone{i=0}");
    db.delete_series(
        &[vec![
            m(MatchType::Equal, "__name__", "keep"),
            m(MatchType::Equal, "i", "1"),
        ]],
        lo,
        hi,
    )
    .expect("delete part of keep{i=1}");
    // A selector without matchers deletes nothing (as in Prometheus).
    db.delete_series(&[vec![]], i64::MIN, i64::MAX)
        .expect("empty selector");
    let want = expected_after_delete(&before, lo, hi);
    assert_eq!(dump(&db, &[]), want);
    // Label queries and status no longer see the fully deleted series.
    let gone_only = [m(MatchType::Equal, "__name__", "gone")];
    let q = db.querier(i64::MIN, i64::MAX).expect("querier");
    assert_eq!(
        q.label_values("i", &gone_only).expect("values"),
        ["1", "2", "3"]
    );
    drop(q);
    assert_eq!(
        values(&db, "i"),
        ["0", "1", "2", "3"],
        "keep{{i=0}} still has i=0"
    );
    let st = db.status(10);
    assert_eq!(st.head_stats.num_series, 7);
    let gone = st
        .series_count_by_metric_name
        .iter()
        .find(|s| s.name == "gone");
    assert_eq!(gone.map(|s| s.value), Some(3));
    // The tombstones file exists, counts as storage, and the deletion survives a restart.
    let tomb_len = fs::metadata(dir.path().join(TOMBSTONES_FILE))
        .expect("tombstones")
        .len();
    assert_eq!(
        db.inner.disk_bytes(),
        sealed_bytes(dir.path())
            + fs::metadata(dir.path().join(serieslog::FILE_NAME))
                .expect("log")
                .len()
            + tomb_len
    );
    db.close().expect("close");
    drop(db);
    let db = Tsdb::open(opts(dir.path())).expect("reopen");
    assert_eq!(dump(&db, &[]), want, "after restart");
    assert_eq!(db.status(10).head_stats.num_series, 7, "after restart");
    // A newer sample brings the series back, with only what came after the deletion.
    let t_new = T0 + 3 * PARTITION_MS;
    let mut a = db.appender();
    a.append(SeriesRef0, &lbl("gone", 0), t_new, 42.0)
        .expect("append");
    a.commit().expect("commit");
    let back = dump(
        &db,
        &[
            m(MatchType::Equal, "__name__", "gone"),
            m(MatchType::Equal, "i", "0"),
        ],
    );
    assert_eq!(
        back,
        vec![(r#"gone{i="0"}"#.to_string(), vec![(t_new, 42f64.to_bits())])]
    );
    assert_eq!(db.status(10).head_stats.num_series, 8);
}

#[test]
fn clean_tombstones_rewrites_segments_and_keeps_reads_equal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = three_partitions(dir.path());
    let (lo, hi) = (
        T0 + PARTITION_MS - 10 * STEP,
        T0 + 2 * PARTITION_MS + 45 * STEP,
    );
    let before = dump(&db, &[]);
    db.delete_series(
        &[vec![
            m(MatchType::Equal, "__name__", "gone"),
            m(MatchType::Equal, "i", "0"),
        ]],
        i64::MIN,
        i64::MAX,
    )
    .expect("delete");
    db.delete_series(
        &[vec![
            m(MatchType::Equal, "__name__", "keep"),
            m(MatchType::Equal, "i", "1"),
        ]],
        lo,
        hi,
    )
    .expect("delete");
    let want = expected_after_delete(&before, lo, hi);
    db.flush().expect("flush");
    let bytes_before = sealed_bytes(dir.path());
    let st = db.clean_tombstones().expect("clean");
    // Both sealed partitions and the sealed live one held deleted samples.
    assert_eq!(st.rewritten, 3, "{st:?}");
    assert_eq!(st.removed, 0, "{st:?}");
    assert!(st.samples_removed > 0);
    // Only the marker hiding gone{i="0"} is left.
    assert_eq!(st.tombstones_left, 1, "{st:?}");
    assert_eq!(db.tombstone_count(), 1);
    assert_eq!(dump(&db, &[]), want, "after clean");
    assert!(
        sealed_bytes(dir.path()) < bytes_before,
        "segments did not shrink: {} -> {}",
        bytes_before,
        sealed_bytes(dir.path())
    );
    assert!(!dir.path().join(REWRITE_DIR).exists());
    // Cleaning again finds nothing to do.
    let again = db.clean_tombstones().expect("clean again");
    assert_eq!((again.rewritten, again.removed), (0, 0), "{again:?}");
    db.close().expect("close");
    drop(db);
    let db = Tsdb::open(opts(dir.path())).expect("reopen");
    assert_eq!(dump(&db, &[]), want, "after restart");
    assert_eq!(db.corruptions(), 0);
    assert_eq!(values(&db, "__name__"), ["gone", "keep"]);
    assert_eq!(db.status(10).head_stats.num_series, 7);
}

#[test]
fn a_segment_left_empty_is_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = three_partitions(dir.path());
    let n_seg = || {
        fs::read_dir(dir.path())
            .expect("ls")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
            .count()
    };
    // Everything in the first partition.
    db.delete_series(
        &[vec![m(MatchType::Regex, "__name__", ".+")]],
        i64::MIN,
        T0 + PARTITION_MS - 1,
    )
    .expect("delete");
    let segs = n_seg();
    let st = db.clean_tombstones().expect("clean");
    assert_eq!(st.removed, 1, "{st:?}");
    assert_eq!(n_seg(), segs - 1);
    assert_eq!(
        st.tombstones_left, 0,
        "partial deletions all applied: {st:?}"
    );
    assert!(!dir.path().join(TOMBSTONES_FILE).exists());
    let first = dump(&db, &[])
        .iter()
        .filter_map(|(_, s)| s.first().map(|x| x.0))
        .min();
    assert_eq!(first, Some(T0 + PARTITION_MS));
}

#[test]
fn an_interrupted_rewrite_is_finished_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = three_partitions(dir.path());
    db.close().expect("close");
    // Keep the original of the first sealed segment.
    let mut segs: Vec<PathBuf> = fs::read_dir(dir.path())
        .expect("ls")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    let original = segs[0].clone();
    let saved = fs::read(&original).expect("read");
    drop(db);
    let db = Tsdb::open(opts(dir.path())).expect("reopen");
    // Delete the first hour of the first partition: the rewrite gets a new (narrower) name.
    db.delete_series(
        &[vec![m(MatchType::Regex, "__name__", ".+")]],
        i64::MIN,
        T0 + 3_600_000,
    )
    .expect("delete");
    let want = dump(&db, &[]);
    db.clean_tombstones().expect("clean");
    assert!(!original.exists(), "renamed");
    db.close().expect("close");
    drop(db);
    // A crash after the rename but before the old name was removed, with the tombstones
    // still on disk, plus a half-written rewrite left in the scratch directory.
    fs::write(&original, &saved).expect("restore original");
    let mut t = Tombstones::default();
    for sid in 0..8 {
        t.add(sid, i64::MIN, T0 + 3_600_000);
    }
    store(dir.path(), &t).expect("tombstones");
    fs::create_dir_all(dir.path().join(REWRITE_DIR)).expect("mkdir");
    fs::write(
        dir.path().join(REWRITE_DIR).join("0000000000.live"),
        b"half",
    )
    .expect("write");
    let db = Tsdb::open(opts(dir.path())).expect("reopen");
    assert!(
        !original.exists(),
        "the superseded original is removed at open"
    );
    assert!(!dir.path().join(REWRITE_DIR).exists());
    assert_eq!(dump(&db, &[]), want);
}

#[test]
fn snapshots_open_as_data_directories() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = three_partitions(dir.path());
    db.delete_series(
        &[vec![
            m(MatchType::Equal, "__name__", "gone"),
            m(MatchType::Equal, "i", "2"),
        ]],
        i64::MIN,
        i64::MAX,
    )
    .expect("delete");
    let all = dump(&db, &[]);
    db.flush().expect("flush");
    let disk = db.disk_bytes();
    let name = db.snapshot(false).expect("snapshot");
    // Prometheus's name: YYYYMMDDTHHMMSSZ-<16 hex>.
    let (stamp, hex) = name.split_once('-').expect("dash");
    assert_eq!(stamp.len(), 16, "{name}");
    assert!(
        stamp.as_bytes()[8] == b'T' && stamp.ends_with('Z'),
        "{name}"
    );
    assert!(
        hex.len() == 16 && hex.chars().all(|c| c.is_ascii_hexdigit()),
        "{name}"
    );
    let snap = dir.path().join(SNAPSHOTS_DIR).join(&name);
    let name2 = db.snapshot(true).expect("snapshot without head");
    assert_ne!(name, name2);
    let snap2 = dir.path().join(SNAPSHOTS_DIR).join(&name2);
    // Snapshots are not storage: neither counted nor removed by retention.
    assert_eq!(db.disk_bytes(), disk, "a flush wrote nothing new");
    // The store keeps working after a snapshot.
    fill(&db, T0 + 2 * PARTITION_MS + 60 * STEP, 2);
    db.close().expect("close");
    drop(db);
    {
        let s = Tsdb::open(opts(&snap)).expect("snapshot opens");
        assert_eq!(dump(&s, &[]), all, "snapshot with head");
        assert_eq!(s.corruptions(), 0);
    }
    {
        let s = Tsdb::open(opts(&snap2)).expect("snapshot opens");
        let sealed_only: Dump = all
            .iter()
            .map(|(l, v)| {
                let v: Vec<(i64, u64)> = v
                    .iter()
                    .copied()
                    .filter(|&(t, _)| t < T0 + 2 * PARTITION_MS)
                    .collect();
                (l.clone(), v)
            })
            .collect();
        assert_eq!(
            dump(&s, &[]),
            sealed_only,
            "skip_head: sealed segments only"
        );
    }
    // The main store still opens with its snapshots inside, and retention by size ignores
    // them: a limit just above the store's own bytes removes nothing.
    let mut o = opts(dir.path());
    o.retention_size = disk + (64 << 10);
    let db = Tsdb::open(o).expect("reopen");
    assert_eq!(
        dump(&db, &[]).iter().map(|x| x.1.len()).sum::<usize>(),
        all.iter().map(|x| x.1.len()).sum::<usize>() + 2 * 8
    );
}

#[test]
fn utc_stamps() {
    let cases = [
        (0, "19700101T000000Z"),
        (951_782_400, "20000229T000000Z"),
        (1_796_000_000, "20261130T005320Z"),
        (4_102_444_799, "20991231T235959Z"),
    ];
    for (s, want) in cases {
        assert_eq!(utc_stamp(s), want, "{s}");
    }
}

#[test]
fn readers_during_a_clean_see_the_same_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = three_partitions(dir.path());
    let (lo, hi) = (T0 + 600_000, T0 + 2 * PARTITION_MS + 5 * STEP);
    db.delete_series(&[vec![m(MatchType::Regex, "i", "0|2")]], lo, hi)
        .expect("delete");
    let want = dump(&db, &[]);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (db, stop, want) = (db.clone(), stop.clone(), want.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) || n == 0 {
                    assert_eq!(dump(&db, &[]), want, "read {n} during clean");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let st = db.clean_tombstones().expect("clean");
    assert_eq!(st.rewritten, 3, "{st:?}");
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().expect("reader") > 0);
    }
    assert_eq!(dump(&db, &[]), want);
    assert_eq!(db.tombstone_count(), 0, "no series was deleted whole");
}
