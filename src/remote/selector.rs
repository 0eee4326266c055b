//! A series-selector parser (`name{label="v", other=~"re"}`) for `/federate`'s `match[]`.
//!
//! The PromQL parser is not on main yet; this covers exactly what Prometheus's
//! `parser.ParseMetricSelector` accepts for a selector without offset or range: an optional
//! metric name, braces with `=`, `!=`, `=~`, `!~` matchers, values in double quotes, single
//! quotes or backticks with Go escapes, a trailing comma, and the rule that at least one matcher
//! must not match the empty string. Once `crate::promql::parse` lands, callers can switch to it.

use crate::model::{MatchType, Matcher};

/// A selector that does not parse; `pos` is the 0-based byte offset.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("1:{}: parse error: {msg}", pos + 1)]
pub struct SelectorError {
    /// Byte offset.
    pub pos: usize,
    /// What is wrong.
    pub msg: String,
}

fn err(pos: usize, msg: impl Into<String>) -> SelectorError {
    SelectorError {
        pos,
        msg: msg.into(),
    }
}

fn is_name_start(c: u8, metric: bool) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || (metric && c == b':')
}

fn is_name_char(c: u8, metric: bool) -> bool {
    is_name_start(c, metric) || c.is_ascii_digit()
}

struct P<'a> {
    s: &'a [u8],
    pos: usize,
}

impl P<'_> {
    fn ws(&mut self) {
        while self
            .s
            .get(self.pos)
            .is_some_and(|c| c.is_ascii_whitespace())
        {
            self.pos += 1;
        }
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }
    fn ident(&mut self, metric: bool) -> Option<String> {
        let start = self.pos;
        if !self.peek().is_some_and(|c| is_name_start(c, metric)) {
            return None;
        }
        while self.peek().is_some_and(|c| is_name_char(c, metric)) {
            self.pos += 1;
        }
        Some(String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
    }
    fn string(&mut self) -> Result<String, SelectorError> {
        let start = self.pos;
        let q = self
            .peek()
            .ok_or_else(|| err(start, "unexpected end of input, expected string"))?;
        if !matches!(q, b'"' | b'\'' | b'`') {
            return Err(err(start, "unexpected character, expected string"));
        }
        self.pos += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let c = self
                .peek()
                .ok_or_else(|| err(start, "unterminated quoted string"))?;
            self.pos += 1;
            if c == q {
                break;
            }
            if c == b'\\' && q != b'`' {
                let e = self
                    .peek()
                    .ok_or_else(|| err(start, "unterminated quoted string"))?;
                self.pos += 1;
                match e {
                    b'n' => out.push(b'\n'),
                    b't' => out.push(b'\t'),
                    b'r' => out.push(b'\r'),
                    b'a' => out.push(7),
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'v' => out.push(11),
                    b'\\' | b'"' | b'\'' => out.push(e),
                    b'x' | b'u' | b'U' => {
                        let n = match e {
                            b'x' => 2,
                            b'u' => 4,
                            _ => 8,
                        };
                        let hex = self
                            .s
                            .get(self.pos..self.pos + n)
                            .and_then(|h| std::str::from_utf8(h).ok())
                            .and_then(|h| u32::from_str_radix(h, 16).ok())
                            .ok_or_else(|| err(self.pos, "invalid escape sequence"))?;
                        self.pos += n;
                        if e == b'x' {
                            out.push(hex as u8);
                        } else {
                            let ch = char::from_u32(hex)
                                .ok_or_else(|| err(self.pos, "invalid unicode escape"))?;
                            let mut b = [0; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
                        }
                    }
                    _ => return Err(err(self.pos - 1, "unknown escape sequence")),
                }
            } else {
                out.push(c);
            }
        }
        String::from_utf8(out).map_err(|_| err(start, "invalid UTF-8 in string"))
    }
}

