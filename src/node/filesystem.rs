//! `filesystem` collector: statfs(2) of each mount in `<procfs>/1/mountinfo` (falling back to
//! `<procfs>/self/mountinfo` when hidepid hides PID 1), with node_exporter 1.5's default
//! mount-point and fs-type exclusions.
//!
//! Mount points are statted under `--path.rootfs` and reported with that prefix stripped. A mount
//! whose statfs fails gets `node_filesystem_device_error 1`, `node_filesystem_readonly` from its
//! mount options, and no size metrics. Unlike
//! node_exporter, a statfs that hangs (a dead NFS server) is not timed out.

use std::ffi::CStr;

use regex::Regex;

use super::expo::{Type, W};
use super::{Ctx, NodeError};

/// node_exporter 1.5's `--collector.filesystem.mount-points-exclude` default.
pub(crate) const DEFAULT_MOUNT_POINTS_EXCLUDE: &str =
    "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";
/// node_exporter 1.5's `--collector.filesystem.fs-types-exclude` default.
pub(crate) const DEFAULT_FS_TYPES_EXCLUDE: &str = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$";

/// One mount to report; strings are byte ranges into the mountinfo text or `mp_buf`.
struct Row {
    device: (usize, usize),
    fstype: (usize, usize),
    /// Range into `State::mp_buf` (mount points are unescaped and prefix-stripped).
    mountpoint: (usize, usize),
    ro: bool,
    error: bool,
    /// size, free, avail, files, files_free
    v: [f64; 5],
}

pub(crate) struct State {
    mount_points_exclude: Regex,
    fs_types_exclude: Regex,
    rows: Vec<Row>,
    mp_buf: String,
    cpath: Vec<u8>,
}

impl State {
    pub(crate) fn new() -> Self {
        // The defaults are constant and valid; a unit test compiles them too.
        #[allow(clippy::expect_used)]
        State {
            mount_points_exclude: Regex::new(DEFAULT_MOUNT_POINTS_EXCLUDE)
                .expect("default regex is valid"),
            fs_types_exclude: Regex::new(DEFAULT_FS_TYPES_EXCLUDE).expect("default regex is valid"),
            rows: Vec::new(),
            mp_buf: String::new(),
            cpath: Vec::new(),
        }
    }
}

