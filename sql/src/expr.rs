//! Bound expressions and their evaluation.
//!
//! The binder (`plan.rs`) turns parsed expressions into [`Expr`]s whose column
//! references are positions in the input row and whose types are known, so
//! evaluation does no name lookups. Logic is three-valued: comparisons with
//! NULL yield NULL, `AND`/`OR` follow SQL's truth tables, and a WHERE clause
//! keeps a row only when its predicate is TRUE.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Result, SqlError, sqlstate};
use crate::exec::{self, Cx};
use crate::plan::Node;
use crate::types::{ArithOp, DataType, Value, arithmetic, negate};

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl CmpOp {
    pub fn holds(self, ord: Ordering) -> bool {
        match self {
            CmpOp::Eq => ord == Ordering::Equal,
            CmpOp::NotEq => ord != Ordering::Equal,
            CmpOp::Lt => ord == Ordering::Less,
            CmpOp::LtEq => ord != Ordering::Greater,
            CmpOp::Gt => ord == Ordering::Greater,
            CmpOp::GtEq => ord != Ordering::Less,
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::NotEq => "<>",
            CmpOp::Lt => "<",
            CmpOp::LtEq => "<=",
            CmpOp::Gt => ">",
            CmpOp::GtEq => ">=",
        }
    }

    /// The operator with its operands swapped (`a < b` is `b > a`).
    pub fn flip(self) -> CmpOp {
        match self {
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::LtEq => CmpOp::GtEq,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::GtEq => CmpOp::LtEq,
            other => other,
        }
    }
}

/// Scalar functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func {
    Lower,
    Upper,
    Length,
    Substr,
    Trim,
    Ltrim,
    Rtrim,
    Replace,
    Concat,
    Left,
    Right,
    Repeat,
    Reverse,
    Lpad,
    Rpad,
    Strpos,
    Abs,
    Round,
    Ceil,
    Floor,
    Trunc,
    Sqrt,
    Power,
    Sign,
    Mod,
    Coalesce,
    Nullif,
    Greatest,
    Least,
    Now,
    CurrentDate,
    DatePart,
    DateTrunc,
    // Catalog information functions (see `system`).
    CurrentDatabase,
    CurrentSchema,
    Version,
    /// `pg_get_userbyid(oid)`: the owner's name.
    UserById,
    /// `pg_table_is_visible(oid)` and the like: every relation is on the search path.
    IsVisible,
    /// `pg_encoding_to_char(int)`.
    EncodingName,
    /// `format_type(oid, typmod)`.
    FormatType,
    /// `pg_get_expr(text, oid [, pretty])`: expressions are stored as SQL text.
    ExprText,
    /// `obj_description`, `col_description`, `shobj_description`: Strata
    /// stores no comments; `pg_get_statisticsobjdef_columns`: nor extended
    /// statistics objects.
    Description,
    /// `array_to_string(array, sep)`: Strata has no array values, so only a
    /// NULL array is valid.
    ArrayToString,
    /// `array_upper(array, dim)` and `array_length(array, dim)` (one dimension).
    ArrayUpper,
    /// `cardinality(array)`.
    Cardinality,
    /// `array[index]` (1-based), the element read as the call's type.
    ArrayElement,
    /// `pg_relation_is_publishable(oid)`: Strata has no publications.
    IsPublishable,
}

