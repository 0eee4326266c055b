//! The PromQL syntax tree and its canonical text form (what `/api/v1/format_query` prints), after
//! Prometheus's `promql/parser/ast.go` and `printer.go`.

use std::fmt;

use crate::model::{MatchType, Matcher, METRIC_NAME};

/// The type of value an expression yields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    /// A single float without labels.
    Scalar,
    /// A string.
    String,
    /// One sample per series.
    Vector,
    /// A range of samples per series.
    Matrix,
}

impl ValueType {
    /// The name Prometheus uses in messages and in the API (`resultType`).
    pub fn name(self) -> &'static str {
        match self {
            ValueType::Scalar => "scalar",
            ValueType::String => "string",
            ValueType::Vector => "vector",
            ValueType::Matrix => "matrix",
        }
    }
    /// The name used in type errors ("instant vector", "range vector").
    pub fn doc_name(self) -> &'static str {
        match self {
            ValueType::Scalar => "scalar",
            ValueType::String => "string",
            ValueType::Vector => "instant vector",
            ValueType::Matrix => "range vector",
        }
    }
}

/// An `@` modifier.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum At {
    /// A fixed time in milliseconds.
    Time(i64),
    /// `@ start()`.
    Start,
    /// `@ end()`.
    End,
}

/// A duration expression (Prometheus 3.x): arithmetic on durations and numbers of seconds, with
/// `step()`, `range()`, `start()`, `end()`, `min_of()` and `max_of()`; resolved per query.
#[derive(Clone, Debug)]
pub enum DurExpr {
    /// A number of seconds (a duration literal is converted).
    Const(f64),
    /// `step()`: the query step.
    Step,
    /// `range()`: end minus start of the query.
    Range,
    /// `start()`.
    Start,
    /// `end()`.
    End,
    /// Unary minus.
    Neg(Box<DurExpr>),
    /// Parentheses.
    Paren(Box<DurExpr>),
    /// Binary arithmetic (`+ - * / % ^`).
    Bin(BinOp, Box<DurExpr>, Box<DurExpr>),
    /// `min_of(a, b)` (true) or `max_of(a, b)` (false).
    MinMax(bool, Box<DurExpr>, Box<DurExpr>),
}

impl DurExpr {
    /// Whether it depends on the query (step, range, start, end).
    pub fn is_const(&self) -> bool {
        match self {
            DurExpr::Const(_) => true,
            DurExpr::Step | DurExpr::Range | DurExpr::Start | DurExpr::End => false,
            DurExpr::Neg(e) | DurExpr::Paren(e) => e.is_const(),
            DurExpr::Bin(_, a, b) | DurExpr::MinMax(_, a, b) => a.is_const() && b.is_const(),
        }
    }

    /// The value in seconds for a query with the given step, start and end (ms).
    pub fn eval(&self, step: i64, start: i64, end: i64) -> f64 {
        match self {
            DurExpr::Const(v) => *v,
            DurExpr::Step => step as f64 / 1000.0,
            DurExpr::Range => (end - start) as f64 / 1000.0,
            DurExpr::Start => start as f64 / 1000.0,
            DurExpr::End => end as f64 / 1000.0,
            DurExpr::Neg(e) => -e.eval(step, start, end),
            DurExpr::Paren(e) => e.eval(step, start, end),
            DurExpr::Bin(op, a, b) => {
                let (x, y) = (a.eval(step, start, end), b.eval(step, start, end));
                match op {
                    BinOp::Add => x + y,
                    BinOp::Sub => x - y,
                    BinOp::Mul => x * y,
                    BinOp::Div => x / y,
                    BinOp::Mod => x % y,
                    BinOp::Pow => x.powf(y),
                    _ => f64::NAN,
                }
            }
            DurExpr::MinMax(min, a, b) => {
                let (x, y) = (a.eval(step, start, end), b.eval(step, start, end));
                if x.is_nan() || y.is_nan() {
                    f64::NAN
                } else if *min {
                    x.min(y)
                } else {
                    x.max(y)
                }
            }
        }
    }
}

