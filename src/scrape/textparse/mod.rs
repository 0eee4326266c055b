//! Parsers for the Prometheus text exposition format 0.0.4 and OpenMetrics 1.0.0.
//!
//! Why hand-written: the scraper parses every body of every target at every interval, and the
//! importer streams files of many gigabytes; both want zero allocations per sample. This parser
//! lends [`Entry`] values that borrow from the body: the raw series text (usable as a cache key),
//! the metric name, label pairs through a lazy iterator (only values with escapes allocate), the
//! value and the optional timestamp. `benches/textparse.rs` measures it.
//!
//! Semantics follow Prometheus's `model/textparse` (promparse.go and openmetricsparse.go, 2.42):
//! - text format: spaces and tabs between tokens, blank lines and free comments allowed, a
//!   trailing comma inside braces allowed, timestamps are integer milliseconds;
//! - OpenMetrics: exactly one space between tokens, no blank lines, only `# HELP`, `# TYPE`,
//!   `# UNIT` and `# EOF` comments, timestamps are float seconds (truncated to milliseconds),
//!   exemplars after ` # ` are checked and skipped, `# EOF` must end the body.
//!
//! The one deliberate difference: the last line of a text-format body may lack its newline.
//!
//! Errors name the 1-based line and say what was expected, in Prometheus's words.

use std::borrow::Cow;
use std::fmt;

/// Which exposition format a body is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4` (and anything unknown, as Prometheus falls back to it).
    Text,
    /// `application/openmetrics-text; version=1.0.0` (or 0.0.1).
    OpenMetrics,
}

impl Format {
    /// The format for a response's `Content-Type`; Prometheus falls back to the text format.
    pub fn from_content_type(ct: &str) -> Format {
        let media = ct.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("application/openmetrics-text") {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }
}

/// A metric family's type, as declared by `# TYPE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricType {
    /// `counter`
    Counter,
    /// `gauge`
    Gauge,
    /// `histogram`
    Histogram,
    /// `gaugehistogram` (OpenMetrics)
    GaugeHistogram,
    /// `summary`
    Summary,
    /// `info` (OpenMetrics)
    Info,
    /// `stateset` (OpenMetrics)
    Stateset,
    /// `untyped` (text) or `unknown` (OpenMetrics)
    Unknown,
}

impl MetricType {
    /// The name the metadata API uses (Prometheus's `model.MetricType` strings).
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::Stateset => "stateset",
            MetricType::Unknown => "unknown",
        }
    }
}

impl fmt::Display for MetricType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One parsed line, borrowing from the body.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry<'a> {
    /// A sample.
    Series(SeriesEntry<'a>),
    /// `# HELP name text` (escapes resolved).
    Help {
        /// Metric family name.
        metric: &'a str,
        /// The help text.
        text: Cow<'a, str>,
    },
    /// `# TYPE name type`.
    Type {
        /// Metric family name.
        metric: &'a str,
        /// The declared type.
        kind: MetricType,
    },
    /// `# UNIT name unit` (OpenMetrics only).
    Unit {
        /// Metric family name.
        metric: &'a str,
        /// The unit (may be empty).
        unit: &'a str,
    },
    /// Any other comment (text format only): the bytes after `#`.
    Comment(&'a [u8]),
}

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesEntry<'a> {
    /// The metric name and label set exactly as written (`name{a="b"}`), a stable cache key for
    /// as long as the target writes the series the same way.
    pub series: &'a [u8],
    /// The metric name.
    pub name: &'a str,
    /// Text between the braces (validated), empty without braces.
    labels_raw: &'a [u8],
    /// The value; NaN, +Inf and -Inf included.
    pub value: f64,
    /// Milliseconds since the epoch, if the line had a timestamp.
    pub timestamp_ms: Option<i64>,
}

impl<'a> SeriesEntry<'a> {
    /// The label pairs in the order written, excluding the metric name. Values with escape
    /// sequences are unescaped into owned strings; all others borrow.
    pub fn labels(&self) -> LabelPairs<'a> {
        LabelPairs {
            rest: self.labels_raw,
        }
    }
}

