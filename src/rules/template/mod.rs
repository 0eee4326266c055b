//! The Go `text/template` subset that Prometheus rule labels and annotations use.
//!
//! Supported: text and `{{ }}` actions with `{{-`/`-}}` trimming and `{{/* comments */}}`;
//! pipelines (`a | b`), parenthesised pipelines, variables (`$x := ...`, `$x = ...`), fields on
//! dot and on variables (`.Labels.job`, `$labels.instance`), string/raw/number/bool/nil literals;
//! `if`/`else if`/`else`, `range` (with `$i, $v :=`), `with`; Go's builtins (`and or not len index
//! print printf println eq ne lt le gt ge html js urlquery slice`) and Prometheus's functions
//! (see `funcs.rs`). `define`/`template`/`block` are not supported. As in Prometheus, `$labels`,
//! `$externalLabels`, `$externalURL` and `$value` are predefined, a missing map key is the empty
//! string (`missingkey=zero`), and an unknown function is an error when the template is parsed.
//!
//! Semantics follow <https://pkg.go.dev/text/template> and Prometheus's
//! `template/template.go`; messages follow Go's (`template: NAME:LINE: function "foo" not defined`).

mod funcs;
pub mod gofmt;

use std::collections::BTreeMap;
use std::fmt;

use crate::model::Labels;

use super::QueryFn;

/// A parse or execution error, with Go's `template: NAME:LINE: ...` text.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("template: {name}:{line}: {msg}")]
pub struct TemplateError {
    /// Template name (`__alert_<name>` for rule templates).
    pub name: String,
    /// 1-based line of the action.
    pub line: usize,
    /// What went wrong.
    pub msg: String,
}

/// A template value (the Go values templates handle).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `nil`.
    Nil,
    /// A bool.
    Bool(bool),
    /// An int.
    Int(i64),
    /// A float64.
    Float(f64),
    /// A string.
    Str(String),
    /// A map with string keys (labels are maps of strings).
    Map(BTreeMap<String, Value>),
    /// A slice (query results).
    List(Vec<Value>),
    /// A struct with named fields (the template data, a query-result sample).
    Struct(Vec<(&'static str, Value)>),
    /// A `time.Time`, in ms since the epoch (UTC).
    Time(i64),
    /// A `time.Duration`, in seconds.
    Duration(f64),
}

impl Value {
    /// Labels as a Go `map[string]string`.
    pub fn from_labels(l: &Labels) -> Value {
        Value::Map(
            l.iter()
                .map(|l| (l.name.clone(), Value::Str(l.value.clone())))
                .collect(),
        )
    }

    fn truthy(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Struct(_) | Value::Time(_) => true,
            Value::Duration(d) => *d != 0.0,
        }
    }

    /// Go's type name, for error messages and `%!verb(type=value)`.
    fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::Map(_) => "map[string]string",
            Value::List(_) => "template.queryResult",
            Value::Struct(_) => "struct",
            Value::Time(_) => "time.Time",
            Value::Duration(_) => "time.Duration",
        }
    }
}

impl fmt::Display for Value {
    /// `fmt.Sprint` of the value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("<nil>"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(v) => f.write_str(&gofmt::format_v(*v)),
            Value::Str(s) => f.write_str(s),
            Value::Map(m) => {
                f.write_str("map[")?;
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{k}:{v}")?;
                }
                f.write_str("]")
            }
            Value::List(l) => {
                f.write_str("[")?;
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::Struct(fs) => {
                f.write_str("{")?;
                for (i, (_, v)) in fs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("}")
            }
            Value::Time(ms) => f.write_str(&gofmt::format_time_ms(*ms)),
            Value::Duration(s) => f.write_str(&gofmt::format_go_duration(*s)),
        }
    }
}

/// What a rule template sees: the alert's labels and value, and the server's identity.
#[derive(Clone, Debug, Default)]
pub struct TemplateData {
    /// The alert's labels (`$labels`, `.Labels`).
    pub labels: Labels,
    /// The server's external labels (`$externalLabels`).
    pub external_labels: Labels,
    /// The server's external URL (`$externalURL`).
    pub external_url: String,
    /// The sample value (`$value`, `.Value`).
    pub value: f64,
}

