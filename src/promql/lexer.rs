//! Tokens of PromQL, as Prometheus's lexer produces them
//! (<https://prometheus.io/docs/prometheus/latest/querying/basics/>).
//!
//! The whole query is tokenised up front; every token keeps its byte offset so that parse errors
//! can say `line:col` like Prometheus.

use super::parse::ParseError;

/// One token kind.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    /// Identifier or keyword-like word (`sum`, `by`, `rate`, `foo`); `:` allowed (metric names).
    Ident(String),
    /// A number literal (decimal, hex, Inf, NaN).
    Number(f64),
    /// A duration literal in milliseconds (`5m`, `1h30m`).
    Duration(i64),
    /// A string literal, unescaped.
    Str(String),
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Comma,
    Colon,
    At,
    // operators
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eql,    // ==
    Neq,    // !=
    Lss,    // <
    Lte,    // <=
    Gtr,    // >
    Gte,    // >=
    Assign, // =
    EqlRegex,
    NeqRegex,
    Eof,
}

impl Tok {
    /// How Prometheus names the token in "unexpected ..." errors.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => {
                let l = s.to_ascii_lowercase();
                if super::parse::aggregate_op(&l).is_some() {
                    format!("<aggr:{l}>")
                } else if super::parse::is_keyword(&l) {
                    format!("<{l}>")
                } else {
                    format!("identifier {s:?}")
                }
            }
            Tok::Number(_) => "number".into(),
            Tok::Duration(_) => "duration".into(),
            Tok::Str(s) => format!("string {s:?}"),
            Tok::LParen => "\"(\"".into(),
            Tok::RParen => "\")\"".into(),
            Tok::LBrace => "\"{\"".into(),
            Tok::RBrace => "\"}\"".into(),
            Tok::LBracket => "\"[\"".into(),
            Tok::RBracket => "\"]\"".into(),
            Tok::Comma => "\",\"".into(),
            Tok::Colon => "\":\"".into(),
            Tok::At => "<@>".into(),
            Tok::Add => "<op:+>".into(),
            Tok::Sub => "<op:->".into(),
            Tok::Mul => "<op:*>".into(),
            Tok::Div => "<op:/>".into(),
            Tok::Mod => "<op:%>".into(),
            Tok::Pow => "<op:^>".into(),
            Tok::Eql => "<op:==>".into(),
            Tok::Neq => "<op:!=>".into(),
            Tok::Lss => "<op:<>".into(),
            Tok::Lte => "<op:<=>".into(),
            Tok::Gtr => "<op:>>".into(),
            Tok::Gte => "<op:>=>".into(),
            Tok::Assign => "\"=\"".into(),
            Tok::EqlRegex => "<op:=~>".into(),
            Tok::NeqRegex => "<op:!~>".into(),
            Tok::Eof => "end of input".into(),
        }
    }
}

/// A token and the byte offsets it spans.
#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub tok: Tok,
    pub pos: usize,
}

/// Tokenises `input`.
pub(crate) fn lex(input: &str) -> Result<Vec<Token>, ParseError> {
    let b = input.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'#' {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let two = if i + 1 < b.len() { b[i + 1] } else { 0 };
        let simple = match c {
            b'(' => Some(Tok::LParen),
            b')' => Some(Tok::RParen),
            b'{' => Some(Tok::LBrace),
            b'}' => Some(Tok::RBrace),
            b'[' => Some(Tok::LBracket),
            b']' => Some(Tok::RBracket),
            b',' => Some(Tok::Comma),
            b'@' => Some(Tok::At),
            b'+' => Some(Tok::Add),
            b'-' => Some(Tok::Sub),
            b'*' => Some(Tok::Mul),
            b'/' => Some(Tok::Div),
            b'%' => Some(Tok::Mod),
            b'^' => Some(Tok::Pow),
            _ => None,
        };
        if let Some(t) = simple {
            i += 1;
            out.push(Token { tok: t, pos: start });
            continue;
        }
        let op2 = match (c, two) {
            (b'=', b'=') => Some(Tok::Eql),
            (b'!', b'=') => Some(Tok::Neq),
            (b'<', b'=') => Some(Tok::Lte),
            (b'>', b'=') => Some(Tok::Gte),
            (b'=', b'~') => Some(Tok::EqlRegex),
            (b'!', b'~') => Some(Tok::NeqRegex),
            _ => None,
        };
        if let Some(t) = op2 {
            i += 2;
            out.push(Token { tok: t, pos: start });
            continue;
        }
        match c {
            b'<' => {
                i += 1;
                out.push(Token {
                    tok: Tok::Lss,
                    pos: start,
                });
                continue;
            }
            b'>' => {
                i += 1;
                out.push(Token {
                    tok: Tok::Gtr,
                    pos: start,
                });
                continue;
            }
            b'=' => {
                i += 1;
                out.push(Token {
                    tok: Tok::Assign,
                    pos: start,
                });
                continue;
            }
            b':' => {
                i += 1;
                out.push(Token {
                    tok: Tok::Colon,
                    pos: start,
                });
                continue;
            }
            b'!' => {
                return Err(ParseError::at(
                    input,
                    start,
                    "unexpected character after '!': ".to_string() + &char_at(input, start + 1),
                ));
            }
            b'"' | b'\'' | b'`' => {
                let (s, n) = lex_string(input, i)?;
                i = n;
                out.push(Token {
                    tok: Tok::Str(s),
                    pos: start,
                });
                continue;
            }
            _ => {}
        }
        if c.is_ascii_digit() || (c == b'.' && two.is_ascii_digit()) {
            let (t, n) = lex_number_or_duration(input, i)?;
            i = n;
            out.push(Token { tok: t, pos: start });
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
                i += 1;
            }
            let word = &input[start..i];
            let lw = word.to_ascii_lowercase();
            let tok = if lw == "inf" || lw == "nan" {
                Tok::Number(if lw == "inf" { f64::INFINITY } else { f64::NAN })
            } else {
                Tok::Ident(word.to_string())
            };
            out.push(Token { tok, pos: start });
            continue;
        }
        return Err(ParseError::at(
            input,
            start,
            format!("unexpected character: {}", char_at(input, start)),
        ));
    }
    out.push(Token {
        tok: Tok::Eof,
        pos: input.len(),
    });
    Ok(out)
}

