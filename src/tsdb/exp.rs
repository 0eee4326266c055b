//! Encoding experiment: bytes per sample of segment records (headers included, series log
//! excluded) for zstd levels, window logs and scrapes per record, on a gen.py file replayed
//! scrape by scrape. Run:
//! `EXP_FILE=/tmp/full.om EXP_CFGS=5:0:1,9:0:1,9:0:4 cargo test --lib -- --ignored tsdb::exp --nocapture`
//! (each config is `level:window_log(0 = default):scrapes_per_record[:format, default 2]`).
#![allow(missing_docs, clippy::print_stdout)]
use super::encoding::{encode_record, RawSample, SeriesState};
use super::PARTITION_MS;
use crate::scrape::textparse::{Entry, Format, Parser};
use std::collections::HashMap;
use std::io::Write;

#[test]
#[ignore]
fn exp() {
    let Ok(path) = std::env::var("EXP_FILE") else {
        return;
    };
    let text = std::fs::read(&path).expect("read");
    let mut ids: HashMap<Vec<u8>, u32> = HashMap::new();
    let mut by_t: std::collections::BTreeMap<i64, Vec<RawSample>> = Default::default();
    for e in Parser::new(&text, Format::OpenMetrics) {
        let Ok(Entry::Series(e)) = e else { continue };
        let n = ids.len() as u32;
        let sid = *ids.entry(e.series.to_vec()).or_insert(n);
        by_t.entry(e.timestamp_ms.unwrap_or(0))
            .or_default()
            .push(RawSample {
                sid,
                t: e.timestamp_ms.unwrap_or(0),
                v: e.value,
            });
    }
    drop(text);
    let total: usize = by_t.values().map(|v| v.len()).sum();
    let scrapes: Vec<Vec<RawSample>> = by_t
        .into_values()
        .map(|mut v| {
            v.sort_by_key(|s| s.sid);
            v
        })
        .collect();
    let cfgs: Vec<(i32, u32, usize, u16)> = std::env::var("EXP_CFGS")
        .unwrap_or("5:0:1".into())
        .split(',')
        .map(|c| {
            let p: Vec<&str> = c.split(':').collect();
            (
                p[0].parse().expect("config"),
                p[1].parse().expect("config"),
                p[2].parse().expect("config"),
                p.get(3).map_or(2, |f| f.parse().expect("config")),
            )
        })
        .collect();
    use zstd::zstd_safe::{self, zstd_sys::ZSTD_EndDirective, CParameter, InBuffer, OutBuffer};
    for (lvl, wlog, per, fmt) in cfgs {
        let mut coder = None;
        let t0 = std::time::Instant::now();
        let mut bytes = 0usize;
        let mut raw_bytes = 0usize;
        let mut part = i64::MIN;
        let mut states: Vec<SeriesState> = Vec::new();
        let mut cctx = zstd_safe::CCtx::create();
        cctx.set_parameter(CParameter::CompressionLevel(lvl))
            .expect("config");
        if wlog > 0 {
            cctx.set_parameter(CParameter::WindowLog(wlog))
                .expect("config");
        }
        let mut max_ctx = 0usize;
        let mut kept: Vec<(i64, Vec<u8>)> = Vec::new();
        let mut parts_seen = 0usize;
        let (mut out, mut ts, mut dst) =
            (Vec::new(), Vec::new(), Vec::<u8>::with_capacity(1 << 20));
        for group in scrapes.chunks(per) {
            let p = group[0][0].t.div_euclid(PARTITION_MS) * PARTITION_MS;
            if p != part {
                part = p;
                states.clear();
                coder = (fmt >= 2).then(super::encoding::ValueCoder::default);
                cctx.reset(zstd_safe::ResetDirective::SessionOnly)
                    .expect("reset");
                bytes += 36;
            }
            let mut batch: Vec<RawSample> = group.concat();
            batch.sort_by_key(|s| (s.sid, s.t));
            out.clear();
            encode_record(&batch, &mut states, p, &mut out, &mut ts, coder.as_mut());
            raw_bytes += out.len();
            if p != kept.last().map_or(i64::MIN, |k: &(i64, Vec<u8>)| k.0) || kept.is_empty() {
                parts_seen += 1;
            }
            kept.push((p, out.clone()));
            let mut inb = InBuffer::around(&out);
            loop {
                dst.clear();
                let mut ob = OutBuffer::around(&mut dst);
                let rem = cctx
                    .compress_stream2(&mut ob, &mut inb, ZSTD_EndDirective::ZSTD_e_flush)
                    .expect("zstd");
                bytes += ob.pos();
                if rem == 0 && inb.pos() == out.len() {
                    break;
                }
            }
            bytes += 32;
            max_ctx = max_ctx.max(cctx.sizeof());
        }
        let took = t0.elapsed();
        // Decoding the records again (zstd aside): what a query pays per sample.
        let d0 = std::time::Instant::now();
        let (mut dstates, mut dcoder, mut dpart) = (Vec::new(), None, i64::MIN);
        let mut scratch = Vec::new();
        let mut n = 0usize;
        for (p, rec) in &kept {
            if *p != dpart {
                dpart = *p;
                dstates.clear();
                dcoder = (fmt >= 2).then(super::encoding::ValueCoder::default);
            }
            super::encoding::decode_record(
                rec,
                &mut dstates,
                *p,
                u32::MAX,
                &mut scratch,
                dcoder.as_mut(),
                |_, _, _| n += 1,
            )
            .expect("decode");
        }
        assert_eq!(n, total);
        println!(
            "EXP decode format={fmt} partitions={parts_seen} {:.0} ns/sample",
            d0.elapsed().as_nanos() as f64 / total as f64
        );
        println!(
            "EXP format={fmt} level={lvl} wlog={wlog} scrapes_per_record={per} B/sample={:.4} raw B/sample={:.3} took={took:?} ({:.0} ns/sample) zstd CCtx {:.1} MiB",
            bytes as f64 / total as f64,
            raw_bytes as f64 / total as f64,
            took.as_nanos() as f64 / total as f64,
            max_ctx as f64 / 1048576.0
        );
    }
}