/// The environment of one expansion: `query` runs through this function at `t_ms`.
#[derive(Clone, Default)]
pub struct ExecContext {
    /// Evaluates `query "..."`; without it `query` fails.
    pub query: Option<QueryFn>,
    /// The evaluation time, in ms.
    pub t_ms: i64,
    /// The external URL (for `externalURL`, `pathPrefix`).
    pub external_url: String,
}

// ---- lexing ----

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Field(String),
    Var(String),
    Dot,
    Str(String),
    Num(String),
    Char(char),
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
}

/// A token and whether whitespace preceded it (field chains must be adjacent).
#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    spaced: bool,
}

enum Item {
    Text(String),
    Action { line: usize, toks: Vec<Token> },
}

fn lex(name: &str, src: &str) -> Result<Vec<Item>, TemplateError> {
    let err = |line: usize, msg: &str| TemplateError {
        name: name.to_string(),
        line,
        msg: msg.to_string(),
    };
    let line_at = |pos: usize| src[..pos].matches('\n').count() + 1;
    let b = src.as_bytes();
    let mut items = Vec::new();
    let mut pos = 0;
    let mut trim_next = false;
    while pos < src.len() {
        let open = src[pos..].find("{{").map(|i| pos + i);
        let text_end = open.unwrap_or(src.len());
        let mut text = &src[pos..text_end];
        if trim_next {
            text = text.trim_start_matches([' ', '\t', '\r', '\n']);
        }
        let Some(open) = open else {
            if !text.is_empty() {
                items.push(Item::Text(text.to_string()));
            }
            break;
        };
        let line = line_at(open);
        let mut p = open + 2;
        if src[p..].starts_with("- ")
            || src[p..].starts_with("-\t")
            || src[p..].starts_with("-\n")
            || src[p..].starts_with("-\r")
        {
            text = text.trim_end_matches([' ', '\t', '\r', '\n']);
            p += 2;
        }
        if !text.is_empty() {
            items.push(Item::Text(text.to_string()));
        }
        trim_next = false;
        // Comment.
        if src[p..].starts_with("/*") {
            let start = p;
            let Some(end) = src[start + 2..].find("*/").map(|i| start + 2 + i + 2) else {
                return Err(err(line, "unclosed comment"));
            };
            let rest = &src[end..];
            if rest.starts_with("}}") {
                pos = end + 2;
            } else if rest.starts_with(" -}}") {
                pos = end + 4;
                trim_next = true;
            } else {
                return Err(err(line, "comment ends before closing delimiter"));
            }
            continue;
        }
        let mut toks = Vec::new();
        loop {
            let ws_start = p;
            while p < b.len() && (b[p] == b' ' || b[p] == b'\t' || b[p] == b'\r' || b[p] == b'\n') {
                p += 1;
            }
            let spaced = p > ws_start;
            if p >= b.len() {
                return Err(err(line, "unclosed action"));
            }
            if src[p..].starts_with("}}") {
                p += 2;
                break;
            }
            if spaced && src[p..].starts_with("-}}") {
                p += 3;
                trim_next = true;
                break;
            }
            let c = b[p];
            let tok = match c {
                b'|' => {
                    p += 1;
                    Tok::Pipe
                }
                b'(' => {
                    p += 1;
                    Tok::LParen
                }
                b')' => {
                    p += 1;
                    Tok::RParen
                }
                b',' => {
                    p += 1;
                    Tok::Comma
                }
                b':' if src[p..].starts_with(":=") => {
                    p += 2;
                    Tok::Declare
                }
                b'=' => {
                    p += 1;
                    Tok::Assign
                }
                b'"' => {
                    let mut s = String::new();
                    p += 1;
                    loop {
                        let Some(ch) = src[p..].chars().next() else {
                            return Err(err(line, "unterminated quoted string"));
                        };
                        p += ch.len_utf8();
                        match ch {
                            '"' => break,
                            '\n' => return Err(err(line, "unterminated quoted string")),
                            '\\' => {
                                let Some(e) = src[p..].chars().next() else {
                                    return Err(err(line, "unterminated quoted string"));
                                };
                                p += e.len_utf8();
                                match e {
                                    'n' => s.push('\n'),
                                    't' => s.push('\t'),
                                    'r' => s.push('\r'),
                                    '\\' => s.push('\\'),
                                    '"' => s.push('"'),
                                    '\'' => s.push('\''),
                                    'a' => s.push('\x07'),
                                    'b' => s.push('\x08'),
                                    'f' => s.push('\x0c'),
                                    'v' => s.push('\x0b'),
                                    'x' | 'u' | 'U' => {
                                        let n = match e {
                                            'x' => 2,
                                            'u' => 4,
                                            _ => 8,
                                        };
                                        let hex = src.get(p..p + n).ok_or_else(|| {
                                            err(line, "invalid syntax in quoted string")
                                        })?;
                                        let v = u32::from_str_radix(hex, 16).map_err(|_| {
                                            err(line, "invalid syntax in quoted string")
                                        })?;
                                        p += n;
                                        s.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                                    }
                                    _ => return Err(err(line, "invalid syntax in quoted string")),
                                }
                            }
                            ch => s.push(ch),
                        }
                    }
                    Tok::Str(s)
                }
                b'`' => {
                    let Some(end) = src[p + 1..].find('`') else {
                        return Err(err(line, "unterminated raw quoted string"));
                    };
                    let s = src[p + 1..p + 1 + end].to_string();
                    p += end + 2;
                    Tok::Str(s)
                }
                b'\'' => {
                    let rest = &src[p + 1..];
                    let mut it = rest.chars();
                    match (it.next(), it.next()) {
                        (Some(ch), Some('\'')) if ch != '\\' => {
                            p += 1 + ch.len_utf8() + 1;
                            Tok::Char(ch)
                        }
                        _ => return Err(err(line, "unterminated character constant")),
                    }
                }
                b'$' => {
                    let s = p + 1;
                    let mut e = s;
                    while e < b.len() && (b[e] == b'_' || b[e].is_ascii_alphanumeric()) {
                        e += 1;
                    }
                    p = e;
                    Tok::Var(src[s..e].to_string())
                }
                b'.' if p + 1 < b.len() && (b[p + 1] == b'_' || b[p + 1].is_ascii_alphabetic()) => {
                    let s = p + 1;
                    let mut e = s;
                    while e < b.len() && (b[e] == b'_' || b[e].is_ascii_alphanumeric()) {
                        e += 1;
                    }
                    p = e;
                    Tok::Field(src[s..e].to_string())
                }
                b'.' if !(p + 1 < b.len() && b[p + 1].is_ascii_digit()) => {
                    p += 1;
                    Tok::Dot
                }
                b'0'..=b'9' | b'-' | b'+' | b'.' => {
                    let s = p;
                    p += 1;
                    while p < b.len()
                        && (b[p].is_ascii_alphanumeric()
                            || b[p] == b'.'
                            || b[p] == b'_'
                            || ((b[p] == b'-' || b[p] == b'+')
                                && matches!(b[p - 1], b'e' | b'E' | b'p' | b'P')))
                    {
                        p += 1;
                    }
                    Tok::Num(src[s..p].to_string())
                }
                c if c == b'_' || c.is_ascii_alphabetic() => {
                    let s = p;
                    while p < b.len() && (b[p] == b'_' || b[p].is_ascii_alphanumeric()) {
                        p += 1;
                    }
                    Tok::Ident(src[s..p].to_string())
                }
                _ => {
                    let ch = src[p..].chars().next().unwrap_or('?');
                    return Err(err(line, &format!("unexpected {ch:?} in command")));
                }
            };
            toks.push(Token { tok, spaced });
        }
        items.push(Item::Action { line, toks });
        pos = p;
    }
    Ok(items)
}

