//! `os` collector: `node_os_info` and `node_os_version` from os-release(5) under the root fs
//! (`/etc/os-release`, falling back to `/usr/lib/os-release`).

use super::expo::{Type, W};
use super::{Ctx, NodeError};

const FILES: [&str; 2] = ["etc/os-release", "usr/lib/os-release"];

/// The os-release keys node_exporter exposes, in label (alphabetical) order.
const KEYS: [(&str, &str); 12] = [
    ("build_id", "BUILD_ID"),
    ("id", "ID"),
    ("id_like", "ID_LIKE"),
    ("image_id", "IMAGE_ID"),
    ("image_version", "IMAGE_VERSION"),
    ("name", "NAME"),
    ("pretty_name", "PRETTY_NAME"),
    ("variant", "VARIANT"),
    ("variant_id", "VARIANT_ID"),
    ("version", "VERSION"),
    ("version_codename", "VERSION_CODENAME"),
    ("version_id", "VERSION_ID"),
];

/// Unquotes an os-release value: double quotes with backslash escapes, single quotes literal,
/// bare words with backslash escapes (shell rules, as envparse applies them).
fn unquote(raw: &str, out: &mut String) {
    out.clear();
    let raw = raw.trim();
    if let Some(inner) = raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        out.push_str(inner);
        return;
    }
    let inner = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(raw);
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
}

/// node_exporter's `^[0-9]+\.?[0-9]*` applied to VERSION_ID.
fn major_minor(v: &str) -> Option<f64> {
    let b = v.as_bytes();
    let mut i = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if i == 0 {
        return None;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        i += b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    }
    v[..i].trim_end_matches('.').parse().ok()
}

pub(super) fn collect(cx: &mut Ctx, w: &mut W) -> Result<(), NodeError> {
    let mut text = None;
    for f in FILES {
        match cx.files.read(&cx.opts.rootfs, f) {
            Ok(_) => {
                text = Some(());
                break;
            }
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        }
    }
    if text.is_none() {
        return Err(NodeError::NoData("no os-release file found"));
    }
    let text = cx.files.read_again();
    let mut vals: [String; 12] = Default::default();
    let mut tmp = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if let Some(i) = KEYS.iter().position(|(_, key)| *key == k.trim()) {
            unquote(v, &mut tmp);
            vals[i].clone_from(&tmp);
        }
    }
    let mut labels: [(&str, &str); 12] = [("", ""); 12];
    for (i, (l, _)) in KEYS.iter().enumerate() {
        labels[i] = (l, &vals[i]);
    }
    w.family(
        &["node_os_info"],
        &["A metric with a constant '1' value labeled by build_id, id, id_like, image_id, image_version, name, pretty_name, variant, variant_id, version, version_codename, version_id."],
        Type::Gauge,
    );
    w.sample(&["node_os_info"], &labels, 1.0);
    let version = major_minor(&vals[11]).unwrap_or(0.0);
    if version > 0.0 {
        w.family(
            &["node_os_version"],
            &["Metric containing the major.minor part of the OS version."],
            Type::Gauge,
        );
        w.sample(
            &["node_os_version"],
            &[("id", &vals[1]), ("id_like", &vals[2]), ("name", &vals[5])],
            version,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unquoting() {
        let cases = [
            (r#""Debian GNU/Linux""#, "Debian GNU/Linux"),
            ("'it''s'", "it''s"),
            ("bare", "bare"),
            (r#""say \"hi\"""#, r#"say "hi""#),
            ("", ""),
        ];
        for (raw, want) in cases {
            let mut s = String::new();
            unquote(raw, &mut s);
            assert_eq!(s, want, "{raw}");
        }
    }

    #[test]
    fn version_numbers() {
        let cases = [
            ("12", Some(12.0)),
            ("22.04", Some(22.04)),
            ("3.18.4", Some(3.18)),
            ("11.", Some(11.0)),
            ("rolling", None),
            ("", None),
        ];
        for (v, want) in cases {
            assert_eq!(major_minor(v), want, "{v}");
        }
    }
}
