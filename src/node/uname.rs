//! `uname` collector: `node_uname_info` from the uname(2) system call.

use super::expo::{Type, W};
use super::{Ctx, NodeError};

/// A NUL-terminated `c_char` array as text (lossy on invalid UTF-8).
fn field(f: &[libc::c_char], buf: &mut String) {
    buf.clear();
    let bytes: Vec<u8> = f
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    buf.push_str(&String::from_utf8_lossy(&bytes));
}

pub(super) fn collect(_cx: &mut Ctx, w: &mut W) -> Result<(), NodeError> {
    // SAFETY: `utsname` is plain old data; uname(2) fills it or returns -1.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return Err(NodeError::Io {
            path: "uname(2)".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    let mut s = [
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
    ];
    field(&u.domainname, &mut s[0]);
    field(&u.machine, &mut s[1]);
    field(&u.nodename, &mut s[2]);
    field(&u.release, &mut s[3]);
    field(&u.sysname, &mut s[4]);
    field(&u.version, &mut s[5]);
    w.family(
        &["node_uname_info"],
        &["Labeled system information as provided by the uname system call."],
        Type::Gauge,
    );
    w.sample(
        &["node_uname_info"],
        &[
            ("domainname", &s[0]),
            ("machine", &s[1]),
            ("nodename", &s[2]),
            ("release", &s[3]),
            ("sysname", &s[4]),
            ("version", &s[5]),
        ],
        1.0,
    );
    Ok(())
}