// ---- parse tree ----

#[derive(Clone, Debug)]
enum Operand {
    Func(String),
    Dot(Vec<String>),
    Var(String, Vec<String>),
    Lit(Value),
    Sub(Box<Pipeline>, Vec<String>),
}

#[derive(Clone, Debug)]
struct Pipeline {
    line: usize,
    decl: Vec<String>,
    assign: bool,
    cmds: Vec<Vec<Operand>>,
}

#[derive(Clone, Debug)]
enum Node {
    Text(String),
    Action(Pipeline),
    If(Pipeline, Vec<Node>, Vec<Node>),
    Range(Pipeline, Vec<Node>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
}

/// A parsed template.
#[derive(Clone, Debug)]
pub struct Template {
    name: String,
    root: Vec<Node>,
}

/// How a list of nodes ended.
#[allow(clippy::enum_variant_names)]
enum End {
    Eof,
    End(usize),
    Else(usize, Vec<Token>),
}

struct Parser<'a> {
    name: &'a str,
    items: std::vec::IntoIter<Item>,
    /// Variables in scope (Go checks them when parsing).
    vars: Vec<String>,
}

/// Variables every rule template has (Prometheus prepends their definitions).
const PREDEFINED: &[&str] = &["", "labels", "externalLabels", "externalURL", "value"];