/// A bound expression.
#[derive(Clone, Debug)]
pub enum Expr {
    Literal(Value),
    /// A column of the input row.
    Column(usize),
    /// A column of an enclosing query's current row (`depth` 1 = the nearest).
    Outer {
        depth: usize,
        index: usize,
    },
    /// A statement parameter (`$1` is 0).
    Param(usize),
    Not(Box<Expr>),
    Negate(Box<Expr>, DataType),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare(CmpOp, Box<Expr>, Box<Expr>),
    Arith(ArithOp, Box<Expr>, Box<Expr>, DataType),
    /// `date ± integer` (days) and `date - date`.
    DateArith {
        op: ArithOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    Concat(Box<Expr>, Box<Expr>),
    IsNull(Box<Expr>, bool),
    IsDistinct(Box<Expr>, Box<Expr>, bool),
    Cast(Box<Expr>, DataType),
    Case {
        operand: Option<Box<Expr>>,
        whens: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
    },
    Like {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        negated: bool,
        case_insensitive: bool,
    },
    InList {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    InSubquery {
        expr: Box<Expr>,
        plan: Arc<Node>,
        negated: bool,
    },
    Exists {
        plan: Arc<Node>,
        negated: bool,
    },
    ScalarSubquery(Arc<Node>),
    Func(Func, Vec<Expr>, DataType),
    /// `expr ~ pattern` and its negated (`!~`) and case-insensitive (`~*`)
    /// forms: a regular-expression match anywhere in the string. A constant
    /// pattern is compiled once, at bind time.
    Regex {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        compiled: Option<Arc<regex_lite::Regex>>,
        negated: bool,
        case_insensitive: bool,
    },
    /// `ARRAY(subquery)`: the subquery's single column as an array, which
    /// Strata represents by PostgreSQL's array text (`{a,b}`).
    ArraySubquery(Arc<Node>),
    /// `expr op ANY (array)` and `expr op ALL (array)` over an array in its
    /// text form; elements are read as `elem`.
    ArrayCompare {
        expr: Box<Expr>,
        array: Box<Expr>,
        op: CmpOp,
        all: bool,
        elem: DataType,
    },
    /// A catalog lookup prepared at bind time (`::regclass`,
    /// `pg_get_indexdef`, ...): `arg`'s value, as text, keys `map`.
    Lookup {
        arg: Box<Expr>,
        map: Arc<HashMap<String, Value>>,
        miss: LookupMiss,
    },
}

/// What an [`Expr::Lookup`] yields for a key its map lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupMiss {
    Null,
    /// The key itself, as text (a `::regclass` of an unknown oid prints the number).
    Echo,
    /// 42P01: the key named a relation that does not exist.
    UndefinedRelation,
}

/// Compiles a PostgreSQL regular expression (the common subset: POSIX
/// extended syntax as `regex_lite` reads it), or fails with 2201B.
pub fn compile_regex(pattern: &str, case_insensitive: bool) -> Result<regex_lite::Regex> {
    regex_lite::RegexBuilder::new(pattern).case_insensitive(case_insensitive).build().map_err(|e| {
        SqlError::new(
            sqlstate::INVALID_REGULAR_EXPRESSION,
            format!("invalid regular expression: {e}"),
        )
    })
}

/// `Some(true)`, `Some(false)` or `None` (NULL) for a boolean value.
pub fn truth(v: &Value) -> Result<Option<bool>> {
    match v {
        Value::Bool(b) => Ok(Some(*b)),
        Value::Null => Ok(None),
        other => Err(SqlError::new(
            sqlstate::DATATYPE_MISMATCH,
            format!("argument must be boolean, not {other:?}"),
        )),
    }
}

fn boolean(b: Option<bool>) -> Value {
    b.map_or(Value::Null, Value::Bool)
}

impl Expr {
    pub fn literal(v: Value) -> Expr {
        Expr::Literal(v)
    }

    /// Whether the expression reads no column of the current row (it may read
    /// parameters and enclosing rows): usable to seek an index.
    pub fn is_row_independent(&self) -> bool {
        match self {
            Expr::Column(_) => false,
            Expr::Literal(_) | Expr::Outer { .. } | Expr::Param(_) => true,
            Expr::InSubquery { .. } | Expr::Exists { .. } | Expr::ScalarSubquery(_) => false,
            Expr::Func(Func::Now | Func::CurrentDate, _, _) => true,
            other => other.children().iter().all(|c| c.is_row_independent()),
        }
    }