/// Iterator over a series' `(name, value)` label pairs.
#[derive(Clone, Debug)]
pub struct LabelPairs<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for LabelPairs<'a> {
    type Item = (&'a str, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        // The text was validated by the parser; the scan below is still written defensively
        // (returns None instead of indexing out of bounds) so it can never panic.
        let b = self.rest;
        let mut i = skip_ws(b, 0);
        let name_start = i;
        while i < b.len() && is_lname_char(b[i]) {
            i += 1;
        }
        if i == name_start {
            self.rest = &[];
            return None;
        }
        let name = std::str::from_utf8(&b[name_start..i]).ok()?;
        i = skip_ws(b, i);
        if b.get(i) != Some(&b'=') {
            self.rest = &[];
            return None;
        }
        i = skip_ws(b, i + 1);
        if b.get(i) != Some(&b'"') {
            self.rest = &[];
            return None;
        }
        let vstart = i + 1;
        let (vend, escaped) = match scan_quoted(b, vstart) {
            Some(x) => x,
            None => {
                self.rest = &[];
                return None;
            }
        };
        let raw = std::str::from_utf8(&b[vstart..vend]).ok()?;
        let value = if escaped {
            Cow::Owned(unescape_label_value(raw))
        } else {
            Cow::Borrowed(raw)
        };
        i = skip_ws(b, vend + 1);
        if b.get(i) == Some(&b',') {
            i += 1;
        }
        self.rest = b.get(i..).unwrap_or(&[]);
        Some((name, value))
    }
}

/// What went wrong, for code that matches on errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// A token other than the expected one.
    Syntax,
    /// A value or timestamp that is not a number.
    InvalidNumber,
    /// A label value or help text that is not UTF-8.
    InvalidUtf8,
    /// `# TYPE` with an unknown type.
    InvalidType,
    /// `# UNIT` that is not a suffix of the metric name.
    InvalidUnit,
    /// An OpenMetrics body without `# EOF`.
    MissingEof,
    /// Data after `# EOF`.
    DataAfterEof,
}

/// A parse error: where (line) and what (message in Prometheus's words).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{msg} (line {line})")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// The class of error.
    pub kind: ParseErrorKind,
    /// What is wrong.
    pub msg: String,
}

/// A streaming parser over one body. Iterate it for entries; it stops after the first error.
pub struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
    /// 1-based number of the next line.
    line: usize,
    format: Format,
    done: bool,
    /// Streaming piece: the body's end is not the stream's end (no `# EOF` check there).
    partial: bool,
    /// Whether `# EOF` ended the body.
    saw_eof: bool,
    /// Streaming files repeat a series on consecutive lines; the previous sample line's series
    /// (with its name and label offsets) lets such a line skip the label scan. Only set in
    /// streaming mode: scrape bodies never repeat a series.
    prev: Option<PrevSeries<'a>>,
}

/// The previous sample line's series text and where its name and labels end in it.
#[derive(Clone, Copy)]
struct PrevSeries<'a> {
    series: &'a [u8],
    name_end: usize,
    labels: (usize, usize),
}

impl<'a> Parser<'a> {
    /// A parser over `body` in `format`.
    pub fn new(body: &'a [u8], format: Format) -> Self {
        Parser {
            buf: body,
            pos: 0,
            line: 1,
            format,
            done: false,
            partial: false,
            saw_eof: false,
            prev: None,
        }
    }

    /// A parser over one piece of a longer stream (an import reads a file in pieces cut at line
    /// ends): the end of `body` is not an error even in OpenMetrics, whose `# EOF` may come in a
    /// later piece ([`Parser::saw_eof`] tells whether it came in this one). Consecutive
    /// OpenMetrics lines of the same series, the usual layout of a backfill file, reuse the
    /// previous line's validated name and labels.
    pub fn new_partial(body: &'a [u8], format: Format) -> Self {
        Parser {
            partial: true,
            ..Parser::new(body, format)
        }
    }

    /// Whether `# EOF` ended the body (OpenMetrics).
    pub fn saw_eof(&self) -> bool {
        self.saw_eof
    }

    /// Lines consumed so far (complete lines, including blank and comment lines).
    pub fn lines_read(&self) -> usize {
        self.line - 1
    }

