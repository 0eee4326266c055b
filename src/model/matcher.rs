//! Label matchers (`=`, `!=`, `=~`, `!~`) as PromQL and the storage index use them.
//!
//! Regexes are fully anchored, as in Prometheus: `job=~"api"` matches only the value `api`.
//! The `regex` crate implements RE2 syntax, the dialect Prometheus uses.

use std::fmt;

/// The kind of comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchType {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
}

impl fmt::Display for MatchType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchType::Equal => "=",
            MatchType::NotEqual => "!=",
            MatchType::Regex => "=~",
            MatchType::NotRegex => "!~",
        })
    }
}

/// An invalid regular expression in a matcher.
#[derive(Debug, thiserror::Error)]
#[error("invalid regular expression {pattern:?}: {source}")]
pub struct MatcherError {
    /// The pattern as written.
    pub pattern: String,
    /// Why it failed to compile.
    #[source]
    pub source: regex::Error,
}

/// One label matcher. A missing label matches as the empty string, as in Prometheus.
#[derive(Clone, Debug)]
pub struct Matcher {
    /// Comparison kind.
    pub kind: MatchType,
    /// Label name.
    pub name: String,
    /// Value or regex source as written.
    pub value: String,
    re: Option<regex::Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, o: &Self) -> bool {
        self.kind == o.kind && self.name == o.name && self.value == o.value
    }
}

impl Matcher {
    /// Builds a matcher, compiling the regex for `=~` and `!~`.
    pub fn new(
        kind: MatchType,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, MatcherError> {
        let value = value.into();
        let re = match kind {
            MatchType::Regex | MatchType::NotRegex => {
                let anchored = format!("^(?s:{value})$");
                Some(regex::Regex::new(&anchored).map_err(|source| MatcherError {
                    pattern: value.clone(),
                    source,
                })?)
            }
            _ => None,
        };
        Ok(Matcher {
            kind,
            name: name.into(),
            value,
            re,
        })
    }

    /// Shorthand for an equality matcher (never fails).
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Matcher {
            kind: MatchType::Equal,
            name: name.into(),
            value: value.into(),
            re: None,
        }
    }

    /// Whether `v` (the label's value, or "" if absent) matches.
    #[inline]
    pub fn matches(&self, v: &str) -> bool {
        match self.kind {
            MatchType::Equal => v == self.value,
            MatchType::NotEqual => v != self.value,
            // `re` is always Some for regex kinds: `new` compiles it.
            MatchType::Regex => self.re.as_ref().is_some_and(|r| r.is_match(v)),
            MatchType::NotRegex => !self.re.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }

    /// Whether this matcher matches the empty string (and so series without the label).
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// Whether a label set satisfies this matcher.
    pub fn matches_labels(&self, l: &super::Labels) -> bool {
        self.matches(l.get(&self.name).unwrap_or(""))
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.kind, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_table() {
        let cases: &[(MatchType, &str, &str, bool)] = &[
            (MatchType::Equal, "a", "a", true),
            (MatchType::Equal, "a", "", false),
            (MatchType::NotEqual, "a", "b", true),
            (MatchType::Regex, "api", "api-server", false),
            (MatchType::Regex, "api.*", "api-server", true),
            (MatchType::Regex, "a|b", "b", true),
            (MatchType::Regex, ".*", "", true),
            (MatchType::NotRegex, "a.+", "", true),
            (MatchType::Regex, "a.b", "a\nb", true),
        ];
        for &(k, pat, v, want) in cases {
            let m = Matcher::new(k, "x", pat).unwrap();
            assert_eq!(m.matches(v), want, "{k} {pat:?} on {v:?}");
        }
    }

    #[test]
    fn bad_regex_is_an_error() {
        assert!(Matcher::new(MatchType::Regex, "x", "(").is_err());
    }
}