impl Parser<'_> {
    fn err(&self, line: usize, msg: impl Into<String>) -> TemplateError {
        TemplateError {
            name: self.name.to_string(),
            line,
            msg: msg.into(),
        }
    }

    fn list(&mut self) -> Result<(Vec<Node>, End), TemplateError> {
        let mut nodes = Vec::new();
        while let Some(item) = self.items.next() {
            let (line, toks) = match item {
                Item::Text(t) => {
                    nodes.push(Node::Text(t));
                    continue;
                }
                Item::Action { line, toks } => (line, toks),
            };
            let kw = match toks.first().map(|t| &t.tok) {
                Some(Tok::Ident(s)) => s.as_str(),
                None => return Err(self.err(line, "missing value for command")),
                _ => "",
            };
            match kw {
                "end" => {
                    if toks.len() > 1 {
                        return Err(self.err(line, "unexpected token in end"));
                    }
                    return Ok((nodes, End::End(line)));
                }
                "else" => return Ok((nodes, End::Else(line, toks[1..].to_vec()))),
                "if" | "range" | "with" => {
                    let node = self.control(kw, line, &toks[1..])?;
                    nodes.push(node);
                }
                "define" | "template" | "block" | "break" | "continue" => {
                    return Err(self.err(line, format!("{{{{{kw}}}}} is not supported")));
                }
                _ => nodes.push(Node::Action(self.pipeline(line, &toks, true)?)),
            }
        }
        Ok((nodes, End::Eof))
    }

    fn control(&mut self, kw: &str, line: usize, toks: &[Token]) -> Result<Node, TemplateError> {
        let mark = self.vars.len();
        let r = self.control_scoped(kw, line, toks);
        self.vars.truncate(mark);
        r
    }

    fn control_scoped(
        &mut self,
        kw: &str,
        line: usize,
        toks: &[Token],
    ) -> Result<Node, TemplateError> {
        let pipe = self.pipeline(line, toks, true)?;
        if pipe.cmds.is_empty() {
            return Err(self.err(line, format!("missing value for {kw}")));
        }
        let (body, end) = self.list()?;
        let els = match end {
            End::Eof => return Err(self.err(line, "unexpected EOF")),
            End::End(_) => Vec::new(),
            End::Else(eline, etoks) => {
                let chained = match etoks.first().map(|t| &t.tok) {
                    Some(Tok::Ident(k)) if k == "if" || k == "with" => Some(k.clone()),
                    Some(_) => return Err(self.err(eline, "unexpected token in else")),
                    None => None,
                };
                match chained {
                    // `{{else if x}}...{{end}}` is `{{else}}{{if x}}...{{end}}{{end}}`: one `end`.
                    Some(k) => vec![self.control(&k, eline, &etoks[1..])?],
                    None => {
                        let (els, end) = self.list()?;
                        match end {
                            End::End(_) => els,
                            End::Eof => return Err(self.err(line, "unexpected EOF")),
                            End::Else(l, _) => {
                                return Err(self.err(l, "expected end; found {{else}}"))
                            }
                        }
                    }
                }
            }
        };
        Ok(match kw {
            "if" => Node::If(pipe, body, els),
            "range" => Node::Range(pipe, body, els),
            _ => Node::With(pipe, body, els),
        })
    }

    fn pipeline(
        &mut self,
        line: usize,
        toks: &[Token],
        top: bool,
    ) -> Result<Pipeline, TemplateError> {
        let mut i = 0;
        let mut decl = Vec::new();
        let mut assign = false;
        // Declarations: `$x :=`, `$i, $v :=`, `$x =`.
        let mut j = 0;
        let mut vars = Vec::new();
        while let Some(Token {
            tok: Tok::Var(v), ..
        }) = toks.get(j)
        {
            vars.push(v.clone());
            j += 1;
            match toks.get(j).map(|t| &t.tok) {
                Some(Tok::Comma) if vars.len() < 2 => j += 1,
                Some(Tok::Declare) | Some(Tok::Assign) => {
                    assign = toks[j].tok == Tok::Assign;
                    decl = std::mem::take(&mut vars);
                    i = j + 1;
                    break;
                }
                _ => break,
            }
        }
        if !top && !decl.is_empty() {
            return Err(self.err(line, "variable declaration in parenthesized pipeline"));
        }
        if assign {
            for v in &decl {
                if !self.vars.contains(v) {
                    return Err(self.err(line, format!("undefined variable \"${v}\"")));
                }
            }
        }
        let mut cmds = Vec::new();
        let mut cmd: Vec<Operand> = Vec::new();
        while i < toks.len() {
            match &toks[i].tok {
                Tok::Pipe => {
                    if cmd.is_empty() {
                        return Err(self.err(line, "missing command"));
                    }
                    cmds.push(std::mem::take(&mut cmd));
                    i += 1;
                    continue;
                }
                Tok::RParen => return Err(self.err(line, "unexpected right paren")),
                Tok::Declare | Tok::Assign | Tok::Comma => {
                    return Err(self.err(line, "unexpected token in operand"))
                }
                _ => {}
            }
            let (op, next) = self.operand(line, toks, i)?;
            cmd.push(op);
            i = next;
        }
        if !cmd.is_empty() {
            cmds.push(cmd);
        } else if !cmds.is_empty() {
            return Err(self.err(line, "missing command"));
        }
        if cmds.is_empty() && !decl.is_empty() {
            return Err(self.err(line, "missing value for command"));
        }
        if !assign {
            self.vars.extend(decl.iter().cloned());
        }
        Ok(Pipeline {
            line,
            decl,
            assign,
            cmds,
        })
    }

    /// One operand starting at `i`, with any adjacent field chain; returns the next index.
    fn operand(
        &mut self,
        line: usize,
        toks: &[Token],
        mut i: usize,
    ) -> Result<(Operand, usize), TemplateError> {
        let mut chain = Vec::new();
        let base = match &toks[i].tok {
            Tok::Ident(s) => match s.as_str() {
                "true" => Operand::Lit(Value::Bool(true)),
                "false" => Operand::Lit(Value::Bool(false)),
                "nil" => Operand::Lit(Value::Nil),
                s if funcs::exists(s) => Operand::Func(s.to_string()),
                s => return Err(self.err(line, format!("function {s:?} not defined"))),
            },
            Tok::Field(f) => {
                chain.push(f.clone());
                Operand::Dot(Vec::new())
            }
            Tok::Dot => Operand::Dot(Vec::new()),
            Tok::Var(v) => {
                if !self.vars.contains(v) {
                    return Err(self.err(line, format!("undefined variable \"${v}\"")));
                }
                Operand::Var(v.clone(), Vec::new())
            }
            Tok::Str(s) => Operand::Lit(Value::Str(s.clone())),
            Tok::Char(c) => Operand::Lit(Value::Int(*c as i64)),
            Tok::Num(n) => Operand::Lit(
                parse_number(n)
                    .ok_or_else(|| self.err(line, format!("bad number syntax: {n:?}")))?,
            ),
            Tok::LParen => {
                let mut depth = 0;
                let mut j = i;
                loop {
                    match toks.get(j).map(|t| &t.tok) {
                        Some(Tok::LParen) => depth += 1,
                        Some(Tok::RParen) => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        Some(_) => {}
                        None => return Err(self.err(line, "unclosed left paren")),
                    }
                    j += 1;
                }
                let inner = self.pipeline(line, &toks[i + 1..j], false)?;
                if inner.cmds.is_empty() {
                    return Err(self.err(line, "missing value for parenthesized pipeline"));
                }
                i = j;
                Operand::Sub(Box::new(inner), Vec::new())
            }
            t => return Err(self.err(line, format!("unexpected {t:?} in operand"))),
        };
        i += 1;
        while let Some(Token {
            tok: Tok::Field(f),
            spaced: false,
        }) = toks.get(i)
        {
            chain.push(f.clone());
            i += 1;
        }
        let op = match base {
            Operand::Dot(_) => Operand::Dot(chain),
            Operand::Var(v, _) => Operand::Var(v, chain),
            Operand::Sub(p, _) => Operand::Sub(p, chain),
            other if chain.is_empty() => other,
            _ => return Err(self.err(line, "unexpected . after term")),
        };
        Ok((op, i))
    }
}