    /// The expressions directly inside this one (not inside subquery plans).
    pub(crate) fn children(&self) -> Vec<&Expr> {
        match self {
            Expr::Literal(_) | Expr::Column(_) | Expr::Outer { .. } | Expr::Param(_) => vec![],
            Expr::Not(e) | Expr::Negate(e, _) | Expr::IsNull(e, _) | Expr::Cast(e, _) => vec![e],
            Expr::And(a, b)
            | Expr::Or(a, b)
            | Expr::Compare(_, a, b)
            | Expr::Arith(_, a, b, _)
            | Expr::Concat(a, b) => {
                vec![a, b]
            }
            Expr::DateArith { left, right, .. } => vec![left, right],
            Expr::IsDistinct(a, b, _) => vec![a, b],
            Expr::Case { operand, whens, otherwise } => {
                let mut v: Vec<&Expr> = operand.iter().map(|b| &**b).collect();
                for (w, t) in whens {
                    v.push(w);
                    v.push(t);
                }
                v.extend(otherwise.iter().map(|b| &**b));
                v
            }
            Expr::Like { expr, pattern, .. } => vec![expr, pattern],
            Expr::InList { expr, list, .. } => std::iter::once(&**expr).chain(list).collect(),
            Expr::InSubquery { expr, .. } => vec![expr],
            Expr::Exists { .. } | Expr::ScalarSubquery(_) => vec![],
            Expr::Func(_, args, _) => args.iter().collect(),
            Expr::Regex { expr, pattern, .. } => vec![expr, pattern],
            Expr::Lookup { arg, .. } => vec![arg],
            Expr::ArraySubquery(_) => vec![],
            Expr::ArrayCompare { expr, array, .. } => vec![expr, array],
        }
    }

    /// [`Expr::children`], mutably.
    pub(crate) fn children_mut(&mut self) -> Vec<&mut Expr> {
        match self {
            Expr::Literal(_) | Expr::Column(_) | Expr::Outer { .. } | Expr::Param(_) => vec![],
            Expr::Not(e) | Expr::Negate(e, _) | Expr::IsNull(e, _) | Expr::Cast(e, _) => vec![e],
            Expr::And(a, b)
            | Expr::Or(a, b)
            | Expr::Compare(_, a, b)
            | Expr::Arith(_, a, b, _)
            | Expr::Concat(a, b) => {
                vec![a, b]
            }
            Expr::DateArith { left, right, .. } => vec![left, right],
            Expr::IsDistinct(a, b, _) => vec![a, b],
            Expr::Case { operand, whens, otherwise } => {
                let mut v: Vec<&mut Expr> = operand.iter_mut().map(|b| &mut **b).collect();
                for (w, t) in whens.iter_mut() {
                    v.push(w);
                    v.push(t);
                }
                v.extend(otherwise.iter_mut().map(|b| &mut **b));
                v
            }
            Expr::Like { expr, pattern, .. } => vec![expr, pattern],
            Expr::InList { expr, list, .. } => {
                std::iter::once(&mut **expr).chain(list.iter_mut()).collect()
            }
            Expr::InSubquery { expr, .. } => vec![expr],
            Expr::Exists { .. } | Expr::ScalarSubquery(_) => vec![],
            Expr::Func(_, args, _) => args.iter_mut().collect(),
            Expr::Regex { expr, pattern, .. } => vec![expr, pattern],
            Expr::Lookup { arg, .. } => vec![arg],
            Expr::ArraySubquery(_) => vec![],
            Expr::ArrayCompare { expr, array, .. } => vec![expr, array],
        }
    }