    /// The format this parser reads.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The 1-based line number of the entry last returned.
    pub fn line(&self) -> usize {
        self.line.saturating_sub(1).max(1)
    }

    fn err(&mut self, line: usize, kind: ParseErrorKind, msg: String) -> ParseError {
        self.done = true;
        ParseError { line, kind, msg }
    }

    /// The next entry, `None` at the end of the body; after an error, always `None`.
    #[allow(clippy::should_implement_trait)]
    pub fn next_entry(&mut self) -> Option<Result<Entry<'a>, ParseError>> {
        loop {
            if self.done {
                return None;
            }
            let buf = self.buf;
            if self.pos >= buf.len() {
                self.done = true;
                if self.format == Format::OpenMetrics && !self.partial {
                    let line = self.line;
                    return Some(Err(self.err(
                        line,
                        ParseErrorKind::MissingEof,
                        "data does not end with # EOF".into(),
                    )));
                }
                return None;
            }
            let start = self.pos;
            let (end, has_nl) = match memchr::memchr(b'\n', &buf[start..]) {
                Some(off) => (start + off, true),
                None => (buf.len(), false),
            };
            let line_no = self.line;
            self.line += 1;
            self.pos = end + 1;
            let text = &buf[start..end];
            let r = match self.format {
                Format::Text => parse_text_line(text),
                Format::OpenMetrics if self.partial => self.parse_om_streamed(text, has_nl),
                Format::OpenMetrics => parse_om_line(text, has_nl),
            };
            match r {
                Ok(Some(LineOut::Entry(e))) => return Some(Ok(e)),
                Ok(Some(LineOut::Eof)) => {
                    self.done = true;
                    self.saw_eof = true;
                    // Only nothing (or the newline already consumed) may follow.
                    if self.pos < buf.len() {
                        return Some(Err(self.err(
                            line_no,
                            ParseErrorKind::DataAfterEof,
                            "unexpected data after # EOF".into(),
                        )));
                    }
                    return None;
                }
                Ok(None) => continue,
                Err((kind, msg)) => return Some(Err(self.err(line_no, kind, msg))),
            }
        }
    }
}

impl<'a> Parser<'a> {
    /// An OpenMetrics line in streaming mode: a line that starts with the previous sample
    /// line's series text followed by a space has the same, already validated, name and labels.
    #[inline]
    fn parse_om_streamed(&mut self, line: &'a [u8], has_nl: bool) -> LineResult<'a> {
        if let Some(p) = self.prev {
            let n = p.series.len();
            if has_nl && line.get(n) == Some(&b' ') && line[..n] == *p.series {
                return om_sample_rest(&line[..n], p.name_end, p.labels, line, n);
            }
        }
        let r = parse_om_line(line, has_nl);
        if let Ok(Some(LineOut::Entry(Entry::Series(e)))) = &r {
            // `labels_raw` borrows from `line` when it is not empty.
            let labels = if e.labels_raw.is_empty() {
                (0, 0)
            } else {
                let start = e.labels_raw.as_ptr() as usize - line.as_ptr() as usize;
                (start, start + e.labels_raw.len())
            };
            self.prev = Some(PrevSeries {
                series: e.series,
                name_end: e.name.len(),
                labels,
            });
        }
        r
    }
}

impl<'a> Iterator for Parser<'a> {
    type Item = Result<Entry<'a>, ParseError>;
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.next_entry()
    }
}

enum LineOut<'a> {
    Entry(Entry<'a>),
    Eof,
}

type LineResult<'a> = Result<Option<LineOut<'a>>, (ParseErrorKind, String)>;

#[inline]
fn is_ws(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

#[inline]
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_ws(b[i]) {
        i += 1;
    }
    i
}

#[inline]
fn is_mname_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

#[inline]
fn is_mname_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

#[inline]
fn is_lname_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

#[inline]
fn is_lname_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Scans a quoted string body starting after the opening quote: returns the index of the
/// closing quote and whether a backslash occurred. None if the line ends first.
#[inline]
fn scan_quoted(b: &[u8], start: usize) -> Option<(usize, bool)> {
    let mut i = start;
    let mut escaped = false;
    loop {
        let off = memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
        i += off;
        if b[i] == b'"' {
            return Some((i, escaped));
        }
        escaped = true;
        i += 2; // skip the backslash and the escaped byte
        if i > b.len() {
            return None;
        }
    }
}