/// statfs(2) of a NUL-terminated path: (blocks, bfree, bavail, bsize, files, ffree).
fn statfs(cpath: &[u8]) -> Option<[f64; 5]> {
    let c = CStr::from_bytes_with_nul(cpath).ok()?;
    // SAFETY: `statfs` is plain old data filled by the call.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid C string and `s` a writable statfs.
    if unsafe { libc::statfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    let bsize = s.f_bsize as f64;
    Some([
        s.f_blocks as f64 * bsize,
        s.f_bfree as f64 * bsize,
        s.f_bavail as f64 * bsize,
        s.f_files as f64,
        s.f_ffree as f64,
    ])
}

/// Appends `mp` with fstab(5)'s `\040` (space) and `\011` (tab) escapes undone.
fn unescape_into(mp: &str, out: &mut String) {
    let mut rest = mp;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("\\040") {
            out.push(' ');
            rest = t;
        } else if let Some(t) = tail.strip_prefix("\\011") {
            out.push('\t');
            rest = t;
        } else {
            out.push('\\');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
}

pub(super) fn collect(cx: &mut Ctx, w: &mut W) -> Result<(), NodeError> {
    let found = match cx.files.read(&cx.opts.procfs, "1/mountinfo") {
        Ok(_) => true,
        Err(e) if e.is_not_found() => false,
        Err(e) => return Err(e),
    };
    let (text, path) = if found {
        (cx.files.read_again(), cx.files.last_path())
    } else {
        cx.files.read(&cx.opts.procfs, "self/mountinfo")?
    };
    let st = &mut cx.filesystem;
    st.rows.clear();
    st.mp_buf.clear();
    let root = cx.opts.rootfs.to_str().unwrap_or("/");
    let base = text.as_ptr() as usize;
    let range = |s: &str| {
        let a = s.as_ptr() as usize - base;
        (a, a + s.len())
    };
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        // Fields: id parent major:minor root mountpoint options [optional...] - fstype source super
        let mut f = line.split_whitespace();
        let (Some(_), Some(_), Some(_), Some(_), Some(mp), Some(options)) =
            (f.next(), f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            return Err(NodeError::parse(
                path,
                format!("malformed mount point information: {line:?}"),
            ));
        };
        let mut f = f.skip_while(|x| *x != "-");
        let (Some(_), Some(fstype), Some(device)) = (f.next(), f.next(), f.next()) else {
            return Err(NodeError::parse(
                path,
                format!("malformed mount point information: {line:?}"),
            ));
        };
        // Unescape and strip the rootfs prefix into mp_buf.
        let start = st.mp_buf.len();
        unescape_into(mp, &mut st.mp_buf);
        if root != "/" {
            if let Some(stripped) = st.mp_buf[start..].strip_prefix(root) {
                let stripped_len = stripped.len();
                let cut = st.mp_buf.len() - stripped_len;
                st.mp_buf.replace_range(start..cut, "");
                if st.mp_buf.len() == start {
                    st.mp_buf.push('/');
                }
            }
        }
        let mpr = (start, st.mp_buf.len());
        let mps = &st.mp_buf[mpr.0..mpr.1];
        if st.mount_points_exclude.is_match(mps) || st.fs_types_exclude.is_match(fstype) {
            st.mp_buf.truncate(start);
            continue;
        }
        let (dr, fr) = (range(device), range(fstype));
        // Report each (device, mountpoint, fstype) once, as node_exporter does.
        let dup = st.rows.iter().any(|r| {
            text[r.device.0..r.device.1] == *device
                && text[r.fstype.0..r.fstype.1] == *fstype
                && st.mp_buf[r.mountpoint.0..r.mountpoint.1] == *mps
        });
        if dup {
            st.mp_buf.truncate(start);
            continue;
        }
        st.cpath.clear();
        st.cpath.extend_from_slice(root.as_bytes());
        if !root.ends_with('/') {
            st.cpath.push(b'/');
        }
        st.cpath
            .extend_from_slice(mps.trim_start_matches('/').as_bytes());
        st.cpath.push(0);
        let v = statfs(&st.cpath);
        st.rows.push(Row {
            device: dr,
            fstype: fr,
            mountpoint: mpr,
            ro: options.split(',').any(|o| o == "ro"),
            error: v.is_none(),
            v: v.unwrap_or_default(),
        });
    }

    let labels = |r: &Row| -> [(&'static str, (usize, usize), bool); 3] {
        [
            ("device", r.device, false),
            ("fstype", r.fstype, false),
            ("mountpoint", r.mountpoint, true),
        ]
    };
    let emit = |w: &mut W, name: &str, help: &str, val: &dyn Fn(&Row) -> Option<f64>| {
        w.family(&[name], &[help], Type::Gauge);
        for r in &st.rows {
            let Some(v) = val(r) else { continue };
            let l = labels(r);
            let get = |(a, b): (usize, usize), mp: bool| {
                if mp {
                    &st.mp_buf[a..b]
                } else {
                    &text[a..b]
                }
            };
            w.sample(
                &[name],
                &[
                    (l[0].0, get(l[0].1, l[0].2)),
                    (l[1].0, get(l[1].1, l[1].2)),
                    (l[2].0, get(l[2].1, l[2].2)),
                ],
                v,
            );
        }
    };
    let ok = |i: usize| move |r: &Row| (!r.error).then_some(r.v[i]);
    emit(
        w,
        "node_filesystem_avail_bytes",
        "Filesystem space available to non-root users in bytes.",
        &ok(2),
    );
    emit(
        w,
        "node_filesystem_device_error",
        "Whether an error occurred while getting statistics for the given device.",
        &|r| Some(if r.error { 1.0 } else { 0.0 }),
    );
    emit(
        w,
        "node_filesystem_files",
        "Filesystem total file nodes.",
        &ok(3),
    );
    emit(
        w,
        "node_filesystem_files_free",
        "Filesystem total free file nodes.",
        &ok(4),
    );
    emit(
        w,
        "node_filesystem_free_bytes",
        "Filesystem free space in bytes.",
        &ok(1),
    );
    emit(
        w,
        "node_filesystem_readonly",
        "Filesystem read-only status.",
        &|r| Some(if r.ro { 1.0 } else { 0.0 }),
    );
    emit(
        w,
        "node_filesystem_size_bytes",
        "Filesystem size in bytes.",
        &ok(0),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_exclusions() {
        let st = State::new();
        let mps = [
            ("/", false),
            ("/boot/firmware", false),
            ("/dev", true),
            ("/dev/shm", true),
            ("/proc", true),
            ("/run", false),
            ("/run/credentials/x.service", true),
            ("/sys/fs/cgroup", true),
            ("/var/lib/docker/overlay2/abc", true),
            ("/var/lib/docker", false),
            ("/devices", false),
        ];
        for (mp, excluded) in mps {
            assert_eq!(st.mount_points_exclude.is_match(mp), excluded, "{mp}");
        }
        let fss = [
            ("ext4", false),
            ("vfat", false),
            ("tmpfs", false),
            ("cgroup2", true),
            ("proc", true),
            ("overlay", true),
            ("squashfs", true),
        ];
        for (fs, excluded) in fss {
            assert_eq!(st.fs_types_exclude.is_match(fs), excluded, "{fs}");
        }
    }

    #[test]
    fn mountpoint_unescaping() {
        let cases = [
            ("/mnt/my\\040disk", "/mnt/my disk"),
            ("/a\\011b", "/a\tb"),
            ("/plain", "/plain"),
            ("/odd\\", "/odd\\"),
        ];
        for (raw, want) in cases {
            let mut s = String::new();
            unescape_into(raw, &mut s);
            assert_eq!(s, want);
        }
    }
}