impl fmt::Display for DurExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurExpr::Const(v) => {
                let ms = v * 1000.0;
                if ms.fract() == 0.0 && ms > 0.0 && ms < 9.0e15 {
                    f.write_str(&format_duration(ms as i64))
                } else {
                    f.write_str(&format_number(*v))
                }
            }
            DurExpr::Step => f.write_str("step()"),
            DurExpr::Range => f.write_str("range()"),
            DurExpr::Start => f.write_str("start()"),
            DurExpr::End => f.write_str("end()"),
            DurExpr::Neg(e) => write!(f, "-{e}"),
            DurExpr::Paren(e) => write!(f, "({e})"),
            DurExpr::Bin(op, a, b) => write!(f, "{a} {} {b}", op.as_str()),
            DurExpr::MinMax(min, a, b) => {
                write!(f, "{}({a}, {b})", if *min { "min_of" } else { "max_of" })
            }
        }
    }
}

/// Duration expressions of a selector or subquery that depend on the query; resolved into the
/// plain millisecond fields when the query starts.
#[derive(Clone, Debug, Default)]
pub struct DurSlots {
    /// The range (`[...]`).
    pub range: Option<DurExpr>,
    /// The subquery step.
    pub step: Option<DurExpr>,
    /// The offset.
    pub offset: Option<DurExpr>,
}

/// The experimental extended range-selector modifiers of Prometheus 3.7
/// (`promql-extended-range-selectors`): `foo[5m] anchored`, `foo[5m] smoothed`, `foo smoothed`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Ext {
    /// No modifier.
    #[default]
    None,
    /// `anchored`: the window also holds the last sample at or before its start.
    Anchored,
    /// `smoothed`: values at the window edges (or at the step) are interpolated.
    Smoothed,
}

impl Ext {
    /// The keyword, or "" for none.
    pub fn as_str(self) -> &'static str {
        match self {
            Ext::None => "",
            Ext::Anchored => "anchored",
            Ext::Smoothed => "smoothed",
        }
    }
}

/// An instant vector selector (`foo{a="b"} offset 5m @ 100`).
#[derive(Clone, Debug)]
pub struct VectorSelector {
    /// The metric name if written outside the braces.
    pub name: Option<String>,
    /// All matchers, including one for the name.
    pub matchers: Vec<Matcher>,
    /// Offset in ms (positive looks back).
    pub offset: i64,
    /// The `@` modifier.
    pub at: Option<At>,
    /// Byte offset in the query.
    pub pos: usize,
    /// Query-dependent duration expressions (range of a range selector, offset).
    pub durs: Option<Box<DurSlots>>,
    /// `anchored` / `smoothed` (Prometheus 3.7, experimental).
    pub ext: Ext,
}

/// Binary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eql,
    Neq,
    Gtr,
    Lss,
    Gte,
    Lte,
    And,
    Or,
    Unless,
}

impl BinOp {
    /// Text of the operator.
    pub fn as_str(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Pow => "^",
            BinOp::Atan2 => "atan2",
            BinOp::Eql => "==",
            BinOp::Neq => "!=",
            BinOp::Gtr => ">",
            BinOp::Lss => "<",
            BinOp::Gte => ">=",
            BinOp::Lte => "<=",
            BinOp::And => "and",
            BinOp::Or => "or",
            BinOp::Unless => "unless",
        }
    }
    /// Binding strength, higher binds tighter.
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And | BinOp::Unless => 2,
            BinOp::Eql | BinOp::Neq | BinOp::Gtr | BinOp::Lss | BinOp::Gte | BinOp::Lte => 3,
            BinOp::Add | BinOp::Sub => 4,
            BinOp::Mul | BinOp::Div | BinOp::Mod | BinOp::Atan2 => 5,
            BinOp::Pow => 6,
        }
    }
    /// Whether this is a comparison operator.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eql | BinOp::Neq | BinOp::Gtr | BinOp::Lss | BinOp::Gte | BinOp::Lte
        )
    }
    /// Whether this is a set operator.
    pub fn is_set(self) -> bool {
        matches!(self, BinOp::And | BinOp::Or | BinOp::Unless)
    }
}

/// Cardinality of a vector match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Card {
    /// One-to-one.
    OneToOne,
    /// `group_left`.
    ManyToOne,
    /// `group_right`.
    OneToMany,
    /// Set operators.
    ManyToMany,
}