/// Resolves `\\`, `\"` and `\n` as Prometheus does; other escapes stay as written.
fn unescape_label_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some('n') => out.push('\n'),
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Resolves `\\` and `\n` (and, in OpenMetrics, `\"`) in help text.
fn unescape_help(s: &str, om: bool) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if om => out.push('"'),
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

fn quoted(b: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(b))
}

fn syntax(expected: &str, line: &[u8], at: usize) -> (ParseErrorKind, String) {
    let at = at.min(line.len());
    let got = match line.get(at..) {
        Some([]) | None => "\"\\n\"".to_string(),
        Some(rest) => {
            let end = rest
                .iter()
                .position(|&c| is_ws(c))
                .unwrap_or(rest.len())
                .clamp(1, 24);
            quoted(&rest[..end.min(rest.len())])
        }
    };
    (
        ParseErrorKind::Syntax,
        format!(
            "{expected}, got {got} while parsing: {}",
            quoted(&line[..(at + 1).min(line.len())])
        ),
    )
}

/// Parses a float as Go's `strconv.ParseFloat` after Prometheus's filter (no `p`, `P`, `_`).
#[inline]
fn parse_float(tok: &[u8]) -> Option<f64> {
    if let Some(v) = fast_decimal(tok) {
        return Some(v);
    }
    if tok.iter().any(|&c| c == b'p' || c == b'P' || c == b'_') {
        return None;
    }
    let s = std::str::from_utf8(tok).ok()?;
    s.parse::<f64>().ok()
}

/// Exact powers of ten up to the fast path's largest fraction.
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// Fast path for the numbers exporters write most: `[-]digits[.digits]` with at most 15
/// digits. The digits as an integer and the power of ten are both exact in an `f64`, so one
/// IEEE division gives the correctly rounded value, the same bits as a full parse (Clinger's
/// fast path). Anything else returns `None` for the general parser.
#[inline]
fn fast_decimal(tok: &[u8]) -> Option<f64> {
    let (neg, digits) = match tok.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, tok),
    };
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    let mut m: u64 = 0;
    let mut n = 0usize;
    let mut frac = None;
    for (i, &c) in digits.iter().enumerate() {
        if c.is_ascii_digit() {
            m = m * 10 + u64::from(c - b'0');
            n += 1;
        } else if c == b'.' && frac.is_none() {
            frac = Some(digits.len() - i - 1);
        } else {
            return None;
        }
    }
    if n == 0 || n > 15 {
        return None;
    }
    let v = m as f64 / POW10[frac.unwrap_or(0)];
    Some(if neg { -v } else { v })
}

fn float_err(tok: &[u8], line: &[u8]) -> (ParseErrorKind, String) {
    (
        ParseErrorKind::InvalidNumber,
        format!(
            "strconv.ParseFloat: parsing {}: invalid syntax while parsing: {}",
            quoted(tok),
            quoted(line)
        ),
    )
}

/// Parses `name` at `i`; returns its end. Caller checked the first byte.
#[inline]
fn scan_mname(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_mname_char(b[i]) {
        i += 1;
    }
    i
}

/// Parses the label set starting after `{` at `i`; returns the index after `}`.
/// `om` forbids whitespace and requires a comma or `}` after each value.
fn scan_labels(b: &[u8], mut i: usize, om: bool) -> Result<usize, (ParseErrorKind, String)> {
    loop {
        if !om {
            i = skip_ws(b, i);
        }
        match b.get(i) {
            Some(b'}') => return Ok(i + 1),
            Some(&c) if is_lname_start(c) => {}
            _ => return Err(syntax("expected label name", b, i)),
        }
        while i < b.len() && is_lname_char(b[i]) {
            i += 1;
        }
        if !om {
            i = skip_ws(b, i);
        }
        if b.get(i) != Some(&b'=') {
            return Err(syntax("expected equal", b, i));
        }
        i += 1;
        if !om {
            i = skip_ws(b, i);
        }
        if b.get(i) != Some(&b'"') {
            return Err(syntax("expected label value", b, i));
        }
        let vstart = i + 1;
        let (vend, _) = match scan_quoted(b, vstart) {
            Some(x) => x,
            None => return Err(syntax("expected label value", b, i)),
        };
        let v = &b[vstart..vend];
        if !v.is_ascii() && std::str::from_utf8(v).is_err() {
            return Err((
                ParseErrorKind::InvalidUtf8,
                format!("invalid UTF-8 label value: {}", quoted(v)),
            ));
        }
        i = vend + 1;
        if !om {
            i = skip_ws(b, i);
        }
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => {}
            _ if om => return Err(syntax("expected comma or brace close", b, i)),
            _ => {}
        }
    }
}

