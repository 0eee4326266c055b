//! Backfill of a generated OpenMetrics file with about a million samples: every sample of the
//! generator's `.meta.json` arrives, per metric, with bounded memory.
//!
//! The generator is `../shared/bench/gen.py` next to the repository (override with
//! `EDGEPROM_GEN_PY`); the test is skipped, with the reason printed, when it or `python3` is
//! missing.
#![allow(clippy::print_stdout)]

use edgeprom::model::Matcher;
use edgeprom::storage::{Queryable, SelectHints};
use edgeprom::tsdb::{import_openmetrics, Options, Tsdb};
use std::path::PathBuf;

fn gen_py() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("EDGEPROM_GEN_PY") {
        return Some(PathBuf::from(p));
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    ["../shared/bench/gen.py", "../../shared/bench/gen.py"]
        .iter()
        .map(|r| root.join(r))
        .find(|p| p.exists())
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn import_generated_file_completely_in_bounded_memory() {
    let Some(gen) = gen_py() else {
        println!("SKIPPED: gen.py not found (set EDGEPROM_GEN_PY)");
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let om = tmp.path().join("small.om");
    let st = std::process::Command::new("python3")
        .arg(&gen)
        .args(["--preset", "small", "--seed", "7", "-o"])
        .arg(&om)
        .stdout(std::process::Stdio::null())
        .status();
    if !st.is_ok_and(|s| s.success()) {
        println!("SKIPPED: running {} failed", gen.display());
        return;
    }
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(tmp.path().join("small.om.meta.json")).expect("meta"),
    )
    .expect("json");
    let data = tmp.path().join("data");
    let opts = Options {
        path: data.clone(),
        ..Options::default()
    };
    let stats = import_openmetrics(&om, opts.clone()).expect("import");
    let want = meta["samples"].as_u64().expect("samples");
    assert_eq!(stats.samples, want);
    assert_eq!(stats.skipped, 0);
    let hwm = vm_hwm_kib();
    println!(
        "imported {} samples, {:.3} B/sample on disk, peak RSS {} MiB",
        stats.samples,
        stats.disk_bytes as f64 / stats.samples as f64,
        hwm / 1024
    );
    assert!(hwm < 200 * 1024, "peak RSS {hwm} KiB");
    // Every metric: series and samples as the generator wrote them.
    let db = Tsdb::open(Options {
        retention_time: std::time::Duration::ZERO,
        ..opts
    })
    .expect("open");
    let q = db.querier(i64::MIN, i64::MAX).expect("q");
    let per = meta["per_metric"].as_object().expect("per_metric");
    for (name, m) in per {
        let (mut series, mut samples) = (0u64, 0u64);
        for s in q.select(
            &SelectHints::default(),
            &[Matcher::equal("__name__", name.as_str())],
        ) {
            series += 1;
            let mut prev = i64::MIN;
            for (t, _) in s.samples {
                assert!(t > prev, "{name}: samples in order");
                prev = t;
                samples += 1;
            }
        }
        assert_eq!(series, m["series"].as_u64().expect("n"), "{name} series");
        assert_eq!(samples, m["samples"].as_u64().expect("n"), "{name} samples");
    }
    // Importing the same file again adds nothing (duplicates of identical samples are ignored).
    let again = import_openmetrics(
        &om,
        Options {
            path: data,
            ..Options::default()
        },
    )
    .expect("reimport");
    assert_eq!((again.samples, again.bytes_written), (0, 0), "{again:?}");
}