/// Parses one series selector into matchers (the metric name, if given, comes first).
pub fn parse_selector(input: &str) -> Result<Vec<Matcher>, SelectorError> {
    let mut p = P {
        s: input.as_bytes(),
        pos: 0,
    };
    let mut ms = Vec::new();
    p.ws();
    if let Some(name) = p.ident(true) {
        ms.push(Matcher::equal("__name__", name));
    }
    p.ws();
    if p.peek() == Some(b'{') {
        p.pos += 1;
        loop {
            p.ws();
            if p.peek() == Some(b'}') {
                p.pos += 1;
                break;
            }
            let at = p.pos;
            let name = p.ident(false).ok_or_else(|| {
                err(
                    at,
                    "unexpected character inside braces, expected label name",
                )
            })?;
            p.ws();
            let op_at = p.pos;
            let kind = match (p.peek(), p.s.get(p.pos + 1).copied()) {
                (Some(b'='), Some(b'~')) => MatchType::Regex,
                (Some(b'!'), Some(b'~')) => MatchType::NotRegex,
                (Some(b'!'), Some(b'=')) => MatchType::NotEqual,
                (Some(b'='), _) => MatchType::Equal,
                _ => {
                    return Err(err(
                        op_at,
                        "unexpected character, expected label matching operator",
                    ))
                }
            };
            p.pos += if kind == MatchType::Equal { 1 } else { 2 };
            p.ws();
            let value = p.string()?;
            let m = Matcher::new(kind, name, value).map_err(|e| err(op_at, e.to_string()))?;
            ms.push(m);
            p.ws();
            match p.peek() {
                Some(b',') => p.pos += 1,
                Some(b'}') => {}
                _ => return Err(err(p.pos, "unexpected character, expected \",\" or \"}\"")),
            }
        }
    }
    p.ws();
    if p.pos != p.s.len() {
        return Err(err(p.pos, "unexpected input after selector"));
    }
    if ms.is_empty() {
        return Err(err(0, "unexpected end of input"));
    }
    if ms.iter().all(|m| m.matches_empty()) {
        return Err(err(
            0,
            "vector selector must contain at least one non-empty matcher",
        ));
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Want = &'static [(&'static str, MatchType, &'static str)];

    #[test]
    fn selectors_parse_as_prometheus() {
        let ok: &[(&str, Want)] = &[
            ("up", &[("__name__", MatchType::Equal, "up")]),
            (
                "  job:rate5m  ",
                &[("__name__", MatchType::Equal, "job:rate5m")],
            ),
            (
                "up{job=\"a\",instance!~'b.*',}",
                &[
                    ("__name__", MatchType::Equal, "up"),
                    ("job", MatchType::Equal, "a"),
                    ("instance", MatchType::NotRegex, "b.*"),
                ],
            ),
            (
                "{__name__=~\"node_.+\"}",
                &[("__name__", MatchType::Regex, "node_.+")],
            ),
            (
                "{a!=``, b=\"x\\\"y\\n\"}",
                &[
                    ("a", MatchType::NotEqual, ""),
                    ("b", MatchType::Equal, "x\"y\n"),
                ],
            ),
            ("{a=\"\\u00fc\"}", &[("a", MatchType::Equal, "ü")]),
        ];
        for (input, want) in ok {
            let got = parse_selector(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            let got: Vec<_> = got
                .iter()
                .map(|m| (m.name.as_str(), m.kind, m.value.as_str()))
                .collect();
            assert_eq!(&got, want, "{input}");
        }
        let bad = [
            "",
            "{}",
            "{a=\"\"}",
            "{a=~\".*\"}",
            "up{",
            "up{a}",
            "up{a=b}",
            "up{a=\"b\"",
            "up{a=\"b}",
            "up x",
            "{a=~\"(\"}",
            "up{a=\"\\q\"}",
            "up{a=\"\\u12\"}",
            "1up",
        ];
        for input in bad {
            assert!(parse_selector(input).is_err(), "{input:?} should fail");
        }
    }
}