/// Name (ASCII by grammar) as &str.
#[inline]
fn ascii_str(b: &[u8]) -> &str {
    // The grammar only admits ASCII bytes here; fall back to "" rather than panic.
    std::str::from_utf8(b).unwrap_or("")
}

fn parse_text_line(line: &[u8]) -> LineResult<'_> {
    let mut i = skip_ws(line, 0);
    let Some(&first) = line.get(i) else {
        return Ok(None); // blank line
    };
    if first == b'#' {
        return parse_text_comment(line, i);
    }
    if !is_mname_start(first) {
        return Err(syntax("expected a valid start token", line, i));
    }
    let name_start = i;
    i = scan_mname(line, i);
    let name_end = i;
    let mut series_end = i;
    let mut labels_raw: &[u8] = &[];
    i = skip_ws(line, i);
    if line.get(i) == Some(&b'{') {
        let close = scan_labels(line, i + 1, false)?;
        labels_raw = &line[i + 1..close - 1];
        series_end = close;
        i = skip_ws(line, close);
    }
    let vstart = i;
    while i < line.len() && !is_ws(line[i]) {
        i += 1;
    }
    if i == vstart {
        return Err(syntax("expected value after metric", line, i));
    }
    let tok = &line[vstart..i];
    let value = parse_float(tok).ok_or_else(|| float_err(tok, line))?;
    i = skip_ws(line, i);
    let mut timestamp_ms = None;
    if i < line.len() {
        let tstart = i;
        while i < line.len() && !is_ws(line[i]) {
            i += 1;
        }
        let tok = &line[tstart..i];
        let ts = std::str::from_utf8(tok)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| {
                (
                    ParseErrorKind::InvalidNumber,
                    format!(
                        "strconv.ParseInt: parsing {}: invalid syntax while parsing: {}",
                        quoted(tok),
                        quoted(line)
                    ),
                )
            })?;
        timestamp_ms = Some(ts);
        i = skip_ws(line, i);
        if i < line.len() {
            return Err(syntax("expected next entry after timestamp", line, i));
        }
    }
    Ok(Some(LineOut::Entry(Entry::Series(SeriesEntry {
        series: &line[name_start..series_end],
        name: ascii_str(&line[name_start..name_end]),
        labels_raw,
        value,
        timestamp_ms,
    }))))
}

fn parse_text_comment(line: &[u8], hash: usize) -> LineResult<'_> {
    let comment = Ok(Some(LineOut::Entry(Entry::Comment(&line[hash + 1..]))));
    let i = skip_ws(line, hash + 1);
    if i == hash + 1 {
        return comment;
    }
    let rest = &line[i..];
    let is_help = rest.starts_with(b"HELP");
    let is_type = rest.starts_with(b"TYPE");
    if !(is_help || is_type) || !rest.get(4).is_some_and(|&c| is_ws(c)) {
        return comment;
    }
    let what = if is_help { "HELP" } else { "TYPE" };
    let mut j = skip_ws(line, i + 4);
    let mstart = j;
    if !line.get(j).is_some_and(|&c| is_mname_start(c)) {
        return Err(syntax(
            &format!("expected metric name after {what}"),
            line,
            j,
        ));
    }
    j = scan_mname(line, j);
    let metric = ascii_str(&line[mstart..j]);
    // Exactly one whitespace byte separates the name from the text, which may be empty.
    match line.get(j) {
        Some(&c) if is_ws(c) => j += 1,
        Some(_) => {
            return Err(syntax(
                &format!("expected metric name after {what}"),
                line,
                j,
            ))
        }
        None => {
            return Err((
                ParseErrorKind::Syntax,
                format!("expected text in {what}, got \"\\n\""),
            ))
        }
    }
    let text = &line[j..];
    if is_help {
        let s = std::str::from_utf8(text).map_err(|_| {
            (
                ParseErrorKind::InvalidUtf8,
                format!("help text {} is not a valid utf8 string", quoted(text)),
            )
        })?;
        return Ok(Some(LineOut::Entry(Entry::Help {
            metric,
            text: unescape_help(s, false),
        })));
    }
    let kind = match text {
        b"counter" => MetricType::Counter,
        b"gauge" => MetricType::Gauge,
        b"histogram" => MetricType::Histogram,
        b"summary" => MetricType::Summary,
        b"untyped" => MetricType::Unknown,
        _ => {
            return Err((
                ParseErrorKind::InvalidType,
                format!("invalid metric type {}", quoted(text)),
            ))
        }
    };
    Ok(Some(LineOut::Entry(Entry::Type { metric, kind })))
}

