//! Relabeling, as Prometheus's `relabel_configs`, `metric_relabel_configs`,
//! `alert_relabel_configs` and `write_relabel_configs` define it.
//!
//! Semantics follow Prometheus's documentation of `<relabel_config>`: source label values are
//! joined with `separator`, the fully anchored `regex` is matched against the result, and the
//! `action` decides what happens. Defaults: separator `;`, regex `(.*)`, replacement `$1`,
//! action `replace`.

use super::{Labels, LabelsBuilder};
use md5::{Digest, Md5};

/// What a relabel step does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelabelAction {
    /// Set `target_label` to the expanded `replacement` when `regex` matches.
    Replace,
    /// Drop the series/target unless `regex` matches.
    Keep,
    /// Drop the series/target if `regex` matches.
    Drop,
    /// Keep only if the joined source values equal the value of `target_label`.
    KeepEqual,
    /// Drop if the joined source values equal the value of `target_label`.
    DropEqual,
    /// Set `target_label` to the MD5 of the joined source values modulo `modulus`.
    HashMod,
    /// Copy labels whose names match `regex` to the expanded `replacement` name.
    LabelMap,
    /// Remove labels whose names match `regex`.
    LabelDrop,
    /// Remove labels whose names do not match `regex`.
    LabelKeep,
    /// Set `target_label` to the lower-cased joined source values.
    Lowercase,
    /// Set `target_label` to the upper-cased joined source values.
    Uppercase,
}

impl RelabelAction {
    /// Parses the action name as written in YAML (case-insensitive, as in Prometheus).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "replace" => Self::Replace,
            "keep" => Self::Keep,
            "drop" => Self::Drop,
            "keepequal" => Self::KeepEqual,
            "dropequal" => Self::DropEqual,
            "hashmod" => Self::HashMod,
            "labelmap" => Self::LabelMap,
            "labeldrop" => Self::LabelDrop,
            "labelkeep" => Self::LabelKeep,
            "lowercase" => Self::Lowercase,
            "uppercase" => Self::Uppercase,
            _ => return None,
        })
    }

    /// The YAML spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Replace => "replace",
            Self::Keep => "keep",
            Self::Drop => "drop",
            Self::KeepEqual => "keepequal",
            Self::DropEqual => "dropequal",
            Self::HashMod => "hashmod",
            Self::LabelMap => "labelmap",
            Self::LabelDrop => "labeldrop",
            Self::LabelKeep => "labelkeep",
            Self::Lowercase => "lowercase",
            Self::Uppercase => "uppercase",
        }
    }
}

/// One validated relabel step.
#[derive(Clone, Debug)]
pub struct RelabelConfig {
    /// Labels whose values are joined.
    pub source_labels: Vec<String>,
    /// Joiner for source values.
    pub separator: String,
    /// The regex as written (unanchored).
    pub regex_src: String,
    regex: regex::Regex,
    /// Modulus for `hashmod`.
    pub modulus: u64,
    /// Label written by replace/hashmod/lowercase/uppercase, compared by keepequal/dropequal.
    pub target_label: String,
    /// Replacement template (`$1`, `${name}`).
    pub replacement: String,
    /// The action.
    pub action: RelabelAction,
}

/// The pieces of a relabel step as written in YAML; `None` means "use Prometheus's default".
#[derive(Clone, Debug, Default)]
pub struct RelabelSpec {
    /// `source_labels`.
    pub source_labels: Vec<String>,
    /// `separator`.
    pub separator: Option<String>,
    /// `regex`.
    pub regex: Option<String>,
    /// `modulus`.
    pub modulus: Option<u64>,
    /// `target_label`.
    pub target_label: Option<String>,
    /// `replacement`.
    pub replacement: Option<String>,
    /// `action`.
    pub action: Option<String>,
}

fn is_valid_label_name(s: &str) -> bool {
    let mut it = s.chars();
    matches!(it.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && it.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Whether `s` is a label name made only of literal characters and `$var` / `${var}` references,
/// which Prometheus 2.x requires of `target_label` for `replace`.
fn is_valid_target_template(s: &str) -> bool {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(r"^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$").expect("constant regex")
    })
    .is_match(s)
}

