//! A hand-written PromQL parser following Prometheus's grammar (`promql/parser/generated_parser.y`):
//! precedence `or` < `and`/`unless` < comparisons < `+ -` < `* / % atan2` < `^` (right-associative),
//! unary minus binding like `*`, postfix `[range]`, `[range:step]`, `offset` and `@` binding tightest.
//! Errors carry `line:col` like Prometheus (`1:8: parse error: unexpected ...`). Nesting is bounded so
//! that hostile input cannot overflow the stack.

use std::fmt;

use super::ast::*;
use super::functions::{lookup, FuncDef};
use super::lexer::{lex, Tok, Token};
use crate::model::{MatchType, Matcher, METRIC_NAME};

/// Deepest nesting of sub-expressions accepted; real queries stay far below, and it keeps the
/// parser's, the evaluator's and the destructor's recursion within a 2 MiB thread stack.
pub const MAX_DEPTH: usize = 200;

/// A parse (or type-check) error at a position in the query.
#[derive(Clone, Debug, PartialEq)]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub col: usize,
    /// The message without position.
    pub msg: String,
}

impl ParseError {
    pub(crate) fn at(input: &str, pos: usize, msg: String) -> ParseError {
        let pos = pos.min(input.len());
        let before = input.get(..pos).unwrap_or(input);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let col = before[line_start..].chars().count() + 1;
        ParseError { line, col, msg }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: parse error: {}", self.line, self.col, self.msg)
    }
}

impl std::error::Error for ParseError {}

pub(crate) fn is_keyword(l: &str) -> bool {
    matches!(
        l,
        "and"
            | "or"
            | "unless"
            | "atan2"
            | "by"
            | "without"
            | "on"
            | "ignoring"
            | "group_left"
            | "group_right"
            | "bool"
            | "offset"
    )
}

pub(crate) fn aggregate_op(l: &str) -> Option<AggOp> {
    Some(match l {
        "sum" => AggOp::Sum,
        "min" => AggOp::Min,
        "max" => AggOp::Max,
        "avg" => AggOp::Avg,
        "group" => AggOp::Group,
        "stddev" => AggOp::Stddev,
        "stdvar" => AggOp::Stdvar,
        "count" => AggOp::Count,
        "count_values" => AggOp::CountValues,
        "topk" => AggOp::Topk,
        "bottomk" => AggOp::Bottomk,
        "quantile" => AggOp::Quantile,
        "limitk" => AggOp::Limitk,
        "limit_ratio" => AggOp::LimitRatio,
        _ => return None,
    })
}

/// Parses a PromQL expression.
pub fn parse(input: &str) -> Result<Expr, ParseError> {
    let toks = lex(input)?;
    let mut p = Parser {
        input,
        toks,
        i: 0,
        depth: 0,
        allow_empty_selector: false,
    };
    if matches!(p.peek(), Tok::Eof) {
        return Err(ParseError::at(
            input,
            0,
            "no expression found in input".into(),
        ));
    }
    let e = p.expr(0)?;
    if !matches!(p.peek(), Tok::Eof) {
        return Err(p.unexpected(""));
    }
    Ok(e)
}

struct Parser<'a> {
    input: &'a str,
    toks: Vec<Token>,
    i: usize,
    depth: usize,
    /// The data-label selector of `info()` may match the empty string.
    allow_empty_selector: bool,
}

/// A parsed duration: fixed, or depending on the query.
enum Dur {
    Fixed(i64),
    Expr(DurExpr),
}

impl Dur {
    fn split(self) -> (i64, Option<DurExpr>) {
        match self {
            Dur::Fixed(ms) => (ms, None),
            Dur::Expr(e) => (0, Some(e)),
        }
    }
}

struct Mods {
    return_bool: bool,
    matching: Option<VectorMatching>,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> &Tok {
        &self.toks[self.i.min(self.toks.len() - 1)].tok
    }
    fn peek_at(&self, n: usize) -> &Tok {
        &self.toks[(self.i + n).min(self.toks.len() - 1)].tok
    }
    fn pos(&self) -> usize {
        self.toks[self.i.min(self.toks.len() - 1)].pos
    }
    fn next(&mut self) -> Token {
        let t = self.toks[self.i.min(self.toks.len() - 1)].clone();
        if self.i < self.toks.len() - 1 {
            self.i += 1;
        }
        t
    }
    fn err(&self, pos: usize, msg: impl Into<String>) -> ParseError {
        ParseError::at(self.input, pos, msg.into())
    }
    fn unexpected(&self, context: &str) -> ParseError {
        let t = self.peek();
        let mut msg = format!("unexpected {}", t.describe());
        if !context.is_empty() {
            msg.push_str(&format!(" in {context}"));
        }
        self.err(self.pos(), msg)
    }
    fn expect(&mut self, t: Tok, context: &str) -> Result<Token, ParseError> {
        if *self.peek() == t {
            Ok(self.next())
        } else {
            let mut e = self.unexpected(context);
            e.msg.push_str(&format!(", expected {}", t.describe()));
            Err(e)
        }
    }
    fn peek_word(&self) -> Option<String> {
        match self.peek() {
            Tok::Ident(s) => Some(s.to_ascii_lowercase()),
            _ => None,
        }
    }