/// One parsed format-1 record: groups `(sid, count, mode)` and each sample's stored number
/// (decimal: the zigzag-decoded delta as written, neighbour applied; raw: the XOR).
struct V1Rec {
    hdr: usize,
    ts: (usize, usize),
    groups: Vec<(u32, u32, u8)>,
    nums: Vec<u64>,
}

fn parse_v1(raw: &[u8]) -> V1Rec {
    use super::encoding::{Cursor, RAW_MODE};
    let mut c = Cursor::new(raw);
    let n = c.uvarint() as usize;
    let mut groups = Vec::with_capacity(n);
    let mut sid = 0u64;
    for _ in 0..n {
        sid += c.uvarint();
        groups.push((sid as u32, 0u32, 0u8));
    }
    for g in groups.iter_mut() {
        g.1 = c.uvarint() as u32;
    }
    for g in groups.iter_mut() {
        g.2 = c.u8();
    }
    let hdr = c.pos();
    let ts_len = c.uvarint() as usize;
    let ts0 = c.pos();
    c.bytes(ts_len);
    let ts = (ts0, ts0 + ts_len);
    let mut nums = Vec::new();
    for g in &groups {
        for _ in 0..g.1 {
            nums.push(if g.2 == RAW_MODE {
                c.u64le()
            } else {
                c.uvarint()
            });
        }
    }
    assert!(!c.is_bad());
    V1Rec {
        hdr,
        ts,
        groups,
        nums,
    }
}