fn parse_number(n: &str) -> Option<Value> {
    let clean = n.replace('_', "");
    let (neg, body) = match clean.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, clean.strip_prefix('+').unwrap_or(&clean)),
    };
    let sign = if neg { -1 } else { 1 };
    if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        return i64::from_str_radix(h, 16)
            .ok()
            .map(|v| Value::Int(sign * v));
    }
    if let Ok(v) = body.parse::<i64>() {
        return Some(Value::Int(sign * v));
    }
    body.parse::<f64>()
        .ok()
        .filter(|_| {
            body.bytes()
                .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
        })
        .map(|v| Value::Float(sign as f64 * v))
}

impl Template {
    /// Parses `text`; unknown functions and malformed actions are errors.
    pub fn parse(name: &str, text: &str) -> Result<Template, TemplateError> {
        let items = lex(name, text)?;
        let mut p = Parser {
            name,
            items: items.into_iter(),
            vars: PREDEFINED.iter().map(|s| s.to_string()).collect(),
        };
        let (root, end) = p.list()?;
        match end {
            End::Eof => Ok(Template {
                name: name.to_string(),
                root,
            }),
            End::End(l) => Err(p.err(l, "unexpected {{end}}")),
            End::Else(l, _) => Err(p.err(l, "unexpected {{else}}")),
        }
    }