    /// Evaluates against `row`.
    pub fn eval(&self, row: &[Value], cx: &mut Cx<'_>) -> Result<Value> {
        Ok(match self {
            Expr::Literal(v) => v.clone(),
            Expr::Column(i) => row[*i].clone(),
            Expr::Outer { depth, index } => cx.outer_value(*depth, *index)?,
            Expr::Param(i) => cx.param(*i)?,
            Expr::Not(e) => boolean(truth(&e.eval(row, cx)?)?.map(|b| !b)),
            Expr::Negate(e, ty) => negate(&e.eval(row, cx)?, ty)?,
            Expr::And(a, b) => {
                let l = truth(&a.eval(row, cx)?)?;
                if l == Some(false) {
                    return Ok(Value::Bool(false));
                }
                match (l, truth(&b.eval(row, cx)?)?) {
                    (_, Some(false)) => Value::Bool(false),
                    (Some(true), Some(true)) => Value::Bool(true),
                    _ => Value::Null,
                }
            }
            Expr::Or(a, b) => {
                let l = truth(&a.eval(row, cx)?)?;
                if l == Some(true) {
                    return Ok(Value::Bool(true));
                }
                match (l, truth(&b.eval(row, cx)?)?) {
                    (_, Some(true)) => Value::Bool(true),
                    (Some(false), Some(false)) => Value::Bool(false),
                    _ => Value::Null,
                }
            }
            Expr::Compare(op, a, b) => {
                let (l, r) = (a.eval(row, cx)?, b.eval(row, cx)?);
                boolean(l.sql_cmp(&r).map(|o| op.holds(o)))
            }
            Expr::Arith(op, a, b, ty) => arithmetic(*op, &a.eval(row, cx)?, &b.eval(row, cx)?, ty)?,
            Expr::DateArith { op, left, right } => {
                date_arith(*op, left.eval(row, cx)?, right.eval(row, cx)?)?
            }
            Expr::Concat(a, b) => match (a.eval(row, cx)?, b.eval(row, cx)?) {
                (Value::Null, _) | (_, Value::Null) => Value::Null,
                (l, r) => Value::Text(format!("{}{}", text_of(&l), text_of(&r))),
            },
            Expr::IsNull(e, negated) => Value::Bool(e.eval(row, cx)?.is_null() != *negated),
            Expr::IsDistinct(a, b, negated) => {
                let (l, r) = (a.eval(row, cx)?, b.eval(row, cx)?);
                let distinct = match (l.is_null(), r.is_null()) {
                    (true, true) => false,
                    (true, false) | (false, true) => true,
                    _ => l.sql_cmp(&r) != Some(Ordering::Equal),
                };
                Value::Bool(distinct != *negated)
            }
            Expr::Cast(e, ty) => e.eval(row, cx)?.cast(ty)?,
            Expr::Case { operand, whens, otherwise } => {
                let subject = match operand {
                    Some(o) => Some(o.eval(row, cx)?),
                    None => None,
                };
                for (when, then) in whens {
                    let w = when.eval(row, cx)?;
                    let hit = match &subject {
                        Some(s) => s.sql_cmp(&w) == Some(Ordering::Equal),
                        None => truth(&w)? == Some(true),
                    };
                    if hit {
                        return then.eval(row, cx);
                    }
                }
                match otherwise {
                    Some(e) => e.eval(row, cx)?,
                    None => Value::Null,
                }
            }
            Expr::Like { expr, pattern, negated, case_insensitive } => {
                match (expr.eval(row, cx)?, pattern.eval(row, cx)?) {
                    (Value::Null, _) | (_, Value::Null) => Value::Null,
                    (v, p) => {
                        let (mut v, mut p) = (text_of(&v), text_of(&p));
                        if *case_insensitive {
                            v = v.to_lowercase();
                            p = p.to_lowercase();
                        }
                        Value::Bool(like(&v, &p)? != *negated)
                    }
                }
            }
            Expr::InList { expr, list, negated } => {
                let v = expr.eval(row, cx)?;
                let mut candidates = Vec::with_capacity(list.len());
                for e in list {
                    candidates.push(e.eval(row, cx)?);
                }
                in_values(&v, candidates.iter(), *negated)
            }
            Expr::InSubquery { expr, plan, negated } => {
                let v = expr.eval(row, cx)?;
                let rows = exec::run_subquery(plan, row, cx)?;
                in_values(&v, rows.iter().map(|r| &r[0]), *negated)
            }
            Expr::Exists { plan, negated } => {
                let found = exec::subquery_has_rows(plan, row, cx)?;
                Value::Bool(found != *negated)
            }
            Expr::ScalarSubquery(plan) => {
                let rows = exec::run_subquery(plan, row, cx)?;
                match rows.len() {
                    0 => Value::Null,
                    1 => rows.into_iter().next().expect("one row").swap_remove(0),
                    _ => {
                        return Err(SqlError::new(
                            sqlstate::CARDINALITY_VIOLATION,
                            "more than one row returned by a subquery used as an expression",
                        ));
                    }
                }
            }
            Expr::Func(f, args, ty) => {
                let mut values = Vec::with_capacity(args.len());
                // COALESCE evaluates lazily.
                if *f == Func::Coalesce {
                    for a in args {
                        let v = a.eval(row, cx)?;
                        if !v.is_null() {
                            return v.cast(ty);
                        }
                    }
                    return Ok(Value::Null);
                }
                for a in args {
                    values.push(a.eval(row, cx)?);
                }
                crate::functions::call(*f, values, ty, cx)?
            }
            Expr::Regex { expr, pattern, compiled, negated, case_insensitive } => {
                match (expr.eval(row, cx)?, pattern.eval(row, cx)?) {
                    (Value::Null, _) | (_, Value::Null) => Value::Null,
                    (v, p) => {
                        let found = match compiled {
                            Some(re) => re.is_match(&text_of(&v)),
                            None => compile_regex(&text_of(&p), *case_insensitive)?
                                .is_match(&text_of(&v)),
                        };
                        Value::Bool(found != *negated)
                    }
                }
            }
            Expr::ArraySubquery(plan) => {
                let rows = exec::run_subquery(plan, row, cx)?;
                Value::Text(crate::functions::format_array(rows.iter().map(|r| &r[0])))
            }
            Expr::ArrayCompare { expr, array, op, all, elem } => {
                let (v, array) = (expr.eval(row, cx)?, array.eval(row, cx)?);
                if array.is_null() {
                    return Ok(Value::Null);
                }
                let mut saw_null = false;
                for item in crate::functions::parse_array(&text_of(&array))? {
                    let holds = match item {
                        Some(text) => v.sql_cmp(&Value::parse(&text, elem)?).map(|o| op.holds(o)),
                        None => None,
                    };
                    match holds {
                        Some(h) if h != *all => return Ok(Value::Bool(h)),
                        Some(_) => {}
                        None => saw_null = true,
                    }
                }
                if saw_null { Value::Null } else { Value::Bool(*all) }
            }
            Expr::Lookup { arg, map, miss } => {
                let key = arg.eval(row, cx)?;
                if key.is_null() {
                    return Ok(Value::Null);
                }
                let key = text_of(&key);
                match (map.get(&key), miss) {
                    (Some(v), _) => v.clone(),
                    (None, LookupMiss::Null) => Value::Null,
                    (None, LookupMiss::Echo) => Value::Text(key),
                    (None, LookupMiss::UndefinedRelation) => {
                        return Err(SqlError::new(
                            sqlstate::UNDEFINED_TABLE,
                            format!("relation \"{key}\" does not exist"),
                        ));
                    }
                }
            }
        })
    }
}

/// `v IN (candidates)` with SQL's NULL rules.
fn in_values<'a>(v: &Value, candidates: impl Iterator<Item = &'a Value>, negated: bool) -> Value {
    if v.is_null() {
        return Value::Null;
    }
    let mut saw_null = false;
    for c in candidates {
        match v.sql_cmp(c) {
            Some(Ordering::Equal) => return Value::Bool(!negated),
            None => saw_null = true,
            _ => {}
        }
    }
    if saw_null { Value::Null } else { Value::Bool(negated) }
}

