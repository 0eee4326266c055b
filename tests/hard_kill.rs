//! SIGKILL loop: edgeprom scrapes a loopback target whose value counts the scrapes it served,
//! and is killed at random moments. After each kill the store is opened in-process and must
//! hold every sample scraped before the last flush window, each once, in order. Start-up time
//! after each kill is printed (recorded, never asserted).
//!
//! A reply the target wrote is not always a scrape that happened: with a 40 ms timeout on a
//! loaded machine the scraper may give up on a reply the kernel already accepted (the target
//! counts it as served), record `up` 0 for that scrape and store no `kill_seq`. The reply may
//! even be written after the next scrape began. Such replies are told apart by the store
//! itself (see `triage`): between two stored values, each missing one must be matched by a
//! stored `up` 0; a missing value without one is a lost sample and fails the test.

mod common;

use edgeprom::model::Matcher;
use edgeprom::storage::{Queryable, SelectHints};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ITERATIONS: usize = 50;
const FLUSH_MS: u64 = 200;

/// A target serving `kill_seq N`, N counting the scrapes served; records when each was served.
/// (sequence number, when it was served, the same as Unix milliseconds) of every scrape
/// answered.
type ServedLog = Arc<Mutex<Vec<(u64, Instant, i64)>>>;

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn start_target() -> (String, ServedLog) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let served = Arc::new(Mutex::new(Vec::new()));
    let log = served.clone();
    std::thread::spawn(move || {
        let mut seq = 0u64;
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut buf = [0u8; 4096];
            let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
            if c.read(&mut buf).unwrap_or(0) == 0 {
                continue;
            }
            seq += 1;
            let body = format!("# TYPE kill_seq gauge\nkill_seq {seq}\n");
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            if c.write_all(resp.as_bytes()).is_ok() {
                log.lock().unwrap().push((seq, Instant::now(), unix_ms()));
            }
        }
    });
    (addr, served)
}

/// All (t, v) of `kill_seq`, and of `up`, in the store at `dir`.
type Stored = (Vec<(i64, f64)>, Vec<(i64, f64)>);

fn read_store(dir: &std::path::Path) -> Stored {
    let db = edgeprom::tsdb::Tsdb::open(edgeprom::tsdb::Options {
        path: dir.to_path_buf(),
        retention_time: Duration::ZERO,
        ..Default::default()
    })
    .expect("store opens after SIGKILL");
    let mut out = (Vec::new(), Vec::new());
    {
        let q = db.querier(i64::MIN, i64::MAX).unwrap();
        let hints = SelectHints {
            start: i64::MIN,
            end: i64::MAX,
            ..Default::default()
        };
        for (name, into) in [("kill_seq", &mut out.0), ("up", &mut out.1)] {
            for s in q.select(&hints, &[Matcher::equal("__name__", name)]) {
                let mut it = s.samples;
                // Staleness markers (a timed-out scrape) are not scrapes of the target.
                into.extend(it.by_ref().filter(|s| !edgeprom::model::is_stale_nan(s.1)));
                it.take_err().unwrap();
            }
        }
    }
    let _ = db.close();
    out
}

/// Splits missing values (ascending) into replies abandoned by a failed scrape and lost
/// samples. Every scrape stores `up` (1 together with its `kill_seq`, 0 without one) and takes
/// at most one reply, so between two stored values at most as many can be missing as there
/// are `up` 0 samples between their timestamps; a gap with more missing values lost samples.
/// (`samples` is sorted, by time and by value.)
fn triage(missing: &[u64], samples: &[(i64, f64)], ups: &[(i64, f64)]) -> (Vec<u64>, Vec<u64>) {
    let (mut abandoned, mut lost) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < missing.len() {
        let k = samples.partition_point(|s| (s.1 as u64) < missing[i]);
        let lo = if k > 0 { samples[k - 1].0 } else { i64::MIN };
        let (hi, hi_v) = samples
            .get(k)
            .map_or((i64::MAX, u64::MAX), |s| (s.0, s.1 as u64));
        let gap: Vec<u64> = missing[i..]
            .iter()
            .copied()
            .take_while(|&m| m < hi_v)
            .collect();
        let failed = ups
            .iter()
            .filter(|u| u.0 > lo && u.0 < hi && u.1 == 0.0)
            .count();
        i += gap.len();
        if gap.len() <= failed {
            abandoned.extend(gap);
        } else {
            lost.extend(gap);
        }
    }
    (abandoned, lost)
}

/// The 50-kill loop (about a minute; run with `-- --ignored`).
#[test]
#[ignore = "long: 50 kills; the 10-kill variant runs by default"]
fn sigkill_loop_loses_nothing_older_than_the_flush_window() {
    kill_loop(ITERATIONS);
}

/// The same loop with 10 kills, for every `cargo test`.
#[test]
fn sigkill_loop_short() {
    kill_loop(10);
}