impl RelabelConfig {
    /// Validates a step and fills in defaults. The error says what is wrong, in Prometheus's words
    /// where it has them.
    pub fn new(spec: RelabelSpec) -> Result<Self, String> {
        let action = match spec.action.as_deref() {
            None | Some("") => RelabelAction::Replace,
            Some(a) => {
                RelabelAction::parse(a).ok_or_else(|| format!("unknown relabel action {a:?}"))?
            }
        };
        let regex_given = spec.regex.is_some();
        let regex_src = spec.regex.unwrap_or_else(|| "(.*)".to_string());
        let regex = regex::Regex::new(&format!("^(?s:{regex_src})$"))
            .map_err(|e| format!("invalid regex {regex_src:?} in relabel config: {e}"))?;
        let target_label = spec.target_label.unwrap_or_default();
        let modulus = spec.modulus.unwrap_or(0);
        use RelabelAction::*;
        if matches!(
            action,
            Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual
        ) && target_label.is_empty()
        {
            return Err(format!(
                "relabel configuration for {} action requires 'target_label' value",
                action.as_str()
            ));
        }
        if action == Replace && !is_valid_target_template(&target_label) {
            return Err(format!(
                "{target_label:?} is invalid 'target_label' for {} action",
                action.as_str()
            ));
        }
        if matches!(
            action,
            Lowercase | Uppercase | HashMod | KeepEqual | DropEqual
        ) && !is_valid_label_name(&target_label)
        {
            return Err(format!(
                "{target_label:?} is invalid 'target_label' for {} action",
                action.as_str()
            ));
        }
        if action == HashMod && modulus == 0 {
            return Err("relabel configuration for hashmod requires non-zero modulus".to_string());
        }
        if matches!(action, KeepEqual | DropEqual) && regex_given && regex_src != "(.*)" {
            return Err(format!(
                "{} action requires only 'source_labels' and 'target_label', and no other fields",
                action.as_str()
            ));
        }
        if matches!(action, LabelDrop | LabelKeep)
            && (!spec.source_labels.is_empty()
                || !target_label.is_empty()
                || modulus != 0
                // As Prometheus: the defaults may be spelled out (a rendered config does).
                || spec.separator.as_deref().is_some_and(|s| s != ";")
                || spec.replacement.as_deref().is_some_and(|r| r != "$1"))
        {
            return Err(format!(
                "{} action requires only 'regex', and no other fields",
                action.as_str()
            ));
        }
        Ok(RelabelConfig {
            source_labels: spec.source_labels,
            separator: spec.separator.unwrap_or_else(|| ";".to_string()),
            regex_src,
            regex,
            modulus,
            target_label,
            replacement: spec.replacement.unwrap_or_else(|| "$1".to_string()),
            action,
        })
    }
}

/// Applies `cfgs` in order. `None` means the series or target was dropped.
pub fn process(labels: &Labels, cfgs: &[RelabelConfig]) -> Option<Labels> {
    if cfgs.is_empty() {
        return Some(labels.clone());
    }
    let mut b = labels.builder();
    for c in cfgs {
        if !apply(&mut b, c) {
            return None;
        }
    }
    Some(b.into_labels())
}

