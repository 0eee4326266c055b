//! `filefd` collector: allocated and maximum file handles, from /proc/sys/fs/file-nr.

use super::expo::{Type, W};
use super::{parse_f64, Ctx, NodeError};

pub(super) fn collect(cx: &mut Ctx, w: &mut W) -> Result<(), NodeError> {
    let (text, path) = cx.files.read(&cx.opts.procfs, "sys/fs/file-nr")?;
    // "allocated  unused  maximum"
    let f: Vec<&str> = text.split_whitespace().collect();
    let [allocated, _, maximum] = f[..] else {
        return Err(NodeError::parse(
            path,
            format!("want 3 fields, got {:?}", text.trim()),
        ));
    };
    let (allocated, maximum) = (parse_f64(allocated, path)?, parse_f64(maximum, path)?);
    w.single(
        "node_filefd_allocated",
        "File descriptor statistics: allocated.",
        Type::Gauge,
        allocated,
    );
    w.single(
        "node_filefd_maximum",
        "File descriptor statistics: maximum.",
        Type::Gauge,
        maximum,
    );
    Ok(())
}