struct ZStream {
    enc: zstd::stream::write::Encoder<'static, Vec<u8>>,
    bytes: usize,
}
impl ZStream {
    fn new(lvl: i32) -> Self {
        ZStream {
            enc: zstd::stream::write::Encoder::new(Vec::new(), lvl).expect("zstd"),
            bytes: 0,
        }
    }
    fn put(&mut self, b: &[u8]) {
        self.enc.write_all(b).expect("zstd");
        self.enc.flush().expect("zstd");
        self.bytes += self.enc.get_ref().len();
        self.enc.get_mut().clear();
    }
}

/// Where the bytes go: per column and per metric family, zstd 9 streams per column (flushed per
/// record, reset per partition), and the range-coder estimate of the value column under
/// several contexts. `EXP_FILE=/tmp/full.om cargo test --release --lib -- --ignored
/// tsdb::exp::columns --nocapture`
#[test]
#[ignore]
fn columns() {
    use super::encoding::{put_uvarint, RAW_MODE};
    use super::rangecoder::{CostSink, ValueModel};
    let Ok(path) = std::env::var("EXP_FILE") else {
        return;
    };
    let per: usize = std::env::var("EXP_PER")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let text = std::fs::read(&path).expect("read");
    let mut ids: HashMap<Vec<u8>, u32> = HashMap::new();
    let mut fam_of: Vec<String> = Vec::new();
    let mut by_t: std::collections::BTreeMap<i64, Vec<RawSample>> = Default::default();
    for e in Parser::new(&text, Format::OpenMetrics) {
        let Ok(Entry::Series(e)) = e else { continue };
        let n = ids.len() as u32;
        let sid = *ids.entry(e.series.to_vec()).or_insert_with(|| {
            let s = String::from_utf8_lossy(e.series);
            fam_of.push(s.split('{').next().unwrap_or("").to_string());
            n
        });
        by_t.entry(e.timestamp_ms.unwrap_or(0))
            .or_default()
            .push(RawSample {
                sid,
                t: e.timestamp_ms.unwrap_or(0),
                v: e.value,
            });
    }
    drop(text);
    let total: usize = by_t.values().map(|v| v.len()).sum();
    let scrapes: Vec<Vec<RawSample>> = by_t.into_values().collect();
    let mut fams: Vec<String> = fam_of.clone();
    fams.sort();
    fams.dedup();
    let fam_idx: Vec<usize> = fam_of
        .iter()
        .map(|f| fams.binary_search(f).unwrap_or(0))
        .collect();
    let fam_samples = {
        let mut v = vec![0usize; fams.len()];
        for s in scrapes.iter().flatten() {
            v[fam_idx[s.sid as usize]] += 1;
        }
        v
    };
    const VARIANTS: usize = 4;
    let mut part = i64::MIN;
    let mut states: Vec<SeriesState> = Vec::new();
    let (mut out, mut ts) = (Vec::new(), Vec::new());
    let (mut z_hdr, mut z_ts, mut z_val) = (ZStream::new(9), ZStream::new(9), ZStream::new(9));
    let mut z_fam: Vec<ZStream> = (0..fams.len()).map(|_| ZStream::new(9)).collect();
    let (mut raw_hdr, mut raw_ts, mut raw_val) = (0usize, 0usize, 0usize);
    let mut models: Vec<ValueModel> = Vec::new();
    let mut cost = [
        CostSink::default(),
        CostSink::default(),
        CostSink::default(),
        CostSink::default(),
    ];
    let mut fam_cost = vec![0f64; fams.len()];
    let mut prev_b: Vec<[u8; 2]> = Vec::new();
    let mut fam_buf: Vec<Vec<u8>> = vec![Vec::new(); fams.len()];
    for group in scrapes.chunks(per) {
        let p = group[0][0].t.div_euclid(PARTITION_MS) * PARTITION_MS;
        if p != part {
            part = p;
            states.clear();
            z_hdr = ZStream {
                bytes: z_hdr.bytes,
                ..ZStream::new(9)
            };
            z_ts = ZStream {
                bytes: z_ts.bytes,
                ..ZStream::new(9)
            };
            z_val = ZStream {
                bytes: z_val.bytes,
                ..ZStream::new(9)
            };
            for z in z_fam.iter_mut() {
                *z = ZStream {
                    bytes: z.bytes,
                    ..ZStream::new(9)
                };
            }
            models = vec![
                ValueModel::new(3 * 65),
                ValueModel::new(3 * 65 * 65),
                ValueModel::new(3 * 65),
                ValueModel::new(3 * 65 * 65),
            ];
            prev_b.clear();
            prev_b.resize(ids.len(), [0, 0]);
        }
        let mut batch: Vec<RawSample> = group.concat();
        batch.sort_by_key(|s| (s.sid, s.t));
        out.clear();
        encode_record(&batch, &mut states, p, &mut out, &mut ts, None);
        let r = parse_v1(&out);
        raw_hdr += r.hdr;
        raw_ts += r.ts.1 - r.ts.0;
        raw_val += out.len() - r.ts.1;
        z_hdr.put(&out[..r.hdr]);
        z_ts.put(&out[r.ts.0..r.ts.1]);
        z_val.put(&out[r.ts.1..]);
        let mut k = 0;
        let mut prev_series_b = 0u8;
        for b in fam_buf.iter_mut() {
            b.clear();
        }
        for &(sid, cnt, mode) in &r.groups {
            let f = fam_idx[sid as usize];
            let kind = if mode == RAW_MODE {
                2
            } else if mode & super::encoding::NEIGHBOUR != 0 {
                1
            } else {
                0
            };
            for j in 0..cnt as usize {
                let u = r.nums[k + j];
                if mode == RAW_MODE {
                    fam_buf[f].extend_from_slice(&u.to_le_bytes());
                } else {
                    put_uvarint(&mut fam_buf[f], u);
                }
                let pb = prev_b[sid as usize];
                let u_delta = u;
                let ctxs = [
                    kind * 65 + pb[0] as usize,
                    (kind * 65 + pb[0] as usize) * 65 + pb[1] as usize,
                    kind * 65 + if kind == 1 { prev_series_b } else { pb[0] } as usize,
                    (kind * 65 + pb[0] as usize) * 65
                        + if kind == 1 { prev_series_b } else { pb[1] } as usize,
                ];
                let before = cost[0].bits;
                let mut nb = 0;
                for v in 0..VARIANTS {
                    nb = models[v].encode(&mut cost[v], ctxs[v], u_delta);
                }
                fam_cost[f] += cost[0].bits - before;
                prev_b[sid as usize] = [nb, pb[0]];
                if j + 1 == cnt as usize {
                    prev_series_b = nb;
                }
            }
            k += cnt as usize;
        }
        for (f, b) in fam_buf.iter().enumerate() {
            if !b.is_empty() {
                z_fam[f].put(b);
            }
        }
    }
    let ps = |b: f64| b / total as f64;
    println!("EXP columns per={per} samples={total}");
    println!(
        "  header cols raw {:.3} zstd {:.4}",
        ps(raw_hdr as f64),
        ps(z_hdr.bytes as f64)
    );
    println!(
        "  ts col      raw {:.3} zstd {:.4}",
        ps(raw_ts as f64),
        ps(z_ts.bytes as f64)
    );
    println!(
        "  values col  raw {:.3} zstd {:.4}",
        ps(raw_val as f64),
        ps(z_val.bytes as f64)
    );
    for (v, c) in cost.iter().enumerate() {
        println!("  values range-coded variant {v}: {:.4}", ps(c.bits / 8.0));
    }
    for (f, name) in fams.iter().enumerate() {
        println!(
            "  family {name:<40} samples {:>8} zstd B/s {:.3} rc B/s {:.3} share of total(rc) {:.4}",
            fam_samples[f],
            z_fam[f].bytes as f64 / fam_samples[f] as f64,
            fam_cost[f] / 8.0 / fam_samples[f] as f64,
            ps(fam_cost[f] / 8.0)
        );
    }
}