    fn binop(&self) -> Option<BinOp> {
        Some(match self.peek() {
            Tok::Add => BinOp::Add,
            Tok::Sub => BinOp::Sub,
            Tok::Mul => BinOp::Mul,
            Tok::Div => BinOp::Div,
            Tok::Mod => BinOp::Mod,
            Tok::Pow => BinOp::Pow,
            Tok::Eql => BinOp::Eql,
            Tok::Neq => BinOp::Neq,
            Tok::Gtr => BinOp::Gtr,
            Tok::Gte => BinOp::Gte,
            Tok::Lss => BinOp::Lss,
            Tok::Lte => BinOp::Lte,
            Tok::Ident(s) => match s.to_ascii_lowercase().as_str() {
                "and" => BinOp::And,
                "or" => BinOp::Or,
                "unless" => BinOp::Unless,
                "atan2" => BinOp::Atan2,
                _ => return None,
            },
            _ => return None,
        })
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(
                self.pos(),
                format!("expression nested too deeply (more than {MAX_DEPTH} levels)"),
            ));
        }
        Ok(())
    }

    fn expr(&mut self, min_prec: u8) -> Result<Expr, ParseError> {
        self.enter()?;
        let mut lhs = self.unary()?;
        let mut chain = 0;
        while let Some(op) = self.binop() {
            let prec = op.precedence();
            if prec < min_prec {
                break;
            }
            let op_pos = self.pos();
            self.next();
            let mods = self.bin_modifiers(op)?;
            if matches!(self.peek(), Tok::Eof) {
                return Err(self.err(self.pos(), "unexpected end of input"));
            }
            let next_min = if op == BinOp::Pow { prec } else { prec + 1 };
            let rhs = self.expr(next_min)?;
            lhs = self.binary(op, op_pos, lhs, rhs, mods)?;
            // A long chain of binary operators nests as deeply as parentheses do.
            self.enter()?;
            chain += 1;
        }
        self.depth -= 1 + chain;
        Ok(lhs)
    }

    fn bin_modifiers(&mut self, op: BinOp) -> Result<Mods, ParseError> {
        let mut m = Mods {
            return_bool: false,
            matching: None,
        };
        if self.peek_word().as_deref() == Some("bool") {
            let p = self.pos();
            self.next();
            if !op.is_comparison() {
                return Err(self.err(p, "bool modifier can only be used on comparison operators"));
            }
            m.return_bool = true;
        }
        let mut vm = VectorMatching {
            card: if op.is_set() {
                Card::ManyToMany
            } else {
                Card::OneToOne
            },
            labels: vec![],
            on: false,
            explicit: false,
            include: vec![],
            fill_left: None,
            fill_right: None,
        };
        let mut any = false;
        if let Some(w) = self.peek_word() {
            if w == "on" || w == "ignoring" {
                self.next();
                vm.on = w == "on";
                vm.explicit = true;
                vm.labels = self.label_list()?;
                any = true;
            }
        }
        if let Some(w) = self.peek_word() {
            if w == "group_left" || w == "group_right" {
                let p = self.pos();
                self.next();
                if op.is_set() {
                    return Err(self.err(
                        p,
                        format!("no grouping allowed for \"{}\" operation", op.as_str()),
                    ));
                }
                vm.card = if w == "group_left" {
                    Card::ManyToOne
                } else {
                    Card::OneToMany
                };
                if matches!(self.peek(), Tok::LParen) {
                    vm.include = self.label_list()?;
                }
                any = true;
            }
        }
        // fill(v), fill_left(v), fill_right(v) (Prometheus 3.10); `fill` alone is a metric name.
        while let Some(w) = self.peek_word() {
            if !(w == "fill" || w == "fill_left" || w == "fill_right")
                || !matches!(self.peek_at(1), Tok::LParen)
            {
                break;
            }
            let p = self.pos();
            if op.is_set() {
                return Err(self.err(
                    p,
                    format!(
                        "fill modifiers are not allowed for \"{}\" operation",
                        op.as_str()
                    ),
                ));
            }
            self.next();
            self.next();
            let neg = match self.peek() {
                Tok::Sub => {
                    self.next();
                    true
                }
                Tok::Add => {
                    self.next();
                    false
                }
                _ => false,
            };
            let v = match self.peek().clone() {
                Tok::Number(v) => v,
                _ => {
                    let mut e = self.unexpected("fill modifier");
                    e.msg.push_str(", expected number");
                    return Err(e);
                }
            };
            self.next();
            self.expect(Tok::RParen, "fill modifier")?;
            let v = if neg { -v } else { v };
            if w != "fill_right" {
                vm.fill_left = Some(v);
            }
            if w != "fill_left" {
                vm.fill_right = Some(v);
            }
            any = true;
        }
        let _ = any;
        m.matching = Some(vm);
        Ok(m)
    }

    fn label_list(&mut self) -> Result<Vec<String>, ParseError> {
        self.expect(Tok::LParen, "grouping opts")?;
        let mut out = Vec::new();
        loop {
            match self.peek().clone() {
                Tok::RParen => {
                    self.next();
                    return Ok(out);
                }
                Tok::Ident(s) => {
                    if s.contains(':') {
                        return Err(self.unexpected("grouping opts"));
                    }
                    self.next();
                    out.push(s);
                }
                Tok::Str(s) => {
                    self.next();
                    out.push(s);
                }
                _ => {
                    let mut e = self.unexpected("grouping opts");
                    e.msg.push_str(", expected label");
                    return Err(e);
                }
            }
            match self.peek() {
                Tok::Comma => {
                    self.next();
                }
                Tok::RParen => {}
                _ => {
                    let mut e = self.unexpected("grouping opts");
                    e.msg.push_str(", expected \",\" or \")\"");
                    return Err(e);
                }
            }
        }
    }

    fn binary(
        &self,
        op: BinOp,
        op_pos: usize,
        lhs: Expr,
        rhs: Expr,
        mods: Mods,
    ) -> Result<Expr, ParseError> {
        let lt = lhs.value_type();
        let rt = rhs.value_type();
        let pos = lhs.pos();
        for t in [lt, rt] {
            if t != ValueType::Scalar && t != ValueType::Vector {
                return Err(self.err(
                    pos,
                    "binary expression must contain only scalar and instant vector types",
                ));
            }
        }
        let both_vec = lt == ValueType::Vector && rt == ValueType::Vector;
        if op.is_comparison()
            && !mods.return_bool
            && lt == ValueType::Scalar
            && rt == ValueType::Scalar
        {
            return Err(self.err(pos, "comparisons between scalars must use BOOL modifier"));
        }
        if op.is_set() && (lt == ValueType::Scalar || rt == ValueType::Scalar) {
            return Err(self.err(
                pos,
                format!(
                    "set operator \"{}\" not allowed in binary scalar expression",
                    op.as_str()
                ),
            ));
        }
        let mut matching = mods.matching;
        if let Some(m) = &matching {
            if !both_vec && (m.explicit || m.card == Card::ManyToOne || m.card == Card::OneToMany) {
                return Err(self.err(pos, "vector matching only allowed between instant vectors"));
            }
            if m.on {
                for l in &m.include {
                    if m.labels.contains(l) {
                        return Err(self.err(
                            op_pos,
                            format!(
                                "label {} must not occur in ON and GROUP clause at once",
                                quote(l)
                            ),
                        ));
                    }
                }
            }
        }
        if !both_vec {
            matching = None;
        }
        Ok(Expr::Binary {
            op,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
            matching,
            return_bool: mods.return_bool,
        })
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        match self.peek() {
            Tok::Sub | Tok::Add => {
                let neg = matches!(self.peek(), Tok::Sub);
                let p = self.pos();
                self.next();
                let e = self.expr(BinOp::Pow.precedence())?;
                match e.value_type() {
                    ValueType::Scalar | ValueType::Vector => {}
                    t => {
                        return Err(self.err(p, format!(
                            "unary expression only allowed on expressions of type scalar or instant vector, got {:?}",
                            t.doc_name()
                        )))
                    }
                }
                if !neg {
                    return Ok(e);
                }
                if let Expr::Number(v, _) = e {
                    return Ok(Expr::Number(-v, p));
                }
                Ok(Expr::Neg(Box::new(e), p))
            }
            _ => {
                let e = self.primary()?;
                self.postfix(e)
            }
        }
    }

    /// A duration: a literal, a number of seconds, or (Prometheus 3.x) a duration expression.
    /// `full` allows binary operators (inside brackets); after `offset` only an atom is taken.
    fn duration_value(&mut self, ctx: &str, full: bool) -> Result<Dur, ParseError> {
        let d = if full {
            self.dur_expr(0, ctx)?
        } else {
            match self.peek() {
                Tok::Sub => {
                    self.next();
                    DurExpr::Neg(Box::new(self.dur_primary(ctx)?))
                }
                Tok::Add => {
                    self.next();
                    self.dur_primary(ctx)?
                }
                _ => self.dur_primary(ctx)?,
            }
        };
        if d.is_const() {
            let v = d.eval(0, 0, 0);
            if !v.is_finite() || v.abs() * 1000.0 > (i64::MAX / 2) as f64 {
                return Err(self.err(self.pos(), "duration out of range"));
            }
            return Ok(Dur::Fixed((v * 1000.0).round() as i64));
        }
        Ok(Dur::Expr(d))
    }

    fn dur_expr(&mut self, min_prec: u8, ctx: &str) -> Result<DurExpr, ParseError> {
        self.enter()?;
        let mut lhs = match self.peek() {
            Tok::Sub | Tok::Add => {
                let neg = matches!(self.peek(), Tok::Sub);
                self.next();
                let e = self.dur_expr(BinOp::Pow.precedence(), ctx)?;
                if neg {
                    DurExpr::Neg(Box::new(e))
                } else {
                    e
                }
            }
            _ => self.dur_primary(ctx)?,
        };
        let mut chain = 0;
        loop {
            let op = match self.peek() {
                Tok::Add => BinOp::Add,
                Tok::Sub => BinOp::Sub,
                Tok::Mul => BinOp::Mul,
                Tok::Div => BinOp::Div,
                Tok::Mod => BinOp::Mod,
                Tok::Pow => BinOp::Pow,
                _ => break,
            };
            let prec = op.precedence();
            if prec < min_prec {
                break;
            }
            self.next();
            let rhs = self.dur_expr(if op == BinOp::Pow { prec } else { prec + 1 }, ctx)?;
            lhs = DurExpr::Bin(op, Box::new(lhs), Box::new(rhs));
            self.enter()?;
            chain += 1;
        }
        self.depth -= 1 + chain;
        Ok(lhs)
    }

    fn dur_primary(&mut self, ctx: &str) -> Result<DurExpr, ParseError> {
        match self.peek().clone() {
            Tok::Number(v) => {
                self.next();
                Ok(DurExpr::Const(v))
            }
            Tok::Duration(ms) => {
                self.next();
                Ok(DurExpr::Const(ms as f64 / 1000.0))
            }
            Tok::LParen => {
                self.next();
                let e = self.dur_expr(0, ctx)?;
                self.expect(Tok::RParen, "duration expression")?;
                Ok(DurExpr::Paren(Box::new(e)))
            }
            Tok::Ident(w) if matches!(self.peek_at(1), Tok::LParen) => {
                let l = w.to_ascii_lowercase();
                let zero = match l.as_str() {
                    "step" => Some(DurExpr::Step),
                    "range" => Some(DurExpr::Range),
                    "start" => Some(DurExpr::Start),
                    "end" => Some(DurExpr::End),
                    _ => None,
                };
                if let Some(z) = zero {
                    self.next();
                    self.next();
                    self.expect(Tok::RParen, "duration expression")?;
                    return Ok(z);
                }
                if l == "min_of" || l == "max_of" {
                    self.next();
                    self.next();
                    let a = self.dur_expr(0, ctx)?;
                    self.expect(Tok::Comma, "duration expression")?;
                    let b = self.dur_expr(0, ctx)?;
                    self.expect(Tok::RParen, "duration expression")?;
                    return Ok(DurExpr::MinMax(l == "min_of", Box::new(a), Box::new(b)));
                }
                let mut e = self.unexpected(ctx);
                e.msg.push_str(", expected duration");
                Err(e)
            }
            _ => {
                let mut e = self.unexpected(ctx);
                e.msg.push_str(", expected duration");
                Err(e)
            }
        }
    }

    fn postfix(&mut self, mut e: Expr) -> Result<Expr, ParseError> {
        loop {
            match self.peek().clone() {
                Tok::LBracket => {
                    let p = self.pos();
                    self.next();
                    let range = self.duration_value("subquery or range selector", true)?;
                    let (range, range_expr) = range.split();
                    if matches!(self.peek(), Tok::Colon) {
                        self.next();
                        let (step, step_expr) = if matches!(self.peek(), Tok::RBracket) {
                            (0, None)
                        } else {
                            self.duration_value("subquery selector", true)?.split()
                        };
                        self.expect(Tok::RBracket, "subquery selector")?;
                        if range <= 0 && range_expr.is_none() {
                            return Err(self.err(p, "duration must be greater than 0"));
                        }
                        if e.value_type() != ValueType::Vector {
                            return Err(self.err(
                                e.pos(),
                                format!(
                                    "subquery is only allowed on instant vector, got {} instead",
                                    e.value_type().name()
                                ),
                            ));
                        }
                        if step < 0 {
                            return Err(self.err(p, "step must be greater than 0"));
                        }
                        let durs = (range_expr.is_some() || step_expr.is_some()).then(|| {
                            Box::new(DurSlots {
                                range: range_expr,
                                step: step_expr,
                                offset: None,
                            })
                        });
                        let pos = e.pos();
                        e = Expr::Subquery {
                            expr: Box::new(e),
                            range,
                            step,
                            offset: 0,
                            at: None,
                            pos,
                            durs,
                        };
                    } else {
                        self.expect(Tok::RBracket, "range selector")?;
                        match e {
                            Expr::Vector(mut vs) => {
                                if vs.offset != 0
                                    || vs.at.is_some()
                                    || vs.durs.is_some()
                                    || vs.ext != Ext::None
                                {
                                    return Err(
                                        self.err(p, "no offset modifiers allowed before range")
                                    );
                                }
                                if range <= 0 && range_expr.is_none() {
                                    return Err(self.err(p, "range must be greater than 0"));
                                }
                                if range_expr.is_some() {
                                    vs.durs = Some(Box::new(DurSlots {
                                        range: range_expr,
                                        step: None,
                                        offset: None,
                                    }));
                                }
                                e = Expr::Matrix(vs, range);
                            }
                            _ => {
                                return Err(
                                    self.err(e.pos(), "ranges only allowed for vector selectors")
                                )
                            }
                        }
                    }
                }
                Tok::Ident(w)
                    if (w.eq_ignore_ascii_case("anchored")
                        || w.eq_ignore_ascii_case("smoothed"))
                        && matches!(e, Expr::Vector(_) | Expr::Matrix(..)) =>
                {
                    // Prometheus 3.7 extended range selectors: `foo[5m] anchored`,
                    // `foo[5m] smoothed`, `foo smoothed`.
                    let p = self.pos();
                    let anchored = w.eq_ignore_ascii_case("anchored");
                    let (vs, is_range) = match &mut e {
                        Expr::Vector(vs) => (vs, false),
                        Expr::Matrix(vs, _) => (vs, true),
                        _ => unreachable!("guarded by the match arm"),
                    };
                    if vs.ext != Ext::None {
                        return Err(
                            self.err(p, "anchored or smoothed may not be set multiple times")
                        );
                    }
                    if anchored && !is_range {
                        return Err(self.err(
                            p,
                            "anchored modifier can only be used with range vector selectors",
                        ));
                    }
                    vs.ext = if anchored {
                        Ext::Anchored
                    } else {
                        Ext::Smoothed
                    };
                    self.next();
                }
                Tok::Ident(w) if w.eq_ignore_ascii_case("offset") => {
                    let p = self.pos();
                    self.next();
                    let (d, dexpr) = self.duration_value("offset", false)?.split();
                    let (slot, durs) = match &mut e {
                        Expr::Vector(vs) | Expr::Matrix(vs, _) => (&mut vs.offset, &mut vs.durs),
                        Expr::Subquery { offset, durs, .. } => (offset, durs),
                        _ => {
                            return Err(self.err(p, "offset modifier must be preceded by an instant vector selector or range vector selector or a subquery"))
                        }
                    };
                    if *slot != 0 || durs.as_ref().is_some_and(|d| d.offset.is_some()) {
                        return Err(self.err(p, "offset may not be set multiple times"));
                    }
                    *slot = d;
                    if dexpr.is_some() {
                        durs.get_or_insert_with(Default::default).offset = dexpr;
                    }
                }
                Tok::At => {
                    let p = self.pos();
                    self.next();
                    let at = self.at_value()?;
                    let slot = match &mut e {
                        Expr::Vector(vs) | Expr::Matrix(vs, _) => &mut vs.at,
                        Expr::Subquery { at, .. } => at,
                        _ => {
                            return Err(self.err(p, "@ modifier must be preceded by an instant vector selector or range vector selector or a subquery"))
                        }
                    };
                    if slot.is_some() {
                        return Err(self.err(p, "@ <timestamp> may not be set multiple times"));
                    }
                    *slot = Some(at);
                }
                _ => return Ok(e),
            }
        }
    }

    fn at_value(&mut self) -> Result<At, ParseError> {
        if let Some(w) = self.peek_word() {
            if (w == "start" || w == "end") && matches!(self.peek_at(1), Tok::LParen) {
                self.next();
                self.next();
                self.expect(Tok::RParen, "@ modifier")?;
                return Ok(if w == "start" { At::Start } else { At::End });
            }
        }
        let neg = match self.peek() {
            Tok::Sub => {
                self.next();
                true
            }
            Tok::Add => {
                self.next();
                false
            }
            _ => false,
        };
        let p = self.pos();
        let secs = match self.peek().clone() {
            Tok::Number(f) => f,
            Tok::Duration(ms) => ms as f64 / 1000.0,
            _ => {
                let mut e = self.unexpected("@");
                e.msg.push_str(", expected timestamp");
                return Err(e);
            }
        };
        self.next();
        let secs = if neg { -secs } else { secs };
        if !secs.is_finite() || secs.abs() * 1000.0 > i64::MAX as f64 {
            return Err(self.err(p, format!("timestamp out of bounds for @ modifier: {secs}")));
        }
        Ok(At::Time((secs * 1000.0).round() as i64))
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        let p = self.pos();
        match self.peek().clone() {
            Tok::Number(v) => {
                self.next();
                Ok(Expr::Number(v, p))
            }
            Tok::Duration(ms) => {
                self.next();
                Ok(Expr::Number(ms as f64 / 1000.0, p))
            }
            Tok::Str(s) => {
                self.next();
                Ok(Expr::String(s, p))
            }
            Tok::LParen => {
                self.next();
                self.enter()?;
                let e = self.expr(0)?;
                self.depth -= 1;
                self.expect(Tok::RParen, "paren expression")?;
                Ok(Expr::Paren(Box::new(e), p))
            }
            Tok::LBrace => self.selector(None, p),
            Tok::Ident(name) => {
                let l = name.to_ascii_lowercase();
                if let Some(op) = aggregate_op(&l) {
                    if matches!(self.peek_at(1), Tok::LParen)
                        || matches!(self.peek_at(1), Tok::Ident(w) if w.eq_ignore_ascii_case("by") || w.eq_ignore_ascii_case("without"))
                    {
                        return self.aggregate(op, p);
                    }
                }
                if matches!(self.peek_at(1), Tok::LParen) {
                    let f = lookup(&name).ok_or_else(|| {
                        self.err(p, format!("unknown function with name {}", quote(&name)))
                    })?;
                    self.next();
                    return self.call(f, p);
                }
                if is_keyword(&l) || aggregate_op(&l).is_some() {
                    return Err(self.unexpected(""));
                }
                self.next();
                self.selector(Some(name), p)
            }
            Tok::Eof => Err(self.err(p, "unexpected end of input")),
            _ => Err(self.unexpected("")),
        }
    }

    fn call(&mut self, f: &'static FuncDef, p: usize) -> Result<Expr, ParseError> {
        self.expect(Tok::LParen, "function call")?;
        let mut args = Vec::new();
        if !matches!(self.peek(), Tok::RParen) {
            loop {
                self.enter()?;
                self.allow_empty_selector = f.name == "info" && args.len() == 1;
                let a = self.expr(0);
                self.allow_empty_selector = false;
                args.push(a?);
                self.depth -= 1;
                match self.peek() {
                    Tok::Comma => {
                        self.next();
                        if matches!(self.peek(), Tok::RParen) {
                            break;
                        }
                    }
                    Tok::RParen => break,
                    _ => {
                        let mut e = self.unexpected("function call");
                        if !matches!(self.peek(), Tok::Eof) {
                            e.msg.push_str(", expected \",\" or \")\"");
                        } else {
                            e = self.err(self.pos(), "unclosed left parenthesis");
                        }
                        return Err(e);
                    }
                }
            }
        }
        self.expect(Tok::RParen, "function call")?;
        // argument count, as Prometheus's checkAST: with `variadic != 0` the last type is optional
        let n = args.len();
        if f.variadic == 0 {
            if n != f.args.len() {
                return Err(self.err(
                    p,
                    format!(
                        "expected {} argument(s) in call to {}, got {}",
                        f.args.len(),
                        quote(f.name),
                        n
                    ),
                ));
            }
        } else {
            let min = f.args.len() - 1;
            if n < min {
                return Err(self.err(
                    p,
                    format!(
                        "expected at least {} argument(s) in call to {}, got {}",
                        min,
                        quote(f.name),
                        n
                    ),
                ));
            }
            if f.variadic > 0 && n > min + f.variadic as usize {
                return Err(self.err(
                    p,
                    format!(
                        "expected at most {} argument(s) in call to {}, got {}",
                        min + f.variadic as usize,
                        quote(f.name),
                        n
                    ),
                ));
            }
        }
        for (i, a) in args.iter().enumerate() {
            let want = if i < f.args.len() {
                f.args[i]
            } else {
                *f.args.last().unwrap_or(&ValueType::String)
            };
            let got = a.value_type();
            if got != want {
                return Err(self.err(
                    a.pos(),
                    format!(
                        "expected type {} in call to function {}, got {}",
                        want.doc_name(),
                        quote(f.name),
                        got.doc_name()
                    ),
                ));
            }
        }
        Ok(Expr::Call {
            func: f,
            args,
            pos: p,
        })
    }

    fn aggregate(&mut self, op: AggOp, p: usize) -> Result<Expr, ParseError> {
        self.next();
        let mut grouping = Vec::new();
        let mut without = false;
        let mut has_grouping = false;
        let mut parse_grouping = |s: &mut Self| -> Result<bool, ParseError> {
            if let Some(w) = s.peek_word() {
                if w == "by" || w == "without" {
                    s.next();
                    without = w == "without";
                    grouping = s.label_list()?;
                    has_grouping = true;
                    return Ok(true);
                }
            }
            Ok(false)
        };
        let before = parse_grouping(self)?;
        self.expect(Tok::LParen, "aggregation")?;
        let mut args = Vec::new();
        if !matches!(self.peek(), Tok::RParen) {
            loop {
                self.enter()?;
                args.push(self.expr(0)?);
                self.depth -= 1;
                match self.peek() {
                    Tok::Comma => {
                        self.next();
                        if matches!(self.peek(), Tok::RParen) {
                            break;
                        }
                    }
                    Tok::RParen => break,
                    _ => {
                        let mut e = self.unexpected("aggregation");
                        e.msg.push_str(", expected \",\" or \")\"");
                        return Err(e);
                    }
                }
            }
        }
        self.expect(Tok::RParen, "aggregation")?;
        if !before {
            parse_grouping(self)?;
        }
        let want = if op.has_param() { 2 } else { 1 };
        if args.len() != want {
            return Err(self.err(
                p,
                format!(
                "wrong number of arguments for aggregate expression provided, expected {}, got {}",
                want,
                args.len()
            ),
            ));
        }
        let expr = args.pop().ok_or_else(|| self.err(p, "missing argument"))?;
        let param = args.pop();
        if expr.value_type() != ValueType::Vector {
            return Err(self.err(
                expr.pos(),
                format!(
                    "expected type instant vector in aggregation expression, got {}",
                    expr.value_type().doc_name()
                ),
            ));
        }
        if let Some(pe) = &param {
            let want = if op == AggOp::CountValues {
                ValueType::String
            } else {
                ValueType::Scalar
            };
            if pe.value_type() != want {
                return Err(self.err(
                    pe.pos(),
                    format!(
                        "expected type {} in aggregation parameter, got {}",
                        want.doc_name(),
                        pe.value_type().doc_name()
                    ),
                ));
            }
        }
        Ok(Expr::Aggregate {
            op,
            expr: Box::new(expr),
            param: param.map(Box::new),
            grouping,
            without,
            has_grouping,
            pos: p,
        })
    }

    fn selector(&mut self, name: Option<String>, p: usize) -> Result<Expr, ParseError> {
        let mut matchers: Vec<Matcher> = Vec::new();
        let mut name = name;
        if let Some(n) = &name {
            matchers.push(Matcher::equal(METRIC_NAME, n.clone()));
        }
        if matches!(self.peek(), Tok::LBrace) {
            self.next();
            loop {
                let lp = self.pos();
                let lname = match self.peek().clone() {
                    Tok::RBrace => {
                        self.next();
                        break;
                    }
                    Tok::Ident(s) => {
                        self.next();
                        s
                    }
                    Tok::Str(s) => {
                        self.next();
                        if matches!(self.peek(), Tok::Comma | Tok::RBrace) {
                            // A lone quoted string is the metric name (UTF-8 syntax).
                            if name.is_some() {
                                return Err(self.err(
                                    lp,
                                    format!(
                                        "metric name must not be set twice: {} or {}",
                                        quote(name.as_deref().unwrap_or("")),
                                        quote(&s)
                                    ),
                                ));
                            }
                            matchers.push(Matcher::equal(METRIC_NAME, s.clone()));
                            name = Some(s);
                            if matches!(self.peek(), Tok::Comma) {
                                self.next();
                            }
                            continue;
                        }
                        s
                    }
                    _ => {
                        let mut e = self.unexpected("label matching");
                        e.msg.push_str(", expected identifier or \"}\"");
                        return Err(e);
                    }
                };
                let kind = match self.peek() {
                    Tok::Assign => MatchType::Equal,
                    Tok::Neq => MatchType::NotEqual,
                    Tok::EqlRegex => MatchType::Regex,
                    Tok::NeqRegex => MatchType::NotRegex,
                    _ => {
                        let mut e = self.unexpected("label matching");
                        e.msg.push_str(", expected label matching operator");
                        return Err(e);
                    }
                };
                self.next();
                let vp = self.pos();
                let value = match self.peek().clone() {
                    Tok::Str(s) => {
                        self.next();
                        s
                    }
                    _ => {
                        let mut e = self.unexpected("label matching");
                        e.msg.push_str(", expected string");
                        return Err(e);
                    }
                };
                let m = Matcher::new(kind, lname.clone(), value).map_err(|e| {
                    self.err(
                        vp,
                        format!(
                            "invalid regular expression {}: {}",
                            quote(&e.pattern),
                            e.source
                        ),
                    )
                })?;
                if lname == METRIC_NAME
                    && name.is_some()
                    && kind == MatchType::Equal
                    && matchers.iter().any(|m| m.name == METRIC_NAME)
                {
                    return Err(self.err(
                        lp,
                        format!(
                            "metric name must not be set twice: {} or {}",
                            quote(name.as_deref().unwrap_or("")),
                            quote(&m.value)
                        ),
                    ));
                }
                matchers.push(m);
                match self.peek() {
                    Tok::Comma => {
                        self.next();
                    }
                    Tok::RBrace => {}
                    _ => {
                        let mut e = self.unexpected("label matching");
                        e.msg.push_str(", expected \",\" or \"}\"");
                        return Err(e);
                    }
                }
            }
        }
        if !self.allow_empty_selector && !matchers.iter().any(|m| !m.matches_empty()) {
            return Err(self.err(
                p,
                "vector selector must contain at least one non-empty matcher",
            ));
        }
        Ok(Expr::Vector(VectorSelector {
            ext: Ext::None,
            durs: None,
            name,
            matchers,
            offset: 0,
            at: None,
            pos: p,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_precedence() {
        let cases = [
            ("1 + 2 * 3", "1 + 2 * 3"),
            ("2 ^ 3 ^ 2", "2 ^ 3 ^ 2"),
            ("-2 ^ 2", "-2 ^ 2"),
            (
                "sum by (job) (rate(foo[5m]))",
                "sum by (job) (rate(foo[5m]))",
            ),
            (
                "sum(rate(foo[5m])) by (job)",
                "sum by (job) (rate(foo[5m]))",
            ),
            ("foo offset -5m", "foo offset -5m"),
            ("foo @ start()", "foo @ start()"),
            ("foo[1h30m:5m] offset 1m", "foo[1h30m:5m] offset 1m"),
            ("a + on(x) group_left(y) b", "a + on (x) group_left (y) b"),
            ("a > bool 1", "a > bool 1"),
            ("x{a=~'b.*'}", "x{a=~\"b.*\"}"),
            (
                "rate(foo[5m] offset 1m anchored @ 100)",
                "rate(foo[5m] anchored @ 100.000 offset 1m)",
            ),
            (
                "foo offset 1m smoothed @ 2",
                "foo @ 2.000 smoothed offset 1m",
            ),
        ];
        for (q, want) in cases {
            let e = parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
            assert_eq!(e.to_string(), want, "{q}");
        }
    }

    #[test]
    fn errors_have_positions() {
        let cases = [
            ("foo{", "1:5: parse error"),
            ("sum(foo) offset 5m", "1:10: parse error: offset modifier"),
            ("rate(foo)", "1:6: parse error: expected type range vector in call to function \"rate\", got instant vector"),
            ("1 > 2", "1:1: parse error: comparisons between scalars must use BOOL modifier"),
            ("foo bar", "1:5: parse error: unexpected identifier \"bar\""),
            ("nope(x)", "1:1: parse error: unknown function with name \"nope\""),
            ("foo anchored", "1:5: parse error: anchored modifier can only be used with range vector selectors"),
            ("foo[1m] smoothed anchored", "1:18: parse error: anchored or smoothed may not be set multiple times"),
            ("sum(foo) smoothed", "1:10: parse error: unexpected identifier \"smoothed\""),
        ];
        for (q, want) in cases {
            let e = parse(q).expect_err(q).to_string();
            assert!(e.starts_with(want), "{q}: got {e}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let q = "(".repeat(10_000) + "1" + &")".repeat(10_000);
        assert!(parse(&q).is_err());
        let q = "-".repeat(10_000) + "1";
        assert!(parse(&q).is_err());
        let q = "abs(".repeat(10_000) + "x" + &")".repeat(10_000);
        assert!(parse(&q).is_err());
    }
}