fn parse_om_line(line: &[u8], has_nl: bool) -> LineResult<'_> {
    let Some(&first) = line.first() else {
        return Err(syntax("expected a valid start token", line, 0));
    };
    if first == b'#' {
        return parse_om_comment(line, has_nl);
    }
    if !has_nl {
        return Err((
            ParseErrorKind::MissingEof,
            "data does not end with # EOF".into(),
        ));
    }
    if !is_mname_start(first) {
        return Err(syntax("expected a valid start token", line, 0));
    }
    let mut i = scan_mname(line, 0);
    let name_end = i;
    let mut labels = (0, 0);
    if line.get(i) == Some(&b'{') {
        let close = scan_labels(line, i + 1, true)?;
        labels = (i + 1, close - 1);
        i = close;
    }
    om_sample_rest(&line[..i], name_end, labels, line, i)
}

/// The rest of an OpenMetrics sample line after its series text `series` (`line[..i]`): value,
/// optional timestamp, optional exemplar.
#[inline]
fn om_sample_rest<'a>(
    series: &'a [u8],
    name_end: usize,
    labels: (usize, usize),
    line: &'a [u8],
    i: usize,
) -> LineResult<'a> {
    if line.get(i) != Some(&b' ') {
        return Err(syntax("expected value after metric", line, i));
    }
    let (value, mut i) = om_float(line, i + 1, "expected value after metric")?;
    let mut timestamp_ms = None;
    if line.get(i) == Some(&b' ') && line.get(i + 1) != Some(&b'#') {
        let (ts, j) = om_float(line, i + 1, "expected timestamp")?;
        if !ts.is_finite() {
            return Err((
                ParseErrorKind::InvalidNumber,
                format!("invalid timestamp {ts}"),
            ));
        }
        timestamp_ms = Some((ts * 1000.0) as i64);
        i = j;
    }
    if i < line.len() {
        if line.get(i..i + 3) == Some(b" # ") {
            om_exemplar(line, i + 3)?;
        } else {
            let what = if timestamp_ms.is_some() {
                "expected next entry after timestamp"
            } else {
                "expected timestamp or new record"
            };
            return Err(syntax(what, line, i));
        }
    }
    Ok(Some(LineOut::Entry(Entry::Series(SeriesEntry {
        series,
        name: ascii_str(&line[..name_end]),
        labels_raw: line.get(labels.0..labels.1).unwrap_or(&[]),
        value,
        timestamp_ms,
    }))))
}

/// A float token at `i` ending at a space or the line end.
fn om_float(line: &[u8], i: usize, what: &str) -> Result<(f64, usize), (ParseErrorKind, String)> {
    let mut j = i;
    while j < line.len() && line[j] != b' ' {
        j += 1;
    }
    if j == i {
        return Err(syntax(what, line, i));
    }
    let tok = &line[i..j];
    let v = parse_float(tok).ok_or_else(|| float_err(tok, line))?;
    Ok((v, j))
}