fn char_at(input: &str, i: usize) -> String {
    match input.get(i..).and_then(|s| s.chars().next()) {
        Some(c) => format!("{c:?}"),
        None => "end of input".into(),
    }
}

/// Scans a quoted string starting at `i` (the quote); returns the unescaped value and the end.
fn lex_string(input: &str, i: usize) -> Result<(String, usize), ParseError> {
    let b = input.as_bytes();
    let q = b[i];
    let mut j = i + 1;
    if q == b'`' {
        while j < b.len() && b[j] != b'`' {
            j += 1;
        }
        if j >= b.len() {
            return Err(ParseError::at(input, i, "unterminated raw string".into()));
        }
        return Ok((input[i + 1..j].to_string(), j + 1));
    }
    let mut out = String::new();
    loop {
        if j >= b.len() || b[j] == b'\n' {
            return Err(ParseError::at(
                input,
                i,
                "unterminated quoted string".into(),
            ));
        }
        let c = b[j];
        if c == q {
            return Ok((out, j + 1));
        }
        if c != b'\\' {
            let ch = input[j..].chars().next().unwrap_or('\u{fffd}');
            out.push(ch);
            j += ch.len_utf8();
            continue;
        }
        j += 1;
        let e = if j < b.len() { b[j] } else { 0 };
        j += 1;
        let simple = match e {
            b'a' => Some('\x07'),
            b'b' => Some('\x08'),
            b'f' => Some('\x0c'),
            b'n' => Some('\n'),
            b'r' => Some('\r'),
            b't' => Some('\t'),
            b'v' => Some('\x0b'),
            b'\\' => Some('\\'),
            b'"' if q == b'"' => Some('"'),
            b'\'' if q == b'\'' => Some('\''),
            _ => None,
        };
        if let Some(ch) = simple {
            out.push(ch);
            continue;
        }
        let hex = |j: usize, n: usize| -> Option<u32> {
            let s = input.get(j..j + n)?;
            u32::from_str_radix(s, 16).ok()
        };
        match e {
            b'x' => {
                // Go allows arbitrary bytes; we accept only those that form valid UTF-8 (ASCII).
                let v = hex(j, 2).ok_or_else(|| {
                    ParseError::at(input, j - 2, "invalid escape sequence".into())
                })?;
                if v < 0x80 {
                    out.push(v as u8 as char);
                } else {
                    return Err(ParseError::at(input, i, "invalid syntax".into()));
                }
                j += 2;
            }
            b'u' | b'U' => {
                let n = if e == b'u' { 4 } else { 8 };
                let v = hex(j, n).and_then(char::from_u32).ok_or_else(|| {
                    ParseError::at(input, j - 2, "invalid escape sequence".into())
                })?;
                out.push(v);
                j += n;
            }
            b'0'..=b'7' => {
                let s = input.get(j - 1..j + 2).unwrap_or("");
                let v = u32::from_str_radix(s, 8)
                    .ok()
                    .filter(|v| *v < 0x80)
                    .ok_or_else(|| {
                        ParseError::at(input, j - 2, "invalid escape sequence".into())
                    })?;
                out.push(v as u8 as char);
                j += 2;
            }
            _ => {
                return Err(ParseError::at(
                    input,
                    j - 2,
                    "unknown escape sequence".to_string(),
                ))
            }
        }
    }
}

