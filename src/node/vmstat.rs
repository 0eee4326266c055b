//! `vmstat` collector: paging, swapping, page faults and OOM kills from /proc/vmstat, with
//! node_exporter's default field filter (`--collector.vmstat.fields`).

use super::expo::{Type, W};
use super::{parse_f64, Ctx, NodeError};

/// node_exporter 1.5's default: `^(oom_kill|pgpg|pswp|pg.*fault).*`.
fn wanted(field: &str) -> bool {
    field.starts_with("oom_kill")
        || field.starts_with("pgpg")
        || field.starts_with("pswp")
        || (field.starts_with("pg") && field[2..].contains("fault"))
}

pub(super) fn collect(cx: &mut Ctx, w: &mut W) -> Result<(), NodeError> {
    let (text, path) = cx.files.read(&cx.opts.procfs, "vmstat")?;
    let mut rows: Vec<(&str, f64)> = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(name), Some(v)) = (f.next(), f.next()) else {
            continue;
        };
        if wanted(name) {
            rows.push((name, parse_f64(v, path)?));
        }
    }
    rows.sort_by(|a, b| a.0.cmp(b.0));
    for (name, v) in rows {
        w.family(
            &["node_vmstat_", name],
            &["/proc/vmstat information field ", name, "."],
            Type::Untyped,
        );
        w.sample(&["node_vmstat_", name], &[], v);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_field_filter() {
        for (f, want) in [
            ("oom_kill", true),
            ("pgpgin", true),
            ("pswpout", true),
            ("pgfault", true),
            ("pgmajfault", true),
            ("pgfree", false),
            ("nr_free_pages", false),
            ("pg", false),
        ] {
            assert_eq!(super::wanted(f), want, "{f}");
        }
    }
}