/// Checks an exemplar `{labels} value [timestamp]` at `i` (after ` # `); its content is dropped.
fn om_exemplar(line: &[u8], i: usize) -> Result<(), (ParseErrorKind, String)> {
    if line.get(i) != Some(&b'{') {
        return Err(syntax("expected label name", line, i));
    }
    let close = scan_labels(line, i + 1, true)?;
    if line.get(close) != Some(&b' ') {
        return Err(syntax("expected value after exemplar labels", line, close));
    }
    let (_, j) = om_float(line, close + 1, "expected value after exemplar labels")?;
    if j == line.len() {
        return Ok(());
    }
    if line.get(j) != Some(&b' ') {
        return Err(syntax("expected timestamp or comment", line, j));
    }
    let (ts, k) = om_float(line, j + 1, "expected timestamp or comment")?;
    if !ts.is_finite() {
        return Err((
            ParseErrorKind::InvalidNumber,
            format!("invalid exemplar timestamp {ts}"),
        ));
    }
    if k != line.len() {
        return Err(syntax(
            "expected next entry after exemplar timestamp",
            line,
            k,
        ));
    }
    Ok(())
}

fn parse_om_comment(line: &[u8], has_nl: bool) -> LineResult<'_> {
    if line == b"# EOF" {
        return Ok(Some(LineOut::Eof));
    }
    if !has_nl {
        return Err((
            ParseErrorKind::MissingEof,
            "data does not end with # EOF".into(),
        ));
    }
    let (what, rest) = if let Some(r) = line.strip_prefix(b"# HELP ") {
        ("HELP", r)
    } else if let Some(r) = line.strip_prefix(b"# TYPE ") {
        ("TYPE", r)
    } else if let Some(r) = line.strip_prefix(b"# UNIT ") {
        ("UNIT", r)
    } else {
        return Err(syntax("expected a valid start token", line, 0));
    };
    let off = line.len() - rest.len();
    if !rest.first().is_some_and(|&c| is_mname_start(c)) {
        return Err(syntax(
            &format!("expected metric name after {what}"),
            line,
            off,
        ));
    }
    let mend = scan_mname(rest, 0);
    let metric = ascii_str(&rest[..mend]);
    let text = match rest.get(mend) {
        Some(b' ') => &rest[mend + 1..],
        None => &rest[mend..],
        Some(_) => {
            return Err(syntax(
                &format!("expected metric name after {what}"),
                line,
                off + mend,
            ))
        }
    };
    let entry = match what {
        "HELP" => {
            let s = std::str::from_utf8(text).map_err(|_| {
                (
                    ParseErrorKind::InvalidUtf8,
                    format!("help text {} is not a valid utf8 string", quoted(text)),
                )
            })?;
            Entry::Help {
                metric,
                text: unescape_help(s, true),
            }
        }
        "TYPE" => {
            let kind = match text {
                b"counter" => MetricType::Counter,
                b"gauge" => MetricType::Gauge,
                b"histogram" => MetricType::Histogram,
                b"gaugehistogram" => MetricType::GaugeHistogram,
                b"summary" => MetricType::Summary,
                b"info" => MetricType::Info,
                b"stateset" => MetricType::Stateset,
                b"unknown" => MetricType::Unknown,
                _ => {
                    return Err((
                        ParseErrorKind::InvalidType,
                        format!("invalid metric type {}", quoted(text)),
                    ))
                }
            };
            Entry::Type { metric, kind }
        }
        _ => {
            let unit = ascii_or_err(text)?;
            if !unit.is_empty() {
                let ok = metric.len() > unit.len()
                    && metric.ends_with(unit)
                    && metric.as_bytes().get(metric.len() - unit.len() - 1) == Some(&b'_');
                if !ok {
                    return Err((
                        ParseErrorKind::InvalidUnit,
                        format!("unit {unit:?} not a suffix of metric {metric:?}"),
                    ));
                }
            }
            Entry::Unit { metric, unit }
        }
    };
    Ok(Some(LineOut::Entry(entry)))
}

fn ascii_or_err(b: &[u8]) -> Result<&str, (ParseErrorKind, String)> {
    std::str::from_utf8(b).map_err(|_| {
        (
            ParseErrorKind::InvalidUtf8,
            format!("unit {} is not a valid utf8 string", quoted(b)),
        )
    })
}

#[cfg(test)]
mod tests;