const UNITS: &[(&str, i64)] = &[
    ("ms", 1),
    ("s", 1000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
    ("w", 604_800_000),
    ("y", 31_536_000_000),
];

/// Parses a Prometheus duration string (`1h30m`, `5m`, `0`) into milliseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    if s == "0" {
        return Some(0);
    }
    let b = s.as_bytes();
    let mut i = 0;
    let mut total: i64 = 0;
    let mut last_unit = usize::MAX;
    if b.is_empty() {
        return None;
    }
    while i < b.len() {
        let st = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if st == i {
            return None;
        }
        let n: i64 = s[st..i].parse().ok()?;
        let us = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[us..i];
        let idx = UNITS.iter().position(|(u, _)| *u == unit)?;
        // Units must appear in decreasing order, each once.
        let order = [6usize, 5, 4, 3, 2, 1, 0][idx];
        if last_unit != usize::MAX && order <= last_unit {
            return None;
        }
        last_unit = order;
        total = total.checked_add(n.checked_mul(UNITS[idx].1)?)?;
    }
    Some(total)
}

fn lex_number_or_duration(input: &str, i: usize) -> Result<(Tok, usize), ParseError> {
    let b = input.as_bytes();
    let mut j = i;
    // hex
    if b[j] == b'0' && j + 1 < b.len() && (b[j + 1] == b'x' || b[j + 1] == b'X') {
        j += 2;
        let st = j;
        while j < b.len() && b[j].is_ascii_hexdigit() {
            j += 1;
        }
        let v = i64::from_str_radix(&input[st..j], 16).map_err(|_| {
            ParseError::at(
                input,
                i,
                format!("bad number or duration syntax: {:?}", &input[i..j]),
            )
        })?;
        return Ok((Tok::Number(v as f64), j));
    }
    // Try a duration: digits followed by a unit, repeated.
    let mut k = j;
    let mut is_dur = false;
    loop {
        let st = k;
        while k < b.len() && b[k].is_ascii_digit() {
            k += 1;
        }
        if k == st {
            break;
        }
        let us = k;
        while k < b.len() && b[k].is_ascii_alphabetic() {
            k += 1;
        }
        let unit = &input[us..k];
        if UNITS.iter().any(|(u, _)| *u == unit) {
            is_dur = true;
            continue;
        }
        // not a unit: roll back
        k = us;
        break;
    }
    if is_dur {
        // The run must end on a unit boundary and not continue with a word character.
        let text = &input[j..k];
        if k < b.len() && (b[k].is_ascii_alphanumeric() || b[k] == b'_' || b[k] == b'.') {
            return Err(ParseError::at(
                input,
                i,
                format!("bad number or duration syntax: {:?}", {
                    let mut e = k;
                    while e < b.len()
                        && (b[e].is_ascii_alphanumeric() || b[e] == b'_' || b[e] == b'.')
                    {
                        e += 1;
                    }
                    &input[j..e]
                }),
            ));
        }
        let ms = parse_duration(text).ok_or_else(|| {
            ParseError::at(input, i, format!("bad number or duration syntax: {text:?}"))
        })?;
        return Ok((Tok::Duration(ms), k));
    }
    // decimal number
    while j < b.len() && (b[j].is_ascii_digit() || b[j] == b'_') {
        j += 1;
    }
    if j < b.len() && b[j] == b'.' {
        j += 1;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
    }
    if j < b.len() && (b[j] == b'e' || b[j] == b'E') {
        let mut k = j + 1;
        if k < b.len() && (b[k] == b'+' || b[k] == b'-') {
            k += 1;
        }
        if k < b.len() && b[k].is_ascii_digit() {
            while k < b.len() && b[k].is_ascii_digit() {
                k += 1;
            }
            j = k;
        }
    }
    let text = &input[i..j];
    if j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
        let mut e = j;
        while e < b.len() && (b[e].is_ascii_alphanumeric() || b[e] == b'_' || b[e] == b'.') {
            e += 1;
        }
        return Err(ParseError::at(
            input,
            i,
            format!("bad number or duration syntax: {:?}", &input[i..e]),
        ));
    }
    let clean: String = text.chars().filter(|c| *c != '_').collect();
    let v: f64 = clean.parse().map_err(|_| {
        ParseError::at(input, i, format!("bad number or duration syntax: {text:?}"))
    })?;
    Ok((Tok::Number(v), j))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let cases = [
            ("5m", Some(300_000)),
            ("1h30m", Some(5_400_000)),
            ("0", Some(0)),
            ("1m1h", None),
            ("5", None),
            ("20s500ms", Some(20_500)),
        ];
        for (s, want) in cases {
            assert_eq!(parse_duration(s), want, "{s}");
        }
    }
}