/// Applies one step to a builder; false means "drop".
pub fn apply(b: &mut LabelsBuilder, c: &RelabelConfig) -> bool {
    let mut val = String::new();
    for (i, n) in c.source_labels.iter().enumerate() {
        if i > 0 {
            val.push_str(&c.separator);
        }
        val.push_str(b.get(n).unwrap_or(""));
    }
    use RelabelAction::*;
    match c.action {
        Drop => return !c.regex.is_match(&val),
        Keep => return c.regex.is_match(&val),
        DropEqual => return b.get(&c.target_label).unwrap_or("") != val,
        KeepEqual => return b.get(&c.target_label).unwrap_or("") == val,
        Replace => {
            // Fast path of the defaults: regex "(.*)" with replacement "$1" copies the value.
            let Some(caps) = c.regex.captures(&val) else {
                return true;
            };
            let mut target = String::new();
            caps.expand(&c.target_label, &mut target);
            if !is_valid_label_name(&target) {
                return true;
            }
            let mut res = String::new();
            caps.expand(&c.replacement, &mut res);
            if res.is_empty() {
                b.del(&target);
            } else {
                b.set(target, res);
            }
        }
        Lowercase => {
            b.set(c.target_label.clone(), val.to_lowercase());
        }
        Uppercase => {
            b.set(c.target_label.clone(), val.to_uppercase());
        }
        HashMod => {
            let sum = Md5::digest(val.as_bytes());
            let mut last8 = [0u8; 8];
            last8.copy_from_slice(&sum[8..16]);
            let m = u64::from_be_bytes(last8) % c.modulus;
            b.set(c.target_label.clone(), m.to_string());
        }
        LabelMap => {
            let pairs: Vec<(String, String)> = b
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            for (name, value) in pairs {
                if let Some(caps) = c.regex.captures(&name) {
                    let mut new_name = String::new();
                    caps.expand(&c.replacement, &mut new_name);
                    b.set(new_name, value);
                }
            }
        }
        LabelDrop => {
            b.retain(|l| !c.regex.is_match(&l.name));
        }
        LabelKeep => {
            b.retain(|l| c.regex.is_match(&l.name));
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(
        action: &str,
        src: &[&str],
        regex: Option<&str>,
        target: Option<&str>,
        repl: Option<&str>,
        modulus: Option<u64>,
    ) -> RelabelConfig {
        RelabelConfig::new(RelabelSpec {
            source_labels: src.iter().map(|s| s.to_string()).collect(),
            regex: regex.map(str::to_string),
            target_label: target.map(str::to_string),
            replacement: repl.map(str::to_string),
            modulus,
            action: Some(action.to_string()),
            separator: None,
        })
        .unwrap()
    }

    fn l(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn actions_table() {
        let base = l(&[
            ("__name__", "http_requests_total"),
            ("job", "api"),
            ("instance", "host1:9100"),
            ("__meta_x", "1"),
            ("env", "Prod"),
        ]);
        let cases: Vec<(&str, RelabelConfig, Option<Labels>)> = vec![
            (
                "replace with capture",
                cfg(
                    "replace",
                    &["instance"],
                    Some("(.*):\\d+"),
                    Some("host"),
                    Some("$1"),
                    None,
                ),
                Some(base.builder().set("host", "host1").build()),
            ),
            (
                "replace no match leaves labels",
                cfg("replace", &["job"], Some("nomatch"), Some("x"), None, None),
                Some(base.clone()),
            ),
            (
                "replace joins with separator",
                cfg("replace", &["job", "env"], None, Some("jobenv"), None, None),
                Some(base.builder().set("jobenv", "api;Prod").build()),
            ),
            (
                "replace empty result deletes",
                cfg("replace", &["missing"], None, Some("env"), None, None),
                Some(base.builder().del("env").build()),
            ),
            (
                "replace with target template",
                cfg(
                    "replace",
                    &["job"],
                    Some("(a)(p)i"),
                    Some("${1}_$2"),
                    Some("v"),
                    None,
                ),
                Some(base.builder().set("a_p", "v").build()),
            ),
            (
                "keep match",
                cfg("keep", &["job"], Some("api"), None, None, None),
                Some(base.clone()),
            ),
            (
                "keep anchored",
                cfg("keep", &["job"], Some("ap"), None, None, None),
                None,
            ),
            (
                "drop match",
                cfg("drop", &["env"], Some("Prod|Dev"), None, None, None),
                None,
            ),
            (
                "drop no match",
                cfg("drop", &["env"], Some("Dev"), None, None, None),
                Some(base.clone()),
            ),
            (
                "keepequal differs",
                cfg("keepequal", &["job"], None, Some("env"), None, None),
                None,
            ),
            (
                "dropequal differs",
                cfg("dropequal", &["job"], None, Some("env"), None, None),
                Some(base.clone()),
            ),
            (
                "labelmap",
                cfg("labelmap", &[], Some("__meta_(.+)"), None, None, None),
                Some(base.builder().set("x", "1").build()),
            ),
            (
                "labeldrop",
                cfg("labeldrop", &[], Some("__meta_.*|env"), None, None, None),
                Some(base.builder().del("__meta_x").del("env").build()),
            ),
            (
                "labelkeep",
                cfg("labelkeep", &[], Some("__name__|job"), None, None, None),
                Some(l(&[("__name__", "http_requests_total"), ("job", "api")])),
            ),
            (
                "lowercase",
                cfg("lowercase", &["env"], None, Some("env_lc"), None, None),
                Some(base.builder().set("env_lc", "prod").build()),
            ),
            (
                "uppercase",
                cfg("uppercase", &["job"], None, Some("job"), None, None),
                Some(base.builder().set("job", "API").build()),
            ),
        ];
        for (name, c, want) in cases {
            assert_eq!(process(&base, &[c]), want, "{name}");
        }
    }

    #[test]
    fn hashmod_matches_prometheus() {
        // Prometheus: sum64(md5("foo")) % 1000. md5("foo") = acbd18db4cc2f85cedef654fccc4a4d8,
        // its last 8 bytes read big-endian, modulo 1000, give 696 (checked with Python's hashlib).
        let c = cfg("hashmod", &["a"], None, Some("shard"), None, Some(1000));
        let out = process(&l(&[("a", "foo")]), &[c]).unwrap();
        assert_eq!(out.get("shard"), Some("696"));
    }

    #[test]
    fn validation_errors() {
        let bad = [
            RelabelSpec {
                action: Some("hashmod".into()),
                target_label: Some("x".into()),
                ..Default::default()
            },
            RelabelSpec {
                action: Some("replace".into()),
                ..Default::default()
            },
            RelabelSpec {
                action: Some("frobnicate".into()),
                ..Default::default()
            },
            RelabelSpec {
                regex: Some("(".into()),
                target_label: Some("x".into()),
                ..Default::default()
            },
            RelabelSpec {
                action: Some("labeldrop".into()),
                source_labels: vec!["a".into()],
                ..Default::default()
            },
            RelabelSpec {
                action: Some("labelkeep".into()),
                separator: Some(",".into()),
                ..Default::default()
            },
            RelabelSpec {
                action: Some("labeldrop".into()),
                replacement: Some("x".into()),
                ..Default::default()
            },
        ];
        for s in bad {
            assert!(RelabelConfig::new(s.clone()).is_err(), "{s:?} should fail");
        }
        // Found by the config_load fuzz target: a rendered config spells out the defaults
        // (`separator: ;`, `replacement: $1`), which Prometheus accepts for labeldrop/labelkeep.
        for action in ["labeldrop", "labelkeep"] {
            let spelled_out = RelabelSpec {
                action: Some(action.into()),
                regex: Some("tmp_.*".into()),
                separator: Some(";".into()),
                replacement: Some("$1".into()),
                ..Default::default()
            };
            assert!(RelabelConfig::new(spelled_out).is_ok(), "{action}");
        }
    }
}