fn kill_loop(iterations: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (target, served) = start_target();
    common::write_file(
        dir.path(),
        "edgeprom.yml",
        &format!(
            "global:\n  scrape_interval: 50ms\n  scrape_timeout: 40ms\nscrape_configs:\n  - job_name: t\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    );
    let mut rng = 0x2545F4914F6CDD1Du64;
    let mut startups = Vec::new();
    let mut last_seen = 0.0;
    let mut may_lose = std::collections::HashSet::new();
    let mut timed_out = 0;
    for i in 0..iterations {
        let addr = format!("127.0.0.1:{}", common::free_port());
        let t0 = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_edgeprom"))
            .current_dir(dir.path())
            .args([
                "--config.file=edgeprom.yml",
                "--storage.tsdb.path=data",
                &format!("--storage.tsdb.flush-interval={FLUSH_MS}ms"),
                &format!("--web.listen-address={addr}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        while !common::try_request(&addr, "GET", "/-/ready", None).is_ok_and(|r| r.0 == 200) {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "iteration {i}: not ready"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        startups.push(t0.elapsed());
        // Run 0.3 to 1.3 s, then kill without warning.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(300 + rng % 1000));
        let killed_at = Instant::now();
        child.kill().unwrap();
        child.wait().unwrap();

        let (samples, ups) = read_store(&dir.path().join("data"));
        // Nothing duplicated, time and value both strictly increasing.
        for w in samples.windows(2) {
            assert!(
                w[0].0 < w[1].0,
                "iteration {i}: timestamps not increasing: {w:?}"
            );
            assert!(
                w[0].1 < w[1].1,
                "iteration {i}: value repeated or reordered: {w:?}"
            );
        }
        // Every scrape served more than two flush windows before the kill is stored.
        let window = Duration::from_millis(2 * FLUSH_MS + 300);
        let have: std::collections::HashSet<u64> = samples.iter().map(|s| s.1 as u64).collect();
        let must: Vec<(u64, i64)> = served
            .lock()
            .unwrap()
            .iter()
            .filter(|(seq, at, _)| *at + window < killed_at && !may_lose.contains(seq))
            .map(|(seq, _, ms)| (*seq, *ms))
            .collect();
        // Scrapes inside this kill's flush window may be lost, now and in later checks.
        may_lose.extend(
            served
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, at, _)| *at + window >= killed_at)
                .map(|(seq, _, _)| *seq),
        );
        let absent: Vec<u64> = must
            .iter()
            .map(|s| s.0)
            .filter(|s| !have.contains(s))
            .collect();
        let (failed, missing) = triage(&absent, &samples, &ups);
        // A reply the scraper gave up on is not a sample to keep; it stays unstored.
        timed_out += failed.len();
        may_lose.extend(failed.iter().copied());
        if let Some(&seq) = missing.first() {
            let ms = must.iter().find(|s| s.0 == seq).map_or(0, |s| s.1);
            let near: Vec<_> = ups.iter().filter(|u| (u.0 - ms).abs() < 300).collect();
            let kept: Vec<_> = samples.iter().filter(|s| (s.0 - ms).abs() < 300).collect();
            panic!(
                "iteration {i}: {} scrapes older than the flush window lost: {:?}; first: seq {seq} served at {ms} ms; up near it {near:?}; kill_seq near it {kept:?}",
                missing.len(),
                &missing[..missing.len().min(20)]
            );
        }
        let newest = samples.last().map(|s| s.1).unwrap_or(0.0);
        assert!(newest >= last_seen, "iteration {i}: data went backwards");
        last_seen = newest;
    }
    startups.sort();
    eprintln!(
        "sigkill loop: {iterations} kills, {} samples kept, {timed_out} replies abandoned by a timed-out scrape (up 0); start-up to ready: median {:?}, max {:?}",
        last_seen,
        startups[startups.len() / 2],
        startups.last().unwrap()
    );
}

/// `triage` on the case that once failed the loop (iteration 44 of a loaded run): the reply
/// numbered 685 was written 6 ms after the next scrape began, to a scrape that had already
/// timed out (`up` 0 at 490). Without that `up` 0 the same gap is a loss.
#[test]
fn triage_tells_abandoned_replies_from_lost_samples() {
    type Case<'a> = (&'a str, &'a [u64], &'a [(i64, f64)], &'a [u64], &'a [u64]);
    let stored = [(407, 684.0), (531, 686.0), (555, 687.0)];
    let one_failed = [(407, 1.0), (490, 0.0), (531, 1.0), (555, 1.0)];
    let none_failed = [(407, 1.0), (490, 1.0), (531, 1.0), (555, 1.0)];
    // (case, missing, up samples, abandoned, lost)
    let cases: &[Case] = &[
        ("timed-out scrape", &[685], &one_failed, &[685], &[]),
        ("no failed scrape", &[685], &none_failed, &[], &[685]),
        (
            "after the newest stored value",
            &[688],
            &one_failed,
            &[],
            &[688],
        ),
    ];
    for (name, missing, ups, abandoned, lost) in cases {
        let got = triage(missing, &stored, ups);
        assert_eq!(got, (abandoned.to_vec(), lost.to_vec()), "{name}");
    }
    // Two values missing in one gap with one failed scrape: both count as lost.
    let stored = [(407, 684.0), (555, 687.0)];
    assert_eq!(
        triage(&[685, 686], &stored, &one_failed),
        (vec![], vec![685, 686])
    );
}