/// `on`/`ignoring`/`group_*` of a binary expression between vectors.
#[derive(Clone, Debug)]
pub struct VectorMatching {
    /// Cardinality.
    pub card: Card,
    /// Label names of `on(...)` or `ignoring(...)`.
    pub labels: Vec<String>,
    /// `on` (true) or `ignoring` (false).
    pub on: bool,
    /// Whether `on`/`ignoring` was written at all.
    pub explicit: bool,
    /// Extra labels of `group_left(...)`/`group_right(...)`.
    pub include: Vec<String>,
    /// `fill(v)`/`fill_left(v)` (3.x): value for a missing left-hand sample.
    pub fill_left: Option<f64>,
    /// `fill(v)`/`fill_right(v)` (3.x): value for a missing right-hand sample.
    pub fill_right: Option<f64>,
}

/// Aggregation operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum AggOp {
    Sum,
    Min,
    Max,
    Avg,
    Group,
    Stddev,
    Stdvar,
    Count,
    CountValues,
    Topk,
    Bottomk,
    Quantile,
    Limitk,
    LimitRatio,
}

impl AggOp {
    /// Name as written.
    pub fn as_str(self) -> &'static str {
        match self {
            AggOp::Sum => "sum",
            AggOp::Min => "min",
            AggOp::Max => "max",
            AggOp::Avg => "avg",
            AggOp::Group => "group",
            AggOp::Stddev => "stddev",
            AggOp::Stdvar => "stdvar",
            AggOp::Count => "count",
            AggOp::CountValues => "count_values",
            AggOp::Topk => "topk",
            AggOp::Bottomk => "bottomk",
            AggOp::Quantile => "quantile",
            AggOp::Limitk => "limitk",
            AggOp::LimitRatio => "limit_ratio",
        }
    }
    /// Whether it takes a parameter.
    pub fn has_param(self) -> bool {
        matches!(
            self,
            AggOp::CountValues
                | AggOp::Topk
                | AggOp::Bottomk
                | AggOp::Quantile
                | AggOp::Limitk
                | AggOp::LimitRatio
        )
    }
}

/// A PromQL expression.
#[derive(Clone, Debug)]
pub enum Expr {
    /// A number literal.
    Number(f64, usize),
    /// A string literal.
    String(String, usize),
    /// An instant vector selector.
    Vector(VectorSelector),
    /// A range vector selector; offset and `@` live on the inner selector.
    Matrix(VectorSelector, i64),
    /// A subquery.
    Subquery {
        /// The inner expression.
        expr: Box<Expr>,
        /// Range in ms.
        range: i64,
        /// Step in ms; 0 means the default.
        step: i64,
        /// Offset in ms.
        offset: i64,
        /// `@` modifier.
        at: Option<At>,
        /// Byte offset.
        pos: usize,
        /// Query-dependent duration expressions.
        durs: Option<Box<DurSlots>>,
    },
    /// Parentheses (kept for printing and positions).
    Paren(Box<Expr>, usize),
    /// Unary minus (plus is dropped while parsing).
    Neg(Box<Expr>, usize),
    /// A binary expression.
    Binary {
        /// The operator.
        op: BinOp,
        /// Left side.
        lhs: Box<Expr>,
        /// Right side.
        rhs: Box<Expr>,
        /// Vector matching, for vector/vector operations.
        matching: Option<VectorMatching>,
        /// `bool` modifier.
        return_bool: bool,
    },
    /// An aggregation.
    Aggregate {
        /// The operator.
        op: AggOp,
        /// Aggregated expression.
        expr: Box<Expr>,
        /// Parameter (topk's k, quantile's φ, count_values' label).
        param: Option<Box<Expr>>,
        /// Grouping labels.
        grouping: Vec<String>,
        /// `without` (true) or `by` (false).
        without: bool,
        /// Whether a grouping clause was written.
        has_grouping: bool,
        /// Byte offset.
        pos: usize,
    },
    /// A function call.
    Call {
        /// The function.
        func: &'static super::functions::FuncDef,
        /// Arguments.
        args: Vec<Expr>,
        /// Byte offset.
        pos: usize,
    },
}

impl Expr {
    /// The type of the value this expression yields.
    pub fn value_type(&self) -> ValueType {
        match self {
            Expr::Number(..) => ValueType::Scalar,
            Expr::String(..) => ValueType::String,
            Expr::Vector(_) => ValueType::Vector,
            Expr::Matrix(..) | Expr::Subquery { .. } => ValueType::Matrix,
            Expr::Paren(e, _) | Expr::Neg(e, _) => e.value_type(),
            Expr::Binary { lhs, rhs, .. } => {
                if lhs.value_type() == ValueType::Scalar && rhs.value_type() == ValueType::Scalar {
                    ValueType::Scalar
                } else {
                    ValueType::Vector
                }
            }
            Expr::Aggregate { .. } => ValueType::Vector,
            Expr::Call { func, .. } => func.ret,
        }
    }