/// The text of a value for `||` and LIKE.
pub fn text_of(v: &Value) -> String {
    match v {
        Value::Text(s) => s.clone(),
        other => other.to_pg_text(),
    }
}

fn date_arith(op: ArithOp, l: Value, r: Value) -> Result<Value> {
    use crate::types::{DATE_END_DAYS, DATE_MIN_DAYS, DATE_NEG_INFINITY, DATE_POS_INFINITY};
    let infinite = |d: i32| d == DATE_NEG_INFINITY || d == DATE_POS_INFINITY;
    let out_of_range = || SqlError::new(sqlstate::DATETIME_FIELD_OVERFLOW, "date out of range");
    // date ± days: infinities stay put; finite results must stay in range.
    let shift = |d: i32, days: Option<i64>| -> Result<Value> {
        if infinite(d) {
            return Ok(Value::Date(d));
        }
        let r = days.and_then(|n| i64::from(d).checked_add(n)).ok_or_else(out_of_range)?;
        if !(DATE_MIN_DAYS..DATE_END_DAYS).contains(&r) {
            return Err(out_of_range());
        }
        Ok(Value::Date(i32::try_from(r).map_err(|_| out_of_range())?))
    };
    match (op, l, r) {
        (_, Value::Null, _) | (_, _, Value::Null) => Ok(Value::Null),
        (ArithOp::Add, Value::Date(d), Value::Int(n))
        | (ArithOp::Add, Value::Int(n), Value::Date(d)) => shift(d, Some(n)),
        (ArithOp::Sub, Value::Date(d), Value::Int(n)) => shift(d, n.checked_neg()),
        (ArithOp::Sub, Value::Date(a), Value::Date(b)) => {
            if infinite(a) || infinite(b) {
                return Err(SqlError::new(
                    sqlstate::DATETIME_FIELD_OVERFLOW,
                    "cannot subtract infinite dates",
                ));
            }
            Ok(Value::Int(i64::from(a) - i64::from(b)))
        }
        (op, l, r) => Err(SqlError::internal(format!("date arithmetic {op:?} on {l:?} and {r:?}"))),
    }
}

