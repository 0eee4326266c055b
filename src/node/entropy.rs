//! `entropy` collector: the kernel's random pool, from /proc/sys/kernel/random.

use super::expo::{Type, W};
use super::{parse_f64, Ctx, NodeError};

pub(super) fn collect(cx: &mut Ctx, w: &mut W) -> Result<(), NodeError> {
    let (t, p) = cx
        .files
        .read(&cx.opts.procfs, "sys/kernel/random/entropy_avail")?;
    let avail = parse_f64(t.trim(), p)?;
    let (t, p) = cx
        .files
        .read(&cx.opts.procfs, "sys/kernel/random/poolsize")?;
    let pool = parse_f64(t.trim(), p)?;
    w.single(
        "node_entropy_available_bits",
        "Bits of available entropy.",
        Type::Gauge,
        avail,
    );
    w.single(
        "node_entropy_pool_size_bits",
        "Bits of entropy pool.",
        Type::Gauge,
        pool,
    );
    Ok(())
}