    /// Byte offset where the expression starts.
    pub fn pos(&self) -> usize {
        match self {
            Expr::Number(_, p) | Expr::String(_, p) | Expr::Paren(_, p) | Expr::Neg(_, p) => *p,
            Expr::Vector(v) | Expr::Matrix(v, _) => v.pos,
            Expr::Subquery { expr, .. } => expr.pos(),
            Expr::Binary { lhs, .. } => lhs.pos(),
            Expr::Aggregate { pos, .. } | Expr::Call { pos, .. } => *pos,
        }
    }
}

/// Formats milliseconds like Prometheus's `model.Duration` (`1h30m`, `0s`).
pub fn format_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut ms = ms;
    if ms < 0 {
        out.push('-');
        ms = -ms;
    }
    let units: [(i64, &str); 7] = [
        (31_536_000_000, "y"),
        (604_800_000, "w"),
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1000, "s"),
        (1, "ms"),
    ];
    for (u, n) in units {
        if ms >= u {
            out.push_str(&format!("{}{}", ms / u, n));
            ms %= u;
        }
    }
    out
}

/// Formats a float like Go's `strconv.FormatFloat(v, 'f', -1, 64)` (used for number literals).
pub fn format_number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

/// Go-style double-quoted string.
pub fn quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                o.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn is_valid_metric_name(s: &str) -> bool {
    let mut it = s.chars();
    matches!(it.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && it.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_valid_label_name(s: &str) -> bool {
    let mut it = s.chars();
    matches!(it.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && it.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn fmt_label_name(s: &str) -> String {
    if is_valid_label_name(s) {
        s.to_string()
    } else {
        quote(s)
    }
}

fn fmt_dur_offset(f: &mut fmt::Formatter<'_>, durs: &Option<Box<DurSlots>>) -> fmt::Result {
    match durs.as_ref().and_then(|d| d.offset.as_ref()) {
        Some(d) => write!(f, " offset {d}"),
        None => Ok(()),
    }
}

fn fmt_ext(f: &mut fmt::Formatter<'_>, ext: Ext) -> fmt::Result {
    match ext {
        Ext::None => Ok(()),
        e => write!(f, " {}", e.as_str()),
    }
}

fn fmt_at(f: &mut fmt::Formatter<'_>, at: &Option<At>) -> fmt::Result {
    match at {
        Some(At::Time(t)) => write!(f, " @ {}.{:03}", t.div_euclid(1000), t.rem_euclid(1000)),
        Some(At::Start) => f.write_str(" @ start()"),
        Some(At::End) => f.write_str(" @ end()"),
        None => Ok(()),
    }
}

fn fmt_at_offset(f: &mut fmt::Formatter<'_>, at: &Option<At>, offset: i64) -> fmt::Result {
    fmt_at(f, at)?;
    fmt_offset(f, offset)
}

fn fmt_offset(f: &mut fmt::Formatter<'_>, offset: i64) -> fmt::Result {
    if offset > 0 {
        write!(f, " offset {}", format_duration(offset))?;
    } else if offset < 0 {
        write!(f, " offset -{}", format_duration(-offset))?;
    }
    Ok(())
}

impl VectorSelector {
    fn fmt_selector(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest: Vec<&Matcher> = Vec::new();
        let mut name_written = false;
        for m in &self.matchers {
            if !name_written
                && m.name == METRIC_NAME
                && m.kind == MatchType::Equal
                && self.name.as_deref() == Some(m.value.as_str())
                && is_valid_metric_name(&m.value)
            {
                name_written = true;
                continue;
            }
            rest.push(m);
        }
        if name_written {
            f.write_str(self.name.as_deref().unwrap_or(""))?;
        }
        if !rest.is_empty() || !name_written {
            f.write_str("{")?;
            for (i, m) in rest.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(
                    f,
                    "{}{}{}",
                    fmt_label_name(&m.name),
                    m.kind,
                    quote(&m.value)
                )?;
            }
            f.write_str("}")?;
        }
        Ok(())
    }
}

fn fmt_grouping(f: &mut fmt::Formatter<'_>, labels: &[String]) -> fmt::Result {
    f.write_str("(")?;
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        f.write_str(&fmt_label_name(l))?;
    }
    f.write_str(")")
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Number(v, _) => f.write_str(&format_number(*v)),
            Expr::String(s, _) => f.write_str(&quote(s)),
            Expr::Vector(v) => {
                // Prometheus prints `foo @ t smoothed offset d`.
                v.fmt_selector(f)?;
                fmt_at(f, &v.at)?;
                fmt_ext(f, v.ext)?;
                fmt_offset(f, v.offset)?;
                fmt_dur_offset(f, &v.durs)
            }
            Expr::Matrix(v, r) => {
                v.fmt_selector(f)?;
                match v.durs.as_ref().and_then(|d| d.range.as_ref()) {
                    Some(d) => write!(f, "[{d}]")?,
                    None => write!(f, "[{}]", format_duration(*r))?,
                }
                // Prometheus prints `foo[5m] anchored @ t offset d`.
                fmt_ext(f, v.ext)?;
                fmt_at_offset(f, &v.at, v.offset)?;
                fmt_dur_offset(f, &v.durs)
            }
            Expr::Subquery {
                expr,
                range,
                step,
                offset,
                at,
                durs,
                ..
            } => {
                let d = durs.as_deref();
                match d.and_then(|d| d.range.as_ref()) {
                    Some(r) => write!(f, "{expr}[{r}:")?,
                    None => write!(f, "{}[{}:", expr, format_duration(*range))?,
                }
                match d.and_then(|d| d.step.as_ref()) {
                    Some(s) => write!(f, "{s}")?,
                    None if *step > 0 => f.write_str(&format_duration(*step))?,
                    None => {}
                }
                f.write_str("]")?;
                fmt_at_offset(f, at, *offset)?;
                fmt_dur_offset(f, durs)
            }
            Expr::Paren(e, _) => write!(f, "({e})"),
            Expr::Neg(e, _) => write!(f, "-{e}"),
            Expr::Binary {
                op,
                lhs,
                rhs,
                matching,
                return_bool,
            } => {
                write!(f, "{} {}", lhs, op.as_str())?;
                if *return_bool {
                    f.write_str(" bool")?;
                }
                if let Some(m) = matching {
                    if m.explicit || (!m.labels.is_empty()) {
                        f.write_str(if m.on { " on " } else { " ignoring " })?;
                        fmt_grouping(f, &m.labels)?;
                    }
                    match (m.fill_left, m.fill_right) {
                        (Some(l), Some(r)) if l.to_bits() == r.to_bits() => {
                            write!(f, " fill({})", format_number(l))?
                        }
                        (l, r) => {
                            if let Some(l) = l {
                                write!(f, " fill_left({})", format_number(l))?;
                            }
                            if let Some(r) = r {
                                write!(f, " fill_right({})", format_number(r))?;
                            }
                        }
                    }
                    match m.card {
                        Card::ManyToOne => {
                            f.write_str(" group_left ")?;
                            fmt_grouping(f, &m.include)?;
                        }
                        Card::OneToMany => {
                            f.write_str(" group_right ")?;
                            fmt_grouping(f, &m.include)?;
                        }
                        _ => {}
                    }
                }
                write!(f, " {rhs}")
            }
            Expr::Aggregate {
                op,
                expr,
                param,
                grouping,
                without,
                has_grouping,
                ..
            } => {
                f.write_str(op.as_str())?;
                if *without {
                    f.write_str(" without ")?;
                    fmt_grouping(f, grouping)?;
                    f.write_str(" ")?;
                } else if *has_grouping && !grouping.is_empty() {
                    f.write_str(" by ")?;
                    fmt_grouping(f, grouping)?;
                    f.write_str(" ")?;
                }
                f.write_str("(")?;
                if let Some(p) = param {
                    write!(f, "{p}, ")?;
                }
                write!(f, "{expr})")
            }
            Expr::Call { func, args, .. } => {
                write!(f, "{}(", func.name)?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
        }
    }
}

impl Expr {
    /// Gives every selector and subquery without an `@` modifier (and not inside a subquery that
    /// has one) the modifier `@ t_ms`. Used to check step invariance, as Prometheus's test harness does.
    pub fn pin_at(&mut self, t_ms: i64) {
        match self {
            Expr::Vector(vs) | Expr::Matrix(vs, _) => {
                if vs.at.is_none() {
                    vs.at = Some(At::Time(t_ms));
                }
            }
            Expr::Subquery { at, .. } => {
                if at.is_none() {
                    *at = Some(At::Time(t_ms));
                }
            }
            Expr::Paren(e, _) | Expr::Neg(e, _) => e.pin_at(t_ms),
            Expr::Binary { lhs, rhs, .. } => {
                lhs.pin_at(t_ms);
                rhs.pin_at(t_ms);
            }
            Expr::Aggregate { expr, param, .. } => {
                expr.pin_at(t_ms);
                if let Some(p) = param {
                    p.pin_at(t_ms);
                }
            }
            Expr::Call { args, .. } => args.iter_mut().for_each(|a| a.pin_at(t_ms)),
            Expr::Number(..) | Expr::String(..) => {}
        }
    }
}

/// Sets a duration slot from a resolved duration expression, checking it like the parser does.
fn resolve_slot(
    e: &Option<DurExpr>,
    slot: &mut i64,
    step: i64,
    start: i64,
    end: i64,
    positive: bool,
) -> Result<(), String> {
    if let Some(d) = e {
        let v = d.eval(step, start, end);
        if !v.is_finite() || v.abs() * 1000.0 > i64::MAX as f64 / 2.0 {
            return Err(format!("duration expression {d} is out of range"));
        }
        let ms = (v * 1000.0).round() as i64;
        if positive && ms <= 0 {
            return Err(format!(
                "duration expression {d} must be greater than 0, got {}",
                format_duration(ms)
            ));
        }
        *slot = ms;
    }
    Ok(())
}

impl Expr {
    /// Whether any duration expression depends on the query.
    pub fn has_dur_exprs(&self) -> bool {
        match self {
            Expr::Vector(vs) | Expr::Matrix(vs, _) => vs.durs.is_some(),
            Expr::Subquery { expr, durs, .. } => durs.is_some() || expr.has_dur_exprs(),
            Expr::Paren(e, _) | Expr::Neg(e, _) => e.has_dur_exprs(),
            Expr::Binary { lhs, rhs, .. } => lhs.has_dur_exprs() || rhs.has_dur_exprs(),
            Expr::Aggregate { expr, param, .. } => {
                expr.has_dur_exprs() || param.as_ref().is_some_and(|p| p.has_dur_exprs())
            }
            Expr::Call { args, .. } => args.iter().any(|a| a.has_dur_exprs()),
            Expr::Number(..) | Expr::String(..) => false,
        }
    }

    /// Replaces query-dependent duration expressions by their values for a query with the given
    /// step (0 for instant queries), start and end.
    pub fn resolve_durations(&mut self, step: i64, start: i64, end: i64) -> Result<(), String> {
        match self {
            Expr::Vector(vs) => {
                if let Some(d) = vs.durs.take() {
                    resolve_slot(&d.offset, &mut vs.offset, step, start, end, false)?;
                }
            }
            Expr::Matrix(vs, r) => {
                if let Some(d) = vs.durs.take() {
                    resolve_slot(&d.offset, &mut vs.offset, step, start, end, false)?;
                    resolve_slot(&d.range, r, step, start, end, true)?;
                }
            }
            Expr::Subquery {
                expr,
                range,
                step: st,
                offset,
                durs,
                ..
            } => {
                if let Some(d) = durs.take() {
                    resolve_slot(&d.offset, offset, step, start, end, false)?;
                    resolve_slot(&d.range, range, step, start, end, true)?;
                    resolve_slot(&d.step, st, step, start, end, true)?;
                }
                expr.resolve_durations(step, start, end)?;
            }
            Expr::Paren(e, _) | Expr::Neg(e, _) => e.resolve_durations(step, start, end)?,
            Expr::Binary { lhs, rhs, .. } => {
                lhs.resolve_durations(step, start, end)?;
                rhs.resolve_durations(step, start, end)?;
            }
            Expr::Aggregate { expr, param, .. } => {
                expr.resolve_durations(step, start, end)?;
                if let Some(p) = param {
                    p.resolve_durations(step, start, end)?;
                }
            }
            Expr::Call { args, .. } => {
                for a in args {
                    a.resolve_durations(step, start, end)?;
                }
            }
            Expr::Number(..) | Expr::String(..) => {}
        }
        Ok(())
    }
}