    /// Expands the template with rule data: `$labels`, `$externalLabels`, `$externalURL`, `$value`.
    pub fn expand(&self, data: &TemplateData, ctx: &ExecContext) -> Result<String, TemplateError> {
        let labels = Value::from_labels(&data.labels);
        let ext = Value::from_labels(&data.external_labels);
        let dot = Value::Struct(vec![
            ("Labels", labels.clone()),
            ("ExternalLabels", ext.clone()),
            ("ExternalURL", Value::Str(data.external_url.clone())),
            ("Value", Value::Float(data.value)),
        ]);
        let vars = vec![
            (String::new(), dot.clone()),
            ("labels".to_string(), labels),
            ("externalLabels".to_string(), ext),
            (
                "externalURL".to_string(),
                Value::Str(data.external_url.clone()),
            ),
            ("value".to_string(), Value::Float(data.value)),
        ];
        self.execute(dot, vars, ctx)
    }

    /// Expands with an arbitrary dot and variables (`$` is bound to `dot`).
    fn execute(
        &self,
        dot: Value,
        vars: Vec<(String, Value)>,
        ctx: &ExecContext,
    ) -> Result<String, TemplateError> {
        let mut ex = Exec {
            name: &self.name,
            ctx,
            vars,
            out: String::new(),
        };
        ex.walk(&self.root, &dot)?;
        Ok(ex.out)
    }
}

// ---- execution ----

struct Exec<'a> {
    name: &'a str,
    ctx: &'a ExecContext,
    vars: Vec<(String, Value)>,
    out: String,
}

fn field(v: &Value, name: &str) -> Result<Value, String> {
    match v {
        Value::Map(m) => Ok(m.get(name).cloned().unwrap_or(Value::Str(String::new()))),
        Value::Struct(fs) => fs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| format!("can't evaluate field {name} in type {}", v.type_name())),
        Value::Nil => Err(format!("nil pointer evaluating <nil>.{name}")),
        other => Err(format!(
            "can't evaluate field {name} in type {}",
            other.type_name()
        )),
    }
}