/// SQL LIKE: `%` matches any run, `_` one character, `\` escapes.
pub fn like(text: &str, pattern: &str) -> Result<bool> {
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    // Reject a trailing lone escape whatever the text, as PostgreSQL does.
    let mut i = 0;
    while i < p.len() {
        if p[i] == '\\' {
            if i + 1 == p.len() {
                return Err(SqlError::new(
                    sqlstate::INVALID_ESCAPE_SEQUENCE,
                    "LIKE pattern must not end with escape character",
                ));
            }
            i += 1;
        }
        i += 1;
    }
    // Iterative matcher with backtracking to the last `%`.
    let (mut ti, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() {
            match p[pi] {
                '%' => {
                    star = Some((pi, ti));
                    pi += 1;
                    continue;
                }
                '\\' => {
                    let lit = p[pi + 1]; // a trailing escape was rejected above
                    if lit == t[ti] {
                        pi += 2;
                        ti += 1;
                        continue;
                    }
                }
                '_' => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                c if c == t[ti] => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, st)) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return Ok(false),
        }
    }
    while pi < p.len() && p[pi] == '%' {
        pi += 1;
    }
    Ok(pi == p.len())
}

/// Aggregate functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggFunc {
    CountStar,
    Count,
    Sum,
    Avg,
    Min,
    Max,
    BoolAnd,
    BoolOr,
    StringAgg,
}

/// One aggregate call of an aggregation.
#[derive(Clone, Debug)]
pub struct AggCall {
    pub func: AggFunc,
    pub args: Vec<Expr>,
    pub distinct: bool,
    /// Result type.
    pub ty: DataType,
}