impl Exec<'_> {
    fn err(&self, line: usize, msg: impl Into<String>) -> TemplateError {
        TemplateError {
            name: self.name.to_string(),
            line,
            msg: format!("executing {:?}: {}", self.name, msg.into()),
        }
    }

    fn walk(&mut self, nodes: &[Node], dot: &Value) -> Result<(), TemplateError> {
        for n in nodes {
            match n {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipeline(p, dot)?;
                    if p.decl.is_empty() {
                        self.print(&v);
                    }
                }
                Node::If(p, body, els) => {
                    let mark = self.vars.len();
                    let v = self.pipeline(p, dot)?;
                    if v.truthy() {
                        self.walk(body, dot)?;
                    } else {
                        self.walk(els, dot)?;
                    }
                    self.vars.truncate(mark);
                }
                Node::With(p, body, els) => {
                    let mark = self.vars.len();
                    let v = self.pipeline(p, dot)?;
                    if v.truthy() {
                        self.walk(body, &v)?;
                    } else {
                        self.walk(els, dot)?;
                    }
                    self.vars.truncate(mark);
                }
                Node::Range(p, body, els) => {
                    let mark = self.vars.len();
                    // Evaluate without declaring: range binds its variables per element.
                    let mut undecl = p.clone();
                    undecl.decl.clear();
                    let v = self.pipeline(&undecl, dot)?;
                    let elems: Vec<(Value, Value)> = match v {
                        Value::List(l) => l
                            .into_iter()
                            .enumerate()
                            .map(|(i, v)| (Value::Int(i as i64), v))
                            .collect(),
                        Value::Map(m) => m.into_iter().map(|(k, v)| (Value::Str(k), v)).collect(),
                        Value::Int(n) => (0..n.max(0))
                            .map(|i| (Value::Int(i), Value::Int(i)))
                            .collect(),
                        Value::Nil => Vec::new(),
                        other => {
                            return Err(
                                self.err(p.line, format!("range can't iterate over {other}"))
                            )
                        }
                    };
                    if elems.is_empty() {
                        self.walk(els, dot)?;
                    }
                    for (k, e) in elems {
                        let inner = self.vars.len();
                        match p.decl.as_slice() {
                            [v] => self.vars.push((v.clone(), e.clone())),
                            [i, v] => {
                                self.vars.push((i.clone(), k));
                                self.vars.push((v.clone(), e.clone()));
                            }
                            _ => {}
                        }
                        self.walk(body, &e)?;
                        self.vars.truncate(inner);
                    }
                    self.vars.truncate(mark);
                }
            }
        }
        Ok(())
    }

    fn print(&mut self, v: &Value) {
        match v {
            Value::Nil => self.out.push_str("<no value>"),
            v => {
                use fmt::Write;
                let _ = write!(self.out, "{v}");
            }
        }
    }

    fn var(&self, line: usize, name: &str) -> Result<Value, TemplateError> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| self.err(line, format!("undefined variable: ${name}")))
    }

    fn pipeline(&mut self, p: &Pipeline, dot: &Value) -> Result<Value, TemplateError> {
        let mut prev: Option<Value> = None;
        for cmd in &p.cmds {
            prev = Some(self.command(p.line, cmd, dot, prev)?);
        }
        let v = prev.unwrap_or(Value::Nil);
        if p.assign {
            for name in &p.decl {
                let line = p.line;
                match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = v.clone(),
                    None => return Err(self.err(line, format!("undefined variable: ${name}"))),
                }
            }
        } else if let Some(name) = p.decl.last() {
            self.vars.push((name.clone(), v.clone()));
        }
        Ok(v)
    }

    fn command(
        &mut self,
        line: usize,
        cmd: &[Operand],
        dot: &Value,
        piped: Option<Value>,
    ) -> Result<Value, TemplateError> {
        if let Some(Operand::Func(name)) = cmd.first() {
            let mut args = Vec::with_capacity(cmd.len());
            for op in &cmd[1..] {
                args.push(self.operand(line, op, dot)?);
            }
            if let Some(p) = piped {
                args.push(p);
            }
            return funcs::call(name, args, self.ctx)
                .map_err(|e| self.err(line, format!("error calling {name}: {e}")));
        }
        if cmd.len() > 1 || piped.is_some() {
            return Err(self.err(line, "can't give argument to non-function"));
        }
        match cmd.first() {
            Some(op) => self.operand(line, op, dot),
            None => Ok(Value::Nil),
        }
    }

    fn operand(&mut self, line: usize, op: &Operand, dot: &Value) -> Result<Value, TemplateError> {
        let (mut v, chain) = match op {
            Operand::Func(name) => {
                return funcs::call(name, Vec::new(), self.ctx)
                    .map_err(|e| self.err(line, format!("error calling {name}: {e}")))
            }
            Operand::Lit(v) => return Ok(v.clone()),
            Operand::Dot(chain) => (dot.clone(), chain),
            Operand::Var(name, chain) => (self.var(line, name)?, chain),
            Operand::Sub(p, chain) => {
                let mark = self.vars.len();
                let v = self.pipeline(p, dot)?;
                self.vars.truncate(mark);
                (v, chain)
            }
        };
        for f in chain {
            v = field(&v, f).map_err(|e| self.err(line, e))?;
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests;