/// Running state of one aggregate for one group.
#[derive(Clone, Debug)]
pub struct Accumulator {
    value: Value,
    count: i64,
    seen: Option<Vec<Value>>,
}

impl Accumulator {
    pub fn new(call: &AggCall) -> Accumulator {
        Accumulator { value: Value::Null, count: 0, seen: call.distinct.then(Vec::new) }
    }

    pub fn add(&mut self, call: &AggCall, args: Vec<Value>) -> Result<()> {
        if call.func == AggFunc::CountStar {
            self.count += 1;
            return Ok(());
        }
        let v = args.into_iter().next().expect("aggregate has an argument");
        if v.is_null() {
            return Ok(());
        }
        if let Some(seen) = &mut self.seen {
            if seen.iter().any(|s| s.group_eq(&v)) {
                return Ok(());
            }
            seen.push(v.clone());
        }
        self.count += 1;
        let sum_ty = match call.func {
            AggFunc::Avg => DataType::Numeric { precision: None, scale: None },
            _ => call.ty.clone(),
        };
        self.value = match call.func {
            AggFunc::CountStar | AggFunc::Count => Value::Null,
            AggFunc::Sum | AggFunc::Avg => {
                let v = if matches!(call.func, AggFunc::Avg) && matches!(call.ty, DataType::Float8)
                {
                    v.cast(&DataType::Float8)?
                } else {
                    v
                };
                let ty = if matches!(call.ty, DataType::Float8 | DataType::Float4) {
                    call.ty.clone()
                } else {
                    sum_ty
                };
                if self.value.is_null() {
                    v.cast(&ty)?
                } else {
                    arithmetic(ArithOp::Add, &self.value, &v, &ty)?
                }
            }
            AggFunc::Min => {
                if self.value.is_null() || v.sort_cmp(&self.value) == Ordering::Less {
                    v
                } else {
                    self.value.clone()
                }
            }
            AggFunc::Max => {
                if self.value.is_null() || v.sort_cmp(&self.value) == Ordering::Greater {
                    v
                } else {
                    self.value.clone()
                }
            }
            AggFunc::BoolAnd => {
                Value::Bool(truth(&v)?.unwrap_or(true) && truth(&self.value)?.unwrap_or(true))
            }
            AggFunc::BoolOr => {
                Value::Bool(truth(&v)?.unwrap_or(false) || truth(&self.value)?.unwrap_or(false))
            }
            AggFunc::StringAgg => Value::Text(match &self.value {
                Value::Null => text_of(&v),
                prev => format!("{}{}{}", text_of(prev), separator(call), text_of(&v)),
            }),
        };
        Ok(())
    }

    pub fn finish(self, call: &AggCall) -> Result<Value> {
        Ok(match call.func {
            AggFunc::CountStar | AggFunc::Count => Value::Int(self.count),
            AggFunc::Avg if self.count == 0 => Value::Null,
            AggFunc::Avg => {
                arithmetic(ArithOp::Div, &self.value, &Value::Int(self.count), &call.ty)?
            }
            _ => self.value,
        })
    }
}

fn separator(call: &AggCall) -> String {
    match call.args.get(1) {
        Some(Expr::Literal(v)) => text_of(v),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns() {
        let cases = [
            ("abc", "abc", true),
            ("abc", "a%", true),
            ("abc", "%c", true),
            ("abc", "a_c", true),
            ("abc", "a_", false),
            ("abc", "%b%", true),
            ("", "%", true),
            ("a%c", "a\\%c", true),
            ("abc", "a\\%c", false),
            ("mississippi", "%iss%pi", true),
            ("mississippi", "%iss%px", false),
        ];
        for (t, p, want) in cases {
            assert_eq!(like(t, p).unwrap(), want, "{t} LIKE {p}");
        }
        assert!(like("a", "a\\").is_err());
    }
}
