//! The binder and planner: from parsed SQL to a tree of plan [`Node`]s.
//!
//! Binding resolves names against the catalog and the scopes of enclosing
//! queries (correlated references become [`Expr::Outer`]), types every
//! expression with PostgreSQL's rules (untyped string literals take the type
//! of what they meet, integer literals are `integer` or `bigint`, decimals
//! `numeric`), and rewrites aggregate queries so that the select list, HAVING
//! and ORDER BY read the output of an [`Node::Aggregate`].
//!
//! Planning chooses, for a single-table query, an access path from the WHERE
//! clause: a primary-key point lookup, a primary-key range, or a secondary
//! index lookup, falling back to a full scan. The full predicate is always
//! applied again above the scan, so an access path only ever narrows what is
//! read.
//!
//! WHERE and ON conjuncts that read one side of a join move into that side
//! (both sides of an inner join; only the non-preserved side of an outer
//! join's ON, only the preserved side of its WHERE), where they can pick an
//! access path. Joins with equality conditions become hash joins, others
//! nested loops; an inner or left join whose outer side reads a key range
//! and whose inner side is a table with a key bound by the join becomes an
//! index nested-loop join ([`Node::IndexJoin`]), an inner join with its
//! sides swapped if only that way round qualifies.
//!
//! Order: an ORDER BY that the scan order already satisfies (a primary-key
//! or index scan, backward for DESC) needs no sort, so a LIMIT stops the
//! scan early; one that does not, under a LIMIT, becomes a top-N sort
//! ([`Node::TopN`]). GROUP BY over rows that arrive grouped aggregates one
//! group at a time. Every such choice yields exactly the rows, in the same
//! order, as the plain plan would (see `provide_order`).

use std::collections::HashMap;
use std::sync::Arc;

use sqlparser::ast;
use strata_txn::Txn;

use crate::catalog::{self, PRIMARY_INDEX, Table};
use crate::error::{Result, SqlError, sqlstate};
use crate::expr::{self, AggCall, AggFunc, CmpOp, Expr, Func, LookupMiss};
use crate::functions;
use crate::system::{self, CatalogView};
use crate::types::{ArithOp, DataType, Value, arithmetic_result_type};

/// A column of a plan's output.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputColumn {
    pub name: String,
    pub ty: DataType,
}

/// How a scan reaches its rows.
#[derive(Clone, Debug)]
pub enum Access {
    Full,
    /// Every primary-key column fixed by equality.
    PrimaryPoint(Vec<Expr>),
    /// A prefix of the primary key fixed, the next column bounded.
    PrimaryRange {
        eq: Vec<Expr>,
        lower: Option<(Expr, bool)>,
        upper: Option<(Expr, bool)>,
        /// Read in descending key order (a backward scan that an ORDER BY
        /// ... DESC asked for).
        reverse: bool,
    },
    /// A prefix of a secondary index's columns fixed by equality, the next
    /// column perhaps bounded.
    IndexEq {
        index: u32,
        eq: Vec<Expr>,
        lower: Option<(Expr, bool)>,
        upper: Option<(Expr, bool)>,
        /// Read the index backward.
        reverse: bool,
    },
}

/// Join kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
}

/// Set operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOpKind {
    Union,
    Intersect,
    Except,
}

/// One ORDER BY key.
#[derive(Clone, Debug)]
pub struct SortKey {
    pub column: usize,
    pub desc: bool,
    pub nulls_first: bool,
}

/// A plan node. Every node produces rows of a fixed width.
#[derive(Clone, Debug)]
pub enum Node {
    Values {
        rows: Vec<Vec<Expr>>,
    },
    /// `generate_series(start, stop [, step])` in FROM: one integer column.
    /// The bounds may read enclosing rows; they are evaluated when the node
    /// starts.
    Series {
        start: Expr,
        stop: Expr,
        step: Option<Expr>,
    },
    /// All columns of a table (hidden ones included), in schema order.
    Scan {
        table: Arc<Table>,
        access: Access,
        for_update: bool,
        /// The columns operators above read (see [`prune_columns`]); the
        /// others are not decoded and read as NULL. `None`: all.
        needed: Option<Arc<[bool]>>,
    },
    Filter {
        input: Box<Node>,
        predicate: Expr,
    },
    Project {
        input: Box<Node>,
        exprs: Vec<Expr>,
    },
    /// Output: the group-by values, then one value per aggregate, groups in
    /// the order their first input rows arrive.
    Aggregate {
        input: Box<Node>,
        group_by: Vec<Expr>,
        aggs: Vec<AggCall>,
        /// The input arrives grouped (the rows of a group are adjacent), so
        /// one group at a time is held: stream aggregation.
        streaming: bool,
    },
    Sort {
        input: Box<Node>,
        keys: Vec<SortKey>,
    },
    /// A sort under a LIMIT: keeps only the first `limit + offset` rows in
    /// key order, in a bounded heap, and yields exactly the rows a stable
    /// [`Node::Sort`] would put first. The `Limit` above still applies.
    TopN {
        input: Box<Node>,
        keys: Vec<SortKey>,
        limit: Expr,
        offset: Option<Expr>,
    },
    Limit {
        input: Box<Node>,
        limit: Option<Expr>,
        offset: Option<Expr>,
    },
    Distinct {
        input: Box<Node>,
    },
    /// Output: left columns then right columns. `equi` pairs (left key, right
    /// key) make it a hash join; `on` is the rest of the condition.
    Join {
        left: Box<Node>,
        right: Box<Node>,
        kind: JoinKind,
        equi: Vec<(Expr, Expr)>,
        on: Option<Expr>,
        right_width: usize,
        left_width: usize,
    },
    SetOp {
        op: SetOpKind,
        all: bool,
        left: Box<Node>,
        right: Box<Node>,
    },
    /// An index nested-loop join (inner or left): for each left row, reads
    /// the rows of `table` whose index `index` ([`PRIMARY`] for the primary
    /// key) starts with the values `lookup` computes from the left row,
    /// instead of hashing the whole table. Output as [`Node::Join`]: left
    /// columns, then all of `table`'s columns.
    IndexJoin {
        left: Box<Node>,
        table: Arc<Table>,
        index: u32,
        /// One expression over the left row per leading index column.
        lookup: Vec<Expr>,
        /// Conjuncts over the right row alone (checked on every row read).
        right_filter: Option<Expr>,
        kind: JoinKind,
        /// As in [`Node::Join`]: checked again on every pair.
        equi: Vec<(Expr, Expr)>,
        on: Option<Expr>,
        left_width: usize,
        right_width: usize,
        for_update: bool,
    },
}

/// A planned query: its root and output columns.
#[derive(Clone, Debug)]
pub struct Planned {
    pub node: Node,
    pub columns: Vec<OutputColumn>,
}

/// A column visible to expressions.
#[derive(Clone, Debug)]
pub struct ScopeColumn {
    pub table: Option<String>,
    pub name: String,
    pub ty: DataType,
    pub hidden: bool,
}

/// The columns of the row an expression is evaluated against.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    pub columns: Vec<ScopeColumn>,
}

impl Scope {
    pub fn of_table(table: &Table, alias: Option<&str>) -> Scope {
        let name = alias.unwrap_or(&table.name).to_string();
        Scope {
            columns: table
                .columns
                .iter()
                .map(|c| ScopeColumn {
                    table: Some(name.clone()),
                    name: c.name.clone(),
                    ty: c.ty.clone(),
                    hidden: c.hidden,
                })
                .collect(),
        }
    }

    fn of_output(columns: &[OutputColumn], table: Option<&str>) -> Scope {
        Scope {
            columns: columns
                .iter()
                .map(|c| ScopeColumn {
                    table: table.map(str::to_string),
                    name: c.name.clone(),
                    ty: c.ty.clone(),
                    hidden: false,
                })
                .collect(),
        }
    }

    fn concat(mut self, other: Scope) -> Scope {
        self.columns.extend(other.columns);
        self
    }

    /// Resolves a (possibly qualified) column name.
    fn resolve(&self, table: Option<&str>, name: &str) -> Result<Option<usize>> {
        let mut found = None;
        for (i, c) in self.columns.iter().enumerate() {
            let table_ok = table.is_none_or(|t| c.table.as_deref() == Some(t));
            if table_ok && c.name == name {
                if found.is_some() {
                    return Err(SqlError::new(
                        sqlstate::AMBIGUOUS_COLUMN,
                        format!("column reference \"{name}\" is ambiguous"),
                    ));
                }
                found = Some(i);
            }
        }
        Ok(found)
    }
}

/// Aggregation state while binding a select list, HAVING or ORDER BY.
struct AggState {
    input: Scope,
    group_asts: Vec<ast::Expr>,
    group_exprs: Vec<Expr>,
    aggs: Vec<AggCall>,
}

/// Binds and plans statements for one transaction.
pub struct Binder<'t> {
    pub txn: &'t mut Txn,
    /// Types inferred for `$n` parameters.
    pub param_types: Vec<Option<DataType>>,
    /// Bind and plan only: statements stop before reading or writing rows
    /// (the extended protocol's Describe).
    pub describe_only: bool,
    ctes: Vec<HashMap<String, Arc<Planned>>>,
    outer: Vec<Scope>,
    /// The catalog as the system tables show it, read once per statement.
    catalog_view: Option<Arc<CatalogView>>,
    /// The user tables the plan was bound against, with their descriptors' bytes.
    pub tables_read: Vec<(String, Vec<u8>)>,
    /// Whether the plan depends on nothing but those descriptors (and so
    /// may be cached: see `Session`'s plan cache). Reading the system
    /// catalogs bakes their rows into the plan, so it is not.
    pub cacheable: bool,
}

impl std::fmt::Debug for Binder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Binder").field("param_types", &self.param_types).finish_non_exhaustive()
    }
}

pub fn ident(i: &ast::Ident) -> String {
    // Unquoted identifiers fold to lower case, as in PostgreSQL.
    if i.quote_style.is_some() { i.value.clone() } else { i.value.to_lowercase() }
}

/// The parts of a dotted name, case-folded.
fn name_parts(n: &ast::ObjectName) -> Result<Vec<String>> {
    n.0.iter()
        .map(|p| match p {
            ast::ObjectNamePart::Identifier(i) => Ok(ident(i)),
            other => Err(SqlError::unsupported(format!("name {other}"))),
        })
        .collect()
}

pub fn object_name(n: &ast::ObjectName) -> Result<String> {
    let parts = name_parts(n)?;
    // Accept public.t and strata.public.t as t.
    match parts.as_slice() {
        [name] => Ok(name.clone()),
        [schema, name] if schema == "public" => Ok(name.clone()),
        [_, schema, name] if schema == "public" => Ok(name.clone()),
        [schema, name] if schema == "pg_catalog" || schema == "information_schema" => {
            Err(SqlError::new(
                sqlstate::UNDEFINED_TABLE,
                format!("relation \"{schema}.{name}\" does not exist"),
            ))
        }
        _ => Err(SqlError::new(
            sqlstate::UNDEFINED_TABLE,
            format!("relation \"{n}\" does not exist"),
        )),
    }
}

/// Which columns of a node's output are read above it.
#[derive(Clone, Debug)]
enum Needed {
    All,
    Some(std::collections::BTreeSet<usize>),
}

impl Needed {
    fn none() -> Needed {
        Needed::Some(Default::default())
    }

    fn has(&self, column: usize) -> bool {
        match self {
            Needed::All => true,
            Needed::Some(set) => set.contains(&column),
        }
    }

    /// Adds the columns `e` reads; a subquery inside may read any column of
    /// the row (through `Expr::Outer`), so it needs them all.
    fn add_expr(&mut self, e: &Expr) {
        let Needed::Some(set) = self else { return };
        match e {
            Expr::Column(i) => {
                set.insert(*i);
            }
            Expr::InSubquery { .. }
            | Expr::Exists { .. }
            | Expr::ScalarSubquery(_)
            | Expr::ArraySubquery(_) => *self = Needed::All,
            other => {
                for child in other.children() {
                    self.add_expr(child);
                }
            }
        }
    }

    /// The part of a join's needs that falls on its right side (columns
    /// from `left_width` on), renumbered from 0.
    fn right_of(&self, left_width: usize) -> Needed {
        match self {
            Needed::All => Needed::All,
            Needed::Some(set) => {
                Needed::Some(set.range(left_width..).map(|c| c - left_width).collect())
            }
        }
    }

    fn left_of(&self, left_width: usize) -> Needed {
        match self {
            Needed::All => Needed::All,
            Needed::Some(set) => Needed::Some(set.range(..left_width).copied().collect()),
        }
    }
}

/// Projection pruning for a query's plan: marks on every scan the columns
/// that operators above it read, so that the others are neither decoded nor
/// carried through sorts, joins and aggregations; projected expressions
/// whose output nobody reads become NULL. The query's own output is read
/// whole. Subquery plans inside expressions are left as they are, and a
/// node whose expressions hold one keeps all its input columns.
pub fn prune_columns(node: &mut Node) {
    prune(node, Needed::All);
}

fn prune(node: &mut Node, needed: Needed) {
    match node {
        Node::Values { .. } | Node::Series { .. } => {}
        Node::Scan { table, needed: mask, .. } => {
            if let Needed::Some(set) = needed {
                let columns: Vec<bool> =
                    (0..table.columns.len()).map(|c| set.contains(&c)).collect();
                if columns.iter().any(|&c| !c) {
                    *mask = Some(columns.into());
                }
            }
        }
        Node::Filter { input, predicate } => {
            let mut needed = needed;
            needed.add_expr(predicate);
            prune(input, needed);
        }
        Node::Project { input, exprs } => {
            let mut below = Needed::none();
            for (i, e) in exprs.iter_mut().enumerate() {
                if needed.has(i) {
                    below.add_expr(e);
                } else {
                    *e = Expr::Literal(Value::Null);
                }
            }
            prune(input, below);
        }
        Node::Aggregate { input, group_by, aggs, .. } => {
            let mut below = Needed::none();
            for e in group_by.iter().chain(aggs.iter().flat_map(|a| a.args.iter())) {
                below.add_expr(e);
            }
            prune(input, below);
        }
        Node::Sort { input, keys } | Node::TopN { input, keys, .. } => {
            let mut needed = needed;
            if let Needed::Some(set) = &mut needed {
                set.extend(keys.iter().map(|k| k.column));
            }
            prune(input, needed);
        }
        Node::Limit { input, .. } => prune(input, needed),
        Node::Distinct { input } => prune(input, Needed::All),
        Node::SetOp { left, right, .. } => {
            prune(left, Needed::All);
            prune(right, Needed::All);
        }
        Node::Join { left, right, equi, on, left_width, .. } => {
            let mut combined = needed;
            if let Some(on) = on {
                combined.add_expr(on);
            }
            let mut left_needed = combined.left_of(*left_width);
            let mut right_needed = combined.right_of(*left_width);
            for (l, r) in equi.iter() {
                left_needed.add_expr(l);
                right_needed.add_expr(r);
            }
            prune(left, left_needed);
            prune(right, right_needed);
        }
        Node::IndexJoin { left, lookup, equi, on, left_width, .. } => {
            let mut combined = needed;
            if let Some(on) = on {
                combined.add_expr(on);
            }
            let mut left_needed = combined.left_of(*left_width);
            for e in lookup.iter().chain(equi.iter().map(|(l, _)| l)) {
                left_needed.add_expr(e);
            }
            prune(left, left_needed);
        }
    }
}

/// A `character(n)` value as text, without its trailing blanks (what
/// PostgreSQL's bpchar-to-text cast yields); any other expression as it is.
fn without_padding(e: Expr, ty: &DataType) -> Expr {
    match ty {
        DataType::Char(_) => Expr::Func(Func::Rtrim, vec![e], DataType::Text),
        _ => e,
    }
}

/// One of [`CatalogView`]'s maps for [`Expr::Lookup`].
type CatalogMap = fn(&CatalogView) -> HashMap<String, Value>;

/// The element type of an array expression: from an `::type[]` cast, or
/// for a catalog array column (arrays are text in Strata) from
/// `system::array_element_type`; text otherwise.
fn array_element_type(e: &ast::Expr) -> DataType {
    match e {
        ast::Expr::Cast {
            data_type:
                ast::DataType::Array(
                    ast::ArrayElemTypeDef::SquareBracket(inner, _)
                    | ast::ArrayElemTypeDef::AngleBracket(inner)
                    | ast::ArrayElemTypeDef::Parenthesis(inner),
                ),
            ..
        } => DataType::from_ast(inner).unwrap_or(DataType::Text),
        ast::Expr::Nested(inner) => array_element_type(inner),
        ast::Expr::Identifier(i) => system::array_element_type(&ident(i)),
        ast::Expr::CompoundIdentifier(parts) => {
            parts.last().map_or(DataType::Text, |i| system::array_element_type(&ident(i)))
        }
        _ => DataType::Text,
    }
}

/// The catalog's own types, which casts turn into lookups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CatalogType {
    RegClass,
    RegType,
    RegNamespace,
    Oid,
    Name,
}

fn catalog_type(ty: &ast::DataType) -> Option<CatalogType> {
    let name = match ty {
        ast::DataType::Regclass => return Some(CatalogType::RegClass),
        ast::DataType::Custom(name, modifiers) if modifiers.is_empty() => name_parts(name).ok()?,
        _ => return None,
    };
    let base = match name.as_slice() {
        [base] => base,
        [schema, base] if schema == "pg_catalog" => base,
        _ => return None,
    };
    Some(match base.as_str() {
        "regclass" => CatalogType::RegClass,
        "regtype" => CatalogType::RegType,
        "regnamespace" => CatalogType::RegNamespace,
        "oid" => CatalogType::Oid,
        "name" => CatalogType::Name,
        _ => return None,
    })
}

/// `~`, `!~`, `~*`, `!~*` (also spelled `OPERATOR(pg_catalog.~)`): (negated,
/// case-insensitive).
fn regex_operator(op: &ast::BinaryOperator) -> Option<(bool, bool)> {
    use ast::BinaryOperator as B;
    match op {
        B::PGRegexMatch => Some((false, false)),
        B::PGRegexNotMatch => Some((true, false)),
        B::PGRegexIMatch => Some((false, true)),
        B::PGRegexNotIMatch => Some((true, true)),
        B::PGCustomBinaryOperator(parts) => match parts.as_slice() {
            [op] | [_, op] => regex_operator(&match op.as_str() {
                "~" => B::PGRegexMatch,
                "!~" => B::PGRegexNotMatch,
                "~*" => B::PGRegexIMatch,
                "!~*" => B::PGRegexNotIMatch,
                _ => return None,
            }),
            _ => None,
        },
        _ => None,
    }
}

fn agg_func(name: &str) -> Option<AggFunc> {
    Some(match name {
        "count" => AggFunc::Count,
        "sum" => AggFunc::Sum,
        "avg" => AggFunc::Avg,
        "min" => AggFunc::Min,
        "max" => AggFunc::Max,
        "bool_and" | "every" => AggFunc::BoolAnd,
        "bool_or" => AggFunc::BoolOr,
        "string_agg" => AggFunc::StringAgg,
        _ => return None,
    })
}

fn function_name(f: &ast::Function) -> String {
    f.name.0.last().map_or(String::new(), |p| match p {
        ast::ObjectNamePart::Identifier(i) => ident(i),
        ast::ObjectNamePart::Function(f) => ident(&f.name),
    })
}

/// Whether an expression contains an aggregate call (not looking into subqueries).
fn contains_aggregate(e: &ast::Expr) -> bool {
    use ast::Expr as E;
    match e {
        E::Function(f) => {
            agg_func(&function_name(f)).is_some()
                || function_args(f).iter().any(|a| a.is_some_and(contains_aggregate))
        }
        E::BinaryOp { left, right, .. } => contains_aggregate(left) || contains_aggregate(right),
        E::UnaryOp { expr, .. }
        | E::Nested(expr)
        | E::Cast { expr, .. }
        | E::IsNull(expr)
        | E::IsNotNull(expr) => contains_aggregate(expr),
        E::Case { operand, conditions, else_result, .. } => {
            operand.as_deref().is_some_and(contains_aggregate)
                || conditions
                    .iter()
                    .any(|c| contains_aggregate(&c.condition) || contains_aggregate(&c.result))
                || else_result.as_deref().is_some_and(contains_aggregate)
        }
        E::Between { expr, low, high, .. } => {
            contains_aggregate(expr) || contains_aggregate(low) || contains_aggregate(high)
        }
        E::In { expr, target: ast::InTarget::List(list), .. } => {
            contains_aggregate(expr) || list.iter().any(contains_aggregate)
        }
        E::Like { expr, pattern, .. } | E::ILike { expr, pattern, .. } => {
            contains_aggregate(expr) || contains_aggregate(pattern)
        }
        _ => false,
    }
}

/// A function's positional arguments; `None` stands for `*`.
fn function_args(f: &ast::Function) -> Vec<Option<&ast::Expr>> {
    match &f.args {
        ast::FunctionArguments::List(list) => list
            .args
            .iter()
            .map(|a| match a {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Some(e),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn is_distinct_call(f: &ast::Function) -> bool {
    matches!(&f.args, ast::FunctionArguments::List(l) if l.duplicate_treatment == Some(ast::DuplicateTreatment::Distinct))
}

fn is_untyped_literal(e: &ast::Expr) -> bool {
    matches!(e, ast::Expr::Value(v) if matches!(v.value, ast::Value::SingleQuotedString(_) | ast::Value::EscapedStringLiteral(_)))
        || matches!(e, ast::Expr::Value(v) if matches!(v.value, ast::Value::Null))
}

fn type_mismatch(op: &str, l: &DataType, r: &DataType) -> SqlError {
    SqlError::new(
        sqlstate::UNDEFINED_FUNCTION,
        format!("operator does not exist: {} {op} {}", l.pg_name(), r.pg_name()),
    )
}

fn comparable(l: &DataType, r: &DataType) -> bool {
    l == r
        || (l.is_numeric() && r.is_numeric())
        || (l.is_string() && r.is_string())
        || matches!(
            (l, r),
            (DataType::Date, DataType::Timestamp) | (DataType::Timestamp, DataType::Date)
        )
}

/// The name PostgreSQL gives an unaliased select item.
fn output_name(e: &ast::Expr) -> String {
    match e {
        ast::Expr::Identifier(i) => ident(i),
        ast::Expr::CompoundIdentifier(parts) => parts.last().map_or("?column?".into(), ident),
        ast::Expr::Function(f) => function_name(f),
        ast::Expr::Cast { expr, data_type, .. } => match output_name(expr).as_str() {
            "?column?" => {
                DataType::from_ast(data_type).map_or("?column?".into(), |t| short_type_name(&t))
            }
            name => name.to_string(),
        },
        ast::Expr::Nested(inner) => output_name(inner),
        ast::Expr::Case { .. } => "case".into(),
        ast::Expr::Exists { .. } => "exists".into(),
        ast::Expr::Extract { .. } => "extract".into(),
        ast::Expr::Substring { .. } => "substring".into(),
        ast::Expr::Trim { .. } => "btrim".into(),
        ast::Expr::Ceil { .. } => "ceil".into(),
        ast::Expr::Floor { .. } => "floor".into(),
        ast::Expr::Position { .. } => "position".into(),
        _ => "?column?".into(),
    }
}

fn short_type_name(t: &DataType) -> String {
    match t {
        DataType::Bool => "bool",
        DataType::Int2 => "int2",
        DataType::Int4 => "int4",
        DataType::Int8 => "int8",
        DataType::Float4 => "float4",
        DataType::Float8 => "float8",
        DataType::Numeric { .. } => "numeric",
        DataType::Text => "text",
        DataType::Varchar(_) => "varchar",
        DataType::Char(_) => "bpchar",
        DataType::Bytea => "bytea",
        DataType::Date => "date",
        DataType::Timestamp => "timestamp",
    }
    .to_string()
}

/// Splits an AND tree into its conjuncts.
pub fn conjuncts(e: Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::And(a, b) => {
            conjuncts(*a, out);
            conjuncts(*b, out);
        }
        other => out.push(other),
    }
}

fn and_all(mut es: Vec<Expr>) -> Option<Expr> {
    let first = es.pop()?;
    Some(es.into_iter().rev().fold(first, |acc, e| Expr::And(Box::new(e), Box::new(acc))))
}

/// The columns of its own row an expression reads. A subquery may read the
/// row through outer references, so it counts as reading every column
/// (`usize::MAX`).
fn columns_read(e: &Expr, out: &mut Vec<usize>) {
    match e {
        Expr::Column(i) => out.push(*i),
        Expr::InSubquery { .. } | Expr::Exists { .. } | Expr::ScalarSubquery(_) => {
            out.push(usize::MAX)
        }
        _ => {}
    }
    for c in e.children() {
        columns_read(c, out);
    }
}

/// Rewrites column references `i` to `i - by` (for the right side of a join).
fn shift_columns(e: &mut Expr, by: usize) {
    if let Expr::Column(i) = e {
        *i -= by;
    }
    for c in e.children_mut() {
        shift_columns(c, by);
    }
}

impl<'t> Binder<'t> {
    pub fn new(txn: &'t mut Txn) -> Binder<'t> {
        Binder {
            txn,
            param_types: Vec::new(),
            describe_only: false,
            ctes: Vec::new(),
            outer: Vec::new(),
            catalog_view: None,
            tables_read: Vec::new(),
            cacheable: true,
        }
    }

    /// The catalog at this transaction's snapshot, for the system tables
    /// and catalog functions.
    fn catalog_view(&mut self) -> Result<Arc<CatalogView>> {
        if let Some(view) = &self.catalog_view {
            return Ok(view.clone());
        }
        self.cacheable = false;
        let view = Arc::new(CatalogView::load(self.txn)?);
        self.catalog_view = Some(view.clone());
        Ok(view)
    }

    /// A lookup in one of the catalog view's maps, keyed by `arg`.
    fn catalog_lookup(&mut self, arg: Expr, map: CatalogMap, miss: LookupMiss) -> Result<Expr> {
        let view = self.catalog_view()?;
        Ok(Expr::Lookup { arg: Box::new(arg), map: Arc::new(map(&view)), miss })
    }

    fn note_param(&mut self, e: &Expr, ty: &DataType) {
        if let Expr::Param(i) = e {
            if self.param_types.len() <= *i {
                self.param_types.resize(*i + 1, None);
            }
            self.param_types[*i].get_or_insert_with(|| ty.clone());
        }
    }

    // ----- expressions -----

    /// Binds `e` in `scope`; returns the expression and its type.
    pub fn expr(&mut self, e: &ast::Expr, scope: &Scope) -> Result<(Expr, DataType)> {
        self.expr_in(e, scope, &mut None)
    }

    /// Binds `e`, coercing an untyped literal to `target` (for assignments
    /// and comparisons against a typed column).
    pub fn expr_as(
        &mut self,
        e: &ast::Expr,
        scope: &Scope,
        target: &DataType,
    ) -> Result<(Expr, DataType)> {
        let (expr, ty) = self.expr(e, scope)?;
        Ok(self.coerce(e, expr, ty, target))
    }

    fn coerce(
        &mut self,
        ast_e: &ast::Expr,
        expr: Expr,
        ty: DataType,
        target: &DataType,
    ) -> (Expr, DataType) {
        self.note_param(&expr, target);
        if matches!(expr, Expr::Param(_)) {
            return (Expr::Cast(Box::new(expr), target.clone()), target.clone());
        }
        if is_untyped_literal(ast_e) && !target.is_string() {
            return (Expr::Cast(Box::new(expr), target.clone()), target.clone());
        }
        (expr, ty)
    }

    fn column_ref(
        &mut self,
        table: Option<&str>,
        name: &str,
        scope: &Scope,
        agg: &mut Option<&mut AggState>,
    ) -> Result<(Expr, DataType)> {
        // In an aggregate context, plain columns must be grouped.
        if let Some(state) = agg.as_deref_mut() {
            if let Some(i) = state.input.resolve(table, name)? {
                let ty = state.input.columns[i].ty.clone();
                if let Some(g) =
                    state.group_exprs.iter().position(|g| matches!(g, Expr::Column(c) if *c == i))
                {
                    return Ok((Expr::Column(g), ty));
                }
                let qualified = table.map_or(name.to_string(), |t| format!("{t}.{name}"));
                return Err(SqlError::new(
                    sqlstate::GROUPING_ERROR,
                    format!(
                        "column \"{qualified}\" must appear in the GROUP BY clause or be used in an aggregate function"
                    ),
                ));
            }
        } else if let Some(i) = scope.resolve(table, name)? {
            return Ok((Expr::Column(i), scope.columns[i].ty.clone()));
        }
        for (depth, outer) in self.outer.iter().rev().enumerate() {
            if let Some(i) = outer.resolve(table, name)? {
                return Ok((
                    Expr::Outer { depth: depth + 1, index: i },
                    outer.columns[i].ty.clone(),
                ));
            }
        }
        let qualified = table.map_or(name.to_string(), |t| format!("{t}.{name}"));
        Err(SqlError::new(
            sqlstate::UNDEFINED_COLUMN,
            format!("column \"{qualified}\" does not exist"),
        ))
    }

    fn boolean(
        &mut self,
        e: &ast::Expr,
        scope: &Scope,
        agg: &mut Option<&mut AggState>,
        what: &str,
    ) -> Result<Expr> {
        let (x, ty) = self.expr_in(e, scope, agg)?;
        if ty != DataType::Bool && !is_untyped_literal(e) {
            return Err(SqlError::new(
                sqlstate::DATATYPE_MISMATCH,
                format!("argument of {what} must be type boolean, not type {}", ty.pg_name()),
            ));
        }
        if is_untyped_literal(e) { Ok(Expr::Cast(Box::new(x), DataType::Bool)) } else { Ok(x) }
    }

    /// Binds both sides of a comparison, coercing literals to the other side.
    fn comparison_operands(
        &mut self,
        l: &ast::Expr,
        r: &ast::Expr,
        scope: &Scope,
        agg: &mut Option<&mut AggState>,
        op: &str,
    ) -> Result<(Expr, Expr)> {
        let (le, lt) = self.expr_in(l, scope, agg)?;
        let (re, rt) = self.expr_in(r, scope, agg)?;
        let (le, lt) = self.coerce(l, le, lt, &rt);
        let (re, rt) = self.coerce(r, re, rt, &lt);
        if !comparable(&lt, &rt) && !is_untyped_literal(l) && !is_untyped_literal(r) {
            return Err(type_mismatch(op, &lt, &rt));
        }
        // character(n) compares without its trailing blanks. Two values of
        // one character(n) type are padded alike and compare as they are
        // (which keeps index access paths); otherwise a character side is
        // trimmed, as PostgreSQL's bpchar comparison (against character(m))
        // or its cast to text (against text) does.
        if lt != rt {
            return Ok((without_padding(le, &lt), without_padding(re, &rt)));
        }
        Ok((le, re))
    }

    fn expr_in(
        &mut self,
        e: &ast::Expr,
        scope: &Scope,
        agg: &mut Option<&mut AggState>,
    ) -> Result<(Expr, DataType)> {
        use ast::Expr as E;
        // A select-list or HAVING expression equal to a GROUP BY expression
        // reads the group's value.
        if let Some(state) = agg.as_deref_mut()
            && let Some(g) = state.group_asts.iter().position(|g| g == e)
        {
            let ty = self.expr(&state.group_asts[g].clone(), &state.input.clone())?.1;
            return Ok((Expr::Column(g), ty));
        }
        Ok(match e {
            E::Identifier(i) => self.column_ref(None, &ident(i), scope, agg)?,
            E::CompoundIdentifier(parts) => match parts.as_slice() {
                [t, c] => self.column_ref(Some(&ident(t)), &ident(c), scope, agg)?,
                [_, t, c] | [_, _, t, c] => {
                    self.column_ref(Some(&ident(t)), &ident(c), scope, agg)?
                }
                _ => return Err(SqlError::unsupported(format!("column reference {e}"))),
            },
            E::Nested(inner) => self.expr_in(inner, scope, agg)?,
            E::Value(v) => self.literal(&v.value)?,
            E::TypedString(ts) => {
                let ty = DataType::from_ast(&ts.data_type)?;
                let text = match &ts.value.value {
                    ast::Value::SingleQuotedString(s) => s.clone(),
                    other => other.to_string(),
                };
                (Expr::Literal(Value::parse(&text, &ty)?), ty)
            }
            E::UnaryOp { op, expr } => match op {
                ast::UnaryOperator::Not => {
                    (Expr::Not(Box::new(self.boolean(expr, scope, agg, "NOT")?)), DataType::Bool)
                }
                ast::UnaryOperator::Minus => {
                    // Fold negative literals so that -2147483648 is an integer.
                    if let E::Value(v) = &**expr
                        && let ast::Value::Number(n, _) = &v.value
                    {
                        return self.literal(&ast::Value::Number(format!("-{n}"), false));
                    }
                    let (x, ty) = self.expr_in(expr, scope, agg)?;
                    if !ty.is_numeric() {
                        return Err(SqlError::new(
                            sqlstate::UNDEFINED_FUNCTION,
                            format!("operator does not exist: - {}", ty.pg_name()),
                        ));
                    }
                    (Expr::Negate(Box::new(x), ty.clone()), ty)
                }
                ast::UnaryOperator::Plus => self.expr_in(expr, scope, agg)?,
                other => return Err(SqlError::unsupported(format!("operator {other}"))),
            },
            E::BinaryOp { left, op, right } => self.binary(left, op, right, scope, agg)?,
            E::IsNull(x) => {
                (Expr::IsNull(Box::new(self.expr_in(x, scope, agg)?.0), false), DataType::Bool)
            }
            E::IsNotNull(x) => {
                (Expr::IsNull(Box::new(self.expr_in(x, scope, agg)?.0), true), DataType::Bool)
            }
            E::IsTrue(x) | E::IsNotTrue(x) | E::IsFalse(x) | E::IsNotFalse(x) => {
                let b = self.boolean(x, scope, agg, "IS")?;
                let target = matches!(e, E::IsTrue(_) | E::IsNotTrue(_));
                let negated = matches!(e, E::IsNotTrue(_) | E::IsNotFalse(_));
                // x IS TRUE == x IS NOT DISTINCT FROM TRUE
                (
                    Expr::IsDistinct(
                        Box::new(b),
                        Box::new(Expr::Literal(Value::Bool(target))),
                        !negated,
                    ),
                    DataType::Bool,
                )
            }
            E::IsDistinctFrom(a, b) | E::IsNotDistinctFrom(a, b) => {
                let (l, r) = self.comparison_operands(a, b, scope, agg, "IS DISTINCT FROM")?;
                (
                    Expr::IsDistinct(
                        Box::new(l),
                        Box::new(r),
                        matches!(e, E::IsNotDistinctFrom(..)),
                    ),
                    DataType::Bool,
                )
            }
            E::Between { expr, negated, low, high } => {
                let (x1, lo) = self.comparison_operands(expr, low, scope, agg, ">=")?;
                let (x2, hi) = self.comparison_operands(expr, high, scope, agg, "<=")?;
                let inside = Expr::And(
                    Box::new(Expr::Compare(CmpOp::GtEq, Box::new(x1), Box::new(lo))),
                    Box::new(Expr::Compare(CmpOp::LtEq, Box::new(x2), Box::new(hi))),
                );
                (if *negated { Expr::Not(Box::new(inside)) } else { inside }, DataType::Bool)
            }
            E::In { expr, target, negated, .. } => match target {
                ast::InTarget::List(list) => {
                    let (x, xt) = self.expr_in(expr, scope, agg)?;
                    let mut items = Vec::with_capacity(list.len());
                    for item in list {
                        let (i, it) = self.expr_in(item, scope, agg)?;
                        let (i, it) = self.coerce(item, i, it, &xt);
                        if !comparable(&xt, &it) && !is_untyped_literal(item) {
                            return Err(type_mismatch("=", &xt, &it));
                        }
                        items.push(i);
                    }
                    (
                        Expr::InList { expr: Box::new(x), list: items, negated: *negated },
                        DataType::Bool,
                    )
                }
                ast::InTarget::Subquery(q) => {
                    let (x, xt) = self.expr_in(expr, scope, agg)?;
                    let planned = self.subquery(q, scope)?;
                    if planned.columns.len() != 1 {
                        return Err(SqlError::new(
                            sqlstate::SYNTAX_ERROR,
                            "subquery has too many columns",
                        ));
                    }
                    if !comparable(&xt, &planned.columns[0].ty) {
                        return Err(type_mismatch("=", &xt, &planned.columns[0].ty));
                    }
                    (
                        Expr::InSubquery {
                            expr: Box::new(x),
                            plan: Arc::new(planned.node),
                            negated: *negated,
                        },
                        DataType::Bool,
                    )
                }
                other => return Err(SqlError::unsupported(format!("IN {other:?}"))),
            },
            E::Exists { subquery, negated } => {
                let planned = self.subquery(subquery, scope)?;
                (Expr::Exists { plan: Arc::new(planned.node), negated: *negated }, DataType::Bool)
            }
            E::Subquery(q) => {
                let planned = self.subquery(q, scope)?;
                if planned.columns.len() != 1 {
                    return Err(SqlError::new(
                        sqlstate::SYNTAX_ERROR,
                        "subquery must return only one column",
                    ));
                }
                let ty = planned.columns[0].ty.clone();
                (Expr::ScalarSubquery(Arc::new(planned.node)), ty)
            }
            E::Like { negated, expr, pattern, escape_char, any: false }
            | E::ILike { negated, expr, pattern, escape_char, any: false } => {
                if escape_char.is_some() {
                    return Err(SqlError::unsupported("LIKE ... ESCAPE"));
                }
                let (x, _) = self.expr_in(expr, scope, agg)?;
                let (p, _) = self.expr_in(pattern, scope, agg)?;
                let ci = matches!(e, E::ILike { .. });
                (
                    Expr::Like {
                        expr: Box::new(x),
                        pattern: Box::new(p),
                        negated: *negated,
                        case_insensitive: ci,
                    },
                    DataType::Bool,
                )
            }
            E::Cast { expr, data_type, .. } if catalog_type(data_type).is_some() => {
                let (x, xt) = self.expr_in(expr, scope, agg)?;
                match catalog_type(data_type).expect("guard") {
                    CatalogType::RegClass if xt.is_string() => (
                        self.catalog_lookup(
                            x,
                            CatalogView::relation_oids,
                            LookupMiss::UndefinedRelation,
                        )?,
                        DataType::Int8,
                    ),
                    CatalogType::RegClass => (
                        self.catalog_lookup(x, CatalogView::relation_names, LookupMiss::Echo)?,
                        DataType::Text,
                    ),
                    CatalogType::RegNamespace if xt.is_string() => (
                        self.catalog_lookup(x, CatalogView::namespace_oids, LookupMiss::Null)?,
                        DataType::Int8,
                    ),
                    CatalogType::RegNamespace => (
                        self.catalog_lookup(x, CatalogView::namespace_names, LookupMiss::Echo)?,
                        DataType::Text,
                    ),
                    CatalogType::RegType => (
                        Expr::Func(
                            Func::FormatType,
                            vec![x, Expr::Literal(Value::Null)],
                            DataType::Text,
                        ),
                        DataType::Text,
                    ),
                    CatalogType::Oid => (Expr::Cast(Box::new(x), DataType::Int8), DataType::Int8),
                    CatalogType::Name => (Expr::Cast(Box::new(x), DataType::Text), DataType::Text),
                }
            }
            E::AnyOp { left, compare_op, right, .. } | E::AllOp { left, compare_op, right } => {
                let all = matches!(e, E::AllOp { .. });
                let op = match compare_op {
                    ast::BinaryOperator::Eq => CmpOp::Eq,
                    ast::BinaryOperator::NotEq => CmpOp::NotEq,
                    ast::BinaryOperator::Lt => CmpOp::Lt,
                    ast::BinaryOperator::LtEq => CmpOp::LtEq,
                    ast::BinaryOperator::Gt => CmpOp::Gt,
                    ast::BinaryOperator::GtEq => CmpOp::GtEq,
                    other => return Err(SqlError::unsupported(format!("operator {other} ANY"))),
                };
                let (x, xt) = self.expr_in(left, scope, agg)?;
                if let E::Subquery(q) = &**right
                    && op == CmpOp::Eq
                    && !all
                {
                    let planned = self.subquery(q, scope)?;
                    if planned.columns.len() != 1 {
                        return Err(SqlError::new(
                            sqlstate::SYNTAX_ERROR,
                            "subquery has too many columns",
                        ));
                    }
                    let plan = Arc::new(planned.node);
                    return Ok((
                        Expr::InSubquery { expr: Box::new(x), plan, negated: false },
                        DataType::Bool,
                    ));
                }
                let (array, _) = self.expr_in(right, scope, agg)?;
                (
                    Expr::ArrayCompare {
                        expr: Box::new(x),
                        array: Box::new(array),
                        op,
                        all,
                        elem: xt,
                    },
                    DataType::Bool,
                )
            }
            E::CompoundFieldAccess { root, access_chain } => {
                let [ast::AccessExpr::Subscript(ast::Subscript::Index { index })] =
                    access_chain.as_slice()
                else {
                    return Err(SqlError::unsupported(format!("expression {e}")));
                };
                let (array, _) = self.expr_in(root, scope, agg)?;
                let (index, _) = self.expr_in(index, scope, agg)?;
                let elem = array_element_type(root);
                (Expr::Func(Func::ArrayElement, vec![array, index], elem.clone()), elem)
            }
            E::Cast { expr, data_type: ast::DataType::Array(_), .. } => {
                // Arrays are their text form (see `functions::parse_array`).
                let (x, _) = self.expr_in(expr, scope, agg)?;
                (Expr::Cast(Box::new(x), DataType::Text), DataType::Text)
            }
            E::Collate { expr, collation } => {
                let parts = name_parts(collation)?;
                match parts.last().map(String::as_str) {
                    Some("default" | "C" | "POSIX" | "c" | "posix") => {
                        self.expr_in(expr, scope, agg)?
                    }
                    _ => {
                        return Err(SqlError::new(
                            sqlstate::UNDEFINED_OBJECT,
                            format!(
                                "collation \"{collation}\" for encoding \"UTF8\" does not exist"
                            ),
                        ));
                    }
                }
            }
            E::Cast { expr, data_type, .. } => {
                let to = DataType::from_ast(data_type)?;
                let (x, from) = self.expr_in(expr, scope, agg)?;
                // Fold casts of literals now, so bad input fails at bind time.
                if let Expr::Literal(v) = &x {
                    return Ok((Expr::Literal(v.cast_from(&from, &to)?), to));
                }
                let x = if matches!(to, DataType::Char(_)) { x } else { without_padding(x, &from) };
                self.note_param(&x, &to);
                (Expr::Cast(Box::new(x), to.clone()), to)
            }
            E::Case { operand, conditions, else_result, .. } => {
                let operand = match operand {
                    Some(o) => Some(Box::new(self.expr_in(o, scope, agg)?.0)),
                    None => None,
                };
                let mut whens = Vec::new();
                let mut results = Vec::new();
                for c in conditions {
                    let w = if operand.is_some() {
                        self.expr_in(&c.condition, scope, agg)?.0
                    } else {
                        self.boolean(&c.condition, scope, agg, "CASE/WHEN")?
                    };
                    let (t, tt) = self.expr_in(&c.result, scope, agg)?;
                    whens.push((w, t));
                    results.push((tt, is_untyped_literal(&c.result)));
                }
                let otherwise = match else_result {
                    Some(x) => {
                        let (x, xt) = self.expr_in(x, scope, agg)?;
                        results
                            .push((xt, is_untyped_literal(else_result.as_deref().expect("some"))));
                        Some(Box::new(x))
                    }
                    None => None,
                };
                let types: Vec<DataType> = results.iter().map(|(t, _)| t.clone()).collect();
                let ty = functions::common_type(&types).ok_or_else(|| {
                    SqlError::new(sqlstate::DATATYPE_MISMATCH, "CASE types cannot be matched")
                })?;
                let cast = |x: Expr| Expr::Cast(Box::new(x), ty.clone());
                let whens = whens.into_iter().map(|(w, t)| (w, cast(t))).collect();
                (
                    Expr::Case { operand, whens, otherwise: otherwise.map(|o| Box::new(cast(*o))) },
                    ty,
                )
            }
            E::Function(f) => self.function(f, scope, agg)?,
            E::Extract { field, expr, .. } => {
                let (x, _) = self.expr_in(expr, scope, agg)?;
                let field = Expr::Literal(Value::Text(field.to_string().to_lowercase()));
                (Expr::Func(Func::DatePart, vec![field, x], DataType::Float8), DataType::Float8)
            }
            E::Substring { expr, substring_from, substring_for, .. } => {
                let mut args = vec![self.expr_in(expr, scope, agg)?.0];
                args.push(match substring_from {
                    Some(f) => self.expr_in(f, scope, agg)?.0,
                    None => Expr::Literal(Value::Int(1)),
                });
                if let Some(n) = substring_for {
                    args.push(self.expr_in(n, scope, agg)?.0);
                }
                (Expr::Func(Func::Substr, args, DataType::Text), DataType::Text)
            }
            E::Trim { expr, trim_where, trim_what, .. } => {
                let mut args = vec![self.expr_in(expr, scope, agg)?.0];
                if let Some(w) = trim_what {
                    args.push(self.expr_in(w, scope, agg)?.0);
                }
                let f = match trim_where {
                    Some(ast::TrimWhereField::Leading) => Func::Ltrim,
                    Some(ast::TrimWhereField::Trailing) => Func::Rtrim,
                    _ => Func::Trim,
                };
                (Expr::Func(f, args, DataType::Text), DataType::Text)
            }
            E::Ceil { expr, .. } | E::Floor { expr, .. } => {
                let (x, t) = self.expr_in(expr, scope, agg)?;
                let (f, ty) = functions::resolve(
                    if matches!(e, E::Ceil { .. }) { "ceil" } else { "floor" },
                    &[t],
                )?;
                (Expr::Func(f, vec![x], ty.clone()), ty)
            }
            E::Position { expr, r#in } => {
                let (needle, _) = self.expr_in(expr, scope, agg)?;
                let (hay, _) = self.expr_in(r#in, scope, agg)?;
                (Expr::Func(Func::Strpos, vec![hay, needle], DataType::Int4), DataType::Int4)
            }
            other => return Err(SqlError::unsupported(format!("expression {other}"))),
        })
    }

    fn literal(&mut self, v: &ast::Value) -> Result<(Expr, DataType)> {
        Ok(match v {
            ast::Value::Number(n, _) => {
                if let Ok(i) = n.parse::<i64>() {
                    let ty = if i32::try_from(i).is_ok() { DataType::Int4 } else { DataType::Int8 };
                    (Expr::Literal(Value::Int(i)), ty)
                } else {
                    let ty = DataType::Numeric { precision: None, scale: None };
                    match Value::parse(n, &ty) {
                        Ok(v) => (Expr::Literal(v), ty),
                        // Beyond what our NUMERIC holds (about 28 digits):
                        // read it as double precision rather than fail.
                        Err(e) => match n.parse::<f64>() {
                            Ok(f) if f.is_finite() => {
                                (Expr::Literal(Value::Float(f)), DataType::Float8)
                            }
                            _ => return Err(e),
                        },
                    }
                }
            }
            ast::Value::SingleQuotedString(s)
            | ast::Value::EscapedStringLiteral(s)
            | ast::Value::DollarQuotedString(ast::DollarQuotedString { value: s, .. }) => {
                (Expr::Literal(Value::Text(s.clone())), DataType::Text)
            }
            ast::Value::HexStringLiteral(h) => (
                Expr::Literal(Value::parse(&format!("\\x{h}"), &DataType::Bytea)?),
                DataType::Bytea,
            ),
            ast::Value::Boolean(b) => (Expr::Literal(Value::Bool(*b)), DataType::Bool),
            ast::Value::Null => (Expr::Literal(Value::Null), DataType::Text),
            ast::Value::Placeholder(p) => {
                let n: usize = p
                    .strip_prefix('$')
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n >= 1)
                    .ok_or_else(|| {
                        SqlError::new(sqlstate::SYNTAX_ERROR, format!("invalid parameter {p}"))
                    })?;
                if self.param_types.len() < n {
                    self.param_types.resize(n, None);
                }
                let ty = self.param_types[n - 1].clone().unwrap_or(DataType::Text);
                (Expr::Param(n - 1), ty)
            }
            other => return Err(SqlError::unsupported(format!("literal {other}"))),
        })
    }

    fn binary(
        &mut self,
        l: &ast::Expr,
        op: &ast::BinaryOperator,
        r: &ast::Expr,
        scope: &Scope,
        agg: &mut Option<&mut AggState>,
    ) -> Result<(Expr, DataType)> {
        use ast::BinaryOperator as B;
        let cmp = match op {
            B::Eq => Some(CmpOp::Eq),
            B::NotEq => Some(CmpOp::NotEq),
            B::Lt => Some(CmpOp::Lt),
            B::LtEq => Some(CmpOp::LtEq),
            B::Gt => Some(CmpOp::Gt),
            B::GtEq => Some(CmpOp::GtEq),
            _ => None,
        };
        if let Some(c) = cmp {
            let (le, re) = self.comparison_operands(l, r, scope, agg, c.symbol())?;
            return Ok((Expr::Compare(c, Box::new(le), Box::new(re)), DataType::Bool));
        }
        match op {
            B::And => {
                let a = self.boolean(l, scope, agg, "AND")?;
                let b = self.boolean(r, scope, agg, "AND")?;
                return Ok((Expr::And(Box::new(a), Box::new(b)), DataType::Bool));
            }
            B::Or => {
                let a = self.boolean(l, scope, agg, "OR")?;
                let b = self.boolean(r, scope, agg, "OR")?;
                return Ok((Expr::Or(Box::new(a), Box::new(b)), DataType::Bool));
            }
            B::StringConcat => {
                let (a, at) = self.expr_in(l, scope, agg)?;
                let (b, bt) = self.expr_in(r, scope, agg)?;
                let (a, b) = (without_padding(a, &at), without_padding(b, &bt));
                return Ok((Expr::Concat(Box::new(a), Box::new(b)), DataType::Text));
            }
            _ => {}
        }
        if let Some((negated, case_insensitive)) = regex_operator(op) {
            let (x, _) = self.expr_in(l, scope, agg)?;
            let (p, _) = self.expr_in(r, scope, agg)?;
            let compiled = match &p {
                Expr::Literal(Value::Text(pattern)) => {
                    Some(Arc::new(expr::compile_regex(pattern, case_insensitive)?))
                }
                _ => None,
            };
            return Ok((
                Expr::Regex {
                    expr: Box::new(x),
                    pattern: Box::new(p),
                    compiled,
                    negated,
                    case_insensitive,
                },
                DataType::Bool,
            ));
        }
        let arith = match op {
            B::Plus => ArithOp::Add,
            B::Minus => ArithOp::Sub,
            B::Multiply => ArithOp::Mul,
            B::Divide => ArithOp::Div,
            B::Modulo => ArithOp::Mod,
            other => return Err(SqlError::unsupported(format!("operator {other}"))),
        };
        let (le, lt) = self.expr_in(l, scope, agg)?;
        let (re, rt) = self.expr_in(r, scope, agg)?;
        let (le, lt) = self.coerce(l, le, lt, &rt);
        let (re, rt) = self.coerce(r, re, rt, &lt);
        let symbol = ["+", "-", "*", "/", "%"][arith as usize];
        match (&lt, &rt, arith) {
            (DataType::Date, t, ArithOp::Add | ArithOp::Sub) if t.is_integer() => {
                return Ok((
                    Expr::DateArith { op: arith, left: Box::new(le), right: Box::new(re) },
                    DataType::Date,
                ));
            }
            (t, DataType::Date, ArithOp::Add) if t.is_integer() => {
                return Ok((
                    Expr::DateArith { op: arith, left: Box::new(le), right: Box::new(re) },
                    DataType::Date,
                ));
            }
            (DataType::Date, DataType::Date, ArithOp::Sub) => {
                return Ok((
                    Expr::DateArith { op: arith, left: Box::new(le), right: Box::new(re) },
                    DataType::Int4,
                ));
            }
            _ => {}
        }
        let ty = arithmetic_result_type(&lt, &rt).ok_or_else(|| type_mismatch(symbol, &lt, &rt))?;
        Ok((Expr::Arith(arith, Box::new(le), Box::new(re), ty.clone()), ty))
    }

    fn function(
        &mut self,
        f: &ast::Function,
        scope: &Scope,
        agg: &mut Option<&mut AggState>,
    ) -> Result<(Expr, DataType)> {
        let name = function_name(f);
        if let ("array", ast::FunctionArguments::Subquery(q)) = (name.as_str(), &f.args) {
            let planned = self.subquery(q, scope)?;
            if planned.columns.len() != 1 {
                return Err(SqlError::new(
                    sqlstate::SYNTAX_ERROR,
                    "subquery must return only one column",
                ));
            }
            return Ok((Expr::ArraySubquery(Arc::new(planned.node)), DataType::Text));
        }
        let args = function_args(f);
        if f.over.is_some() {
            return Err(SqlError::unsupported("window functions"));
        }
        if let Some(func) = agg_func(&name) {
            let Some(state) = agg.as_deref_mut() else {
                return Err(SqlError::new(
                    sqlstate::GROUPING_ERROR,
                    format!("aggregate functions are not allowed here: {name}"),
                ));
            };
            let input = state.input.clone();
            let distinct = is_distinct_call(f);
            let (func, bound, ty) =
                if func == AggFunc::Count && matches!(args.as_slice(), [None] | []) {
                    (AggFunc::CountStar, vec![], DataType::Int8)
                } else {
                    let mut bound = Vec::new();
                    let mut types = Vec::new();
                    for a in &args {
                        let a = a.ok_or_else(|| {
                            SqlError::new(sqlstate::SYNTAX_ERROR, format!("{name}(*) is not valid"))
                        })?;
                        // Aggregate arguments see the input rows, not the groups.
                        let (x, t) = self.expr(a, &input)?;
                        bound.push(x);
                        types.push(t);
                    }
                    let arg_ty = types.first().cloned().ok_or_else(|| {
                        SqlError::new(
                            sqlstate::UNDEFINED_FUNCTION,
                            format!("function {name}() does not exist"),
                        )
                    })?;
                    let numeric = DataType::Numeric { precision: None, scale: None };
                    let ty = match func {
                        AggFunc::Count => DataType::Int8,
                        AggFunc::Sum => match arg_ty {
                            DataType::Int2 | DataType::Int4 => DataType::Int8,
                            DataType::Int8 | DataType::Numeric { .. } => numeric,
                            DataType::Float4 => DataType::Float4,
                            DataType::Float8 => DataType::Float8,
                            other => {
                                return Err(SqlError::new(
                                    sqlstate::UNDEFINED_FUNCTION,
                                    format!("function sum({}) does not exist", other.pg_name()),
                                ));
                            }
                        },
                        AggFunc::Avg => match arg_ty {
                            DataType::Float4 | DataType::Float8 => DataType::Float8,
                            t if t.is_numeric() => numeric,
                            other => {
                                return Err(SqlError::new(
                                    sqlstate::UNDEFINED_FUNCTION,
                                    format!("function avg({}) does not exist", other.pg_name()),
                                ));
                            }
                        },
                        AggFunc::BoolAnd | AggFunc::BoolOr => DataType::Bool,
                        AggFunc::StringAgg => DataType::Text,
                        _ => arg_ty,
                    };
                    (func, bound, ty)
                };
            let call = AggCall { func, args: bound, distinct, ty: ty.clone() };
            state.aggs.push(call);
            return Ok((Expr::Column(state.group_exprs.len() + state.aggs.len() - 1), ty));
        }
        let mut bound = Vec::new();
        let mut types = Vec::new();
        for a in &args {
            let a = a.ok_or_else(|| {
                SqlError::new(sqlstate::SYNTAX_ERROR, format!("{name}(*) is not valid"))
            })?;
            let (x, t) = self.expr_in(a, scope, agg)?;
            bound.push(x);
            types.push(t);
        }
        // pg_get_indexdef(oid [, column, pretty]) and
        // pg_get_constraintdef(oid [, pretty]) read the catalog.
        let definitions: Option<CatalogMap> = match name.as_str() {
            "pg_get_indexdef" if matches!(types.len(), 1 | 3) => {
                Some(CatalogView::index_definitions)
            }
            "pg_get_constraintdef" if matches!(types.len(), 1 | 2) => {
                Some(CatalogView::constraint_definitions)
            }
            _ => None,
        };
        if let Some(map) = definitions {
            // Keyed by "oid:column": column 0 (or none given) is the whole
            // definition, column n an index's n-th key column.
            let mut args = bound.into_iter();
            let oid = args.next().expect("arity checked");
            let column = match (name.as_str(), args.next()) {
                ("pg_get_indexdef", Some(column)) => column,
                _ => Expr::Literal(Value::Int(0)),
            };
            let key = Expr::Concat(
                Box::new(Expr::Concat(
                    Box::new(oid),
                    Box::new(Expr::Literal(Value::Text(":".into()))),
                )),
                Box::new(column),
            );
            return Ok((self.catalog_lookup(key, map, LookupMiss::Null)?, DataType::Text));
        }
        let (func, ty) = functions::resolve(&name, &types)?;
        if !matches!(func, Func::Coalesce | Func::Greatest | Func::Least | Func::Nullif) {
            // Text functions see character(n) as text: without its padding.
            for (b, t) in bound.iter_mut().zip(&types) {
                *b = without_padding(b.clone(), t);
            }
        }
        if matches!(func, Func::Coalesce | Func::Greatest | Func::Least | Func::Nullif) {
            for ((b, t), a) in bound.iter_mut().zip(&types).zip(&args) {
                if *t != ty && a.is_some_and(is_untyped_literal) {
                    *b = Expr::Cast(Box::new(b.clone()), ty.clone());
                }
            }
        }
        Ok((Expr::Func(func, bound, ty.clone()), ty))
    }

    fn subquery(&mut self, q: &ast::Query, scope: &Scope) -> Result<Planned> {
        self.outer.push(scope.clone());
        let planned = self.query(q);
        self.outer.pop();
        planned
    }

    // ----- queries -----

    /// Plans a query.
    pub fn query(&mut self, q: &ast::Query) -> Result<Planned> {
        if let Some(with) = &q.with {
            if with.recursive {
                return Err(SqlError::unsupported("WITH RECURSIVE"));
            }
            self.ctes.push(HashMap::new());
            for cte in &with.cte_tables {
                let mut planned = self.query(&cte.query)?;
                for (c, alias) in planned.columns.iter_mut().zip(&cte.alias.columns) {
                    c.name = ident(&alias.name);
                }
                self.ctes
                    .last_mut()
                    .expect("pushed")
                    .insert(ident(&cte.alias.name), Arc::new(planned));
            }
            let result = self.query_body(q);
            self.ctes.pop();
            return result;
        }
        self.query_body(q)
    }

    fn query_body(&mut self, q: &ast::Query) -> Result<Planned> {
        if q.fetch.is_some() {
            return Err(SqlError::unsupported("FETCH"));
        }
        let for_update = !q.locks.is_empty();
        let order_by: &[ast::OrderByExpr] = match &q.order_by {
            Some(ast::OrderBy { kind: ast::OrderByKind::Expressions(e), .. }) => e,
            Some(_) => return Err(SqlError::unsupported("ORDER BY ALL")),
            None => &[],
        };
        let (limit, offset) = match &q.limit_clause {
            Some(ast::LimitClause::LimitOffset { limit, offset, .. }) => {
                (limit.as_ref(), offset.as_ref().map(|o| &o.value))
            }
            Some(ast::LimitClause::OffsetCommaLimit { .. }) => {
                return Err(SqlError::unsupported("LIMIT offset, count"));
            }
            None => (None, None),
        };
        let mut planned = match &*q.body {
            ast::SetExpr::Select(select) => self.select(select, order_by, for_update)?,
            other => {
                let mut p = self.set_expr(other)?;
                if !order_by.is_empty() {
                    let scope = Scope::of_output(&p.columns, None);
                    let keys = order_by
                        .iter()
                        .map(|o| {
                            let column = match &o.expr {
                                ast::Expr::Value(v) => ordinal(&v.value, p.columns.len())?,
                                e => match self.expr(e, &scope)?.0 {
                                    Expr::Column(i) => i,
                                    _ => {
                                        return Err(SqlError::unsupported(
                                            "ORDER BY expressions on a set operation",
                                        ));
                                    }
                                },
                            };
                            Ok(sort_key(column, o))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    p.node = Node::Sort { input: Box::new(p.node), keys };
                }
                p
            }
        };
        if limit.is_some() || offset.is_some() {
            let empty = Scope::default();
            let mut bind_count = |e: Option<&ast::Expr>| -> Result<Option<Expr>> {
                e.map(|e| {
                    self.expr_as(e, &empty, &DataType::Int8)
                        .map(|(x, _)| Expr::Cast(Box::new(x), DataType::Int8))
                })
                .transpose()
            };
            let limit = bind_count(limit)?;
            let offset = bind_count(offset)?;
            if let Some(l) = &limit {
                planned.node = bounded_sort(planned.node, l, &offset);
            }
            planned.node = Node::Limit { input: Box::new(planned.node), limit, offset };
        }
        Ok(planned)
    }

    fn set_expr(&mut self, body: &ast::SetExpr) -> Result<Planned> {
        match body {
            ast::SetExpr::Select(s) => self.select(s, &[], false),
            ast::SetExpr::Query(q) => self.query(q),
            ast::SetExpr::Values(v) => self.values(v),
            ast::SetExpr::SetOperation { left, op, set_quantifier, right } => {
                let l = self.set_expr(left)?;
                let r = self.set_expr(right)?;
                if l.columns.len() != r.columns.len() {
                    return Err(SqlError::new(
                        sqlstate::SYNTAX_ERROR,
                        "each UNION query must have the same number of columns",
                    ));
                }
                let mut columns = Vec::new();
                for (a, b) in l.columns.iter().zip(&r.columns) {
                    let ty =
                        functions::common_type(&[a.ty.clone(), b.ty.clone()]).ok_or_else(|| {
                            SqlError::new(
                                sqlstate::DATATYPE_MISMATCH,
                                format!(
                                    "UNION types {} and {} cannot be matched",
                                    a.ty.pg_name(),
                                    b.ty.pg_name()
                                ),
                            )
                        })?;
                    columns.push(OutputColumn { name: a.name.clone(), ty });
                }
                let cast_to = |p: Planned, cols: &[OutputColumn]| -> Node {
                    if p.columns.iter().zip(cols).all(|(a, b)| a.ty == b.ty) {
                        return p.node;
                    }
                    let exprs = cols
                        .iter()
                        .enumerate()
                        .map(|(i, c)| Expr::Cast(Box::new(Expr::Column(i)), c.ty.clone()))
                        .collect();
                    Node::Project { input: Box::new(p.node), exprs }
                };
                let op = match op {
                    ast::SetOperator::Union => SetOpKind::Union,
                    ast::SetOperator::Intersect => SetOpKind::Intersect,
                    ast::SetOperator::Except | ast::SetOperator::Minus => SetOpKind::Except,
                };
                let all = matches!(set_quantifier, ast::SetQuantifier::All);
                let node = Node::SetOp {
                    op,
                    all,
                    left: Box::new(cast_to(l, &columns)),
                    right: Box::new(cast_to(r, &columns)),
                };
                Ok(Planned { node, columns })
            }
            other => Err(SqlError::unsupported(format!("query {other}"))),
        }
    }

    fn values(&mut self, v: &ast::Values) -> Result<Planned> {
        let empty = Scope::default();
        let mut rows = Vec::new();
        let mut types: Vec<Vec<DataType>> = Vec::new();
        for row in &v.rows {
            let mut r = Vec::new();
            for (i, e) in row.content.iter().enumerate() {
                let (x, t) = self.expr(e, &empty)?;
                if types.len() <= i {
                    types.push(Vec::new());
                }
                types[i].push(t);
                r.push(x);
            }
            if !rows.is_empty() && r.len() != types.len() {
                return Err(SqlError::new(
                    sqlstate::SYNTAX_ERROR,
                    "VALUES lists must all be the same length",
                ));
            }
            rows.push(r);
        }
        let mut columns = Vec::new();
        for (i, ts) in types.iter().enumerate() {
            let ty = functions::common_type(ts).ok_or_else(|| {
                SqlError::new(sqlstate::DATATYPE_MISMATCH, "VALUES types cannot be matched")
            })?;
            columns.push(OutputColumn { name: format!("column{}", i + 1), ty });
        }
        for r in &mut rows {
            for (x, c) in r.iter_mut().zip(&columns) {
                *x = Expr::Cast(Box::new(x.clone()), c.ty.clone());
            }
        }
        Ok(Planned { node: Node::Values { rows }, columns })
    }

    /// Plans a table reference: a CTE, a catalog table, or a subquery.
    fn table_factor(&mut self, f: &ast::TableFactor, for_update: bool) -> Result<(Node, Scope)> {
        match f {
            ast::TableFactor::Table { name: ast_name, alias, args: None, .. } => {
                let alias_name = alias.as_ref().map(|a| ident(&a.name));
                let parts = name_parts(ast_name)?;
                if let [name] = parts.as_slice() {
                    let cte = self.ctes.iter().rev().find_map(|scope| scope.get(name).cloned());
                    if let Some(planned) = cte {
                        let mut scope = Scope::of_output(
                            &planned.columns,
                            Some(alias_name.as_deref().unwrap_or(name)),
                        );
                        rename_columns(&mut scope, alias.as_ref());
                        return Ok((planned.node.clone(), scope));
                    }
                }
                if let Some(system_table) = system::resolve(&parts) {
                    let view = self.catalog_view()?;
                    let rows = system_table
                        .rows(&view)
                        .into_iter()
                        .map(|row| row.into_iter().map(Expr::Literal).collect())
                        .collect();
                    let columns: Vec<OutputColumn> = system_table
                        .columns
                        .iter()
                        .map(|(name, ty)| OutputColumn {
                            name: (*name).to_string(),
                            ty: ty.clone(),
                        })
                        .collect();
                    let mut scope = Scope::of_output(
                        &columns,
                        Some(alias_name.as_deref().unwrap_or(system_table.name)),
                    );
                    rename_columns(&mut scope, alias.as_ref());
                    return Ok((Node::Values { rows }, scope));
                }
                let name = object_name(ast_name)?;
                let (table, descriptor) = catalog::require_table_and_bytes(self.txn, &name)?;
                self.tables_read.push((name.clone(), descriptor));
                let mut scope = Scope::of_table(&table, alias_name.as_deref());
                rename_columns(&mut scope, alias.as_ref());
                Ok((Node::Scan { table, access: Access::Full, for_update, needed: None }, scope))
            }
            ast::TableFactor::Derived { lateral: false, subquery, alias, .. } => {
                let planned = self.query(subquery)?;
                let alias_name = alias.as_ref().map(|a| ident(&a.name));
                let mut scope = Scope::of_output(&planned.columns, alias_name.as_deref());
                rename_columns(&mut scope, alias.as_ref());
                Ok((planned.node, scope))
            }
            ast::TableFactor::NestedJoin { table_with_joins, alias: None } => {
                self.plan_from_item(table_with_joins, for_update)
            }
            ast::TableFactor::Table { name, alias, args: Some(args), .. } => {
                let parts = name_parts(name)?;
                let function = match parts.as_slice() {
                    [f] | [_, f] => f.as_str(),
                    _ => "",
                };
                if function != "generate_series" {
                    return Err(SqlError::unsupported(format!("table function {name}")));
                }
                let mut bound = Vec::new();
                let mut types = Vec::new();
                for a in &args.args {
                    let ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) = a else {
                        return Err(SqlError::unsupported(format!("argument {a}")));
                    };
                    // The bounds see enclosing queries, not sibling FROM items.
                    let (x, t) = self.expr(e, &Scope::default())?;
                    bound.push(x);
                    types.push(t);
                }
                let ty = match types.as_slice() {
                    [a, b] | [a, b, _] if types.iter().all(DataType::is_integer) => {
                        if *a == DataType::Int8 || *b == DataType::Int8 {
                            DataType::Int8
                        } else {
                            DataType::Int4
                        }
                    }
                    _ => {
                        let list: Vec<String> = types.iter().map(DataType::pg_name).collect();
                        return Err(SqlError::new(
                            sqlstate::UNDEFINED_FUNCTION,
                            format!("function generate_series({}) does not exist", list.join(", ")),
                        ));
                    }
                };
                let mut bound = bound.into_iter();
                let (start, stop) = (bound.next().expect("two"), bound.next().expect("two"));
                let columns = [OutputColumn { name: "generate_series".into(), ty }];
                let alias_name = alias.as_ref().map(|a| ident(&a.name));
                let mut scope = Scope::of_output(&columns, alias_name.as_deref());
                // A function's alias names its one column too (`FROM generate_series(1, 3) s`).
                if let Some(a) = &alias_name
                    && alias.as_ref().is_some_and(|a| a.columns.is_empty())
                {
                    scope.columns[0].name = a.clone();
                }
                rename_columns(&mut scope, alias.as_ref());
                Ok((Node::Series { start, stop, step: bound.next() }, scope))
            }
            other => Err(SqlError::unsupported(format!("FROM item {other}"))),
        }
    }

    fn plan_from_item(
        &mut self,
        t: &ast::TableWithJoins,
        for_update: bool,
    ) -> Result<(Node, Scope)> {
        let (mut node, mut scope) = self.table_factor(&t.relation, for_update)?;
        for join in &t.joins {
            let (right, rscope) = self.table_factor(&join.relation, for_update)?;
            use ast::JoinOperator as J;
            let (kind, constraint) = match &join.join_operator {
                J::Join(c) | J::Inner(c) => (JoinKind::Inner, Some(c)),
                J::Left(c) | J::LeftOuter(c) => (JoinKind::Left, Some(c)),
                J::Right(c) | J::RightOuter(c) => (JoinKind::Right, Some(c)),
                J::FullOuter(c) => (JoinKind::Full, Some(c)),
                J::CrossJoin(_) => (JoinKind::Inner, None),
                other => return Err(SqlError::unsupported(format!("join {other:?}"))),
            };
            let left_width = scope.columns.len();
            let right_width = rscope.columns.len();
            let combined = scope.clone().concat(rscope.clone());
            let condition = match constraint {
                Some(ast::JoinConstraint::On(e)) => {
                    Some(self.boolean(e, &combined, &mut None, "JOIN/ON")?)
                }
                Some(ast::JoinConstraint::Using(cols)) => {
                    let mut parts = Vec::new();
                    for c in cols {
                        let name = object_name(c)?;
                        let l = scope.resolve(None, &name)?.ok_or_else(|| {
                            SqlError::new(sqlstate::UNDEFINED_COLUMN, format!("column \"{name}\" specified in USING clause does not exist in left table"))
                        })?;
                        let r = rscope.resolve(None, &name)?.ok_or_else(|| {
                            SqlError::new(sqlstate::UNDEFINED_COLUMN, format!("column \"{name}\" specified in USING clause does not exist in right table"))
                        })?;
                        parts.push(Expr::Compare(
                            CmpOp::Eq,
                            Box::new(Expr::Column(l)),
                            Box::new(Expr::Column(left_width + r)),
                        ));
                    }
                    and_all(parts)
                }
                Some(ast::JoinConstraint::Natural) => {
                    return Err(SqlError::unsupported("NATURAL JOIN"));
                }
                Some(ast::JoinConstraint::None) | None => None,
                Some(other) => {
                    return Err(SqlError::unsupported(format!("join constraint {other:?}")));
                }
            };
            node = make_join(node, right, kind, condition, left_width, right_width);
            scope = combined;
        }
        Ok((node, scope))
    }

    fn select(
        &mut self,
        s: &ast::Select,
        order_by: &[ast::OrderByExpr],
        for_update: bool,
    ) -> Result<Planned> {
        if !matches!(s.group_by, ast::GroupByExpr::Expressions(_, ref m) if m.is_empty()) {
            return Err(SqlError::unsupported("GROUP BY ALL or modifiers"));
        }
        // FROM
        let (mut node, scope) = if s.from.is_empty() {
            (Node::Values { rows: vec![vec![]] }, Scope::default())
        } else {
            let mut items = s.from.iter();
            let first = items.next().expect("non-empty");
            let (mut node, mut scope) = self.plan_from_item(first, for_update)?;
            for item in items {
                let (right, rscope) = self.plan_from_item(item, for_update)?;
                let (lw, rw) = (scope.columns.len(), rscope.columns.len());
                node = make_join(node, right, JoinKind::Inner, None, lw, rw);
                scope = scope.concat(rscope);
            }
            (node, scope)
        };
        // WHERE
        if let Some(w) = &s.selection {
            if contains_aggregate(w) {
                return Err(SqlError::new(
                    sqlstate::GROUPING_ERROR,
                    "aggregate functions are not allowed in WHERE",
                ));
            }
            let predicate = self.boolean(w, &scope, &mut None, "WHERE")?;
            node = with_filter(node, predicate);
        }
        node = choose_join_methods(node);
        let group_asts = match &s.group_by {
            ast::GroupByExpr::Expressions(e, _) => e.clone(),
            ast::GroupByExpr::All(_) => unreachable!("rejected above"),
        };
        let aggregated = !group_asts.is_empty()
            || s.projection.iter().any(|p| match p {
                ast::SelectItem::UnnamedExpr(e)
                | ast::SelectItem::ExprWithAlias { expr: e, .. } => contains_aggregate(e),
                _ => false,
            })
            || s.having.as_ref().is_some_and(contains_aggregate)
            || order_by.iter().any(|o| contains_aggregate(&o.expr));

        let mut agg_state = None;
        let out_scope;
        if aggregated {
            let mut group_exprs = Vec::new();
            for g in &group_asts {
                // GROUP BY may name an output column by position.
                let g = match g {
                    ast::Expr::Value(v) => {
                        let i = ordinal(&v.value, s.projection.len())?;
                        match &s.projection[i] {
                            ast::SelectItem::UnnamedExpr(e)
                            | ast::SelectItem::ExprWithAlias { expr: e, .. } => e.clone(),
                            _ => return Err(SqlError::unsupported("GROUP BY position of *")),
                        }
                    }
                    g => g.clone(),
                };
                group_exprs.push(self.expr(&g, &scope)?.0);
            }
            agg_state = Some(AggState {
                input: scope.clone(),
                group_asts: group_asts.clone(),
                group_exprs,
                aggs: Vec::new(),
            });
            out_scope = Scope::default();
        } else {
            out_scope = scope.clone();
        }

        // The select list.
        let mut exprs = Vec::new();
        let mut columns = Vec::new();
        for item in &s.projection {
            match item {
                ast::SelectItem::Wildcard(_) | ast::SelectItem::QualifiedWildcard(..) => {
                    if aggregated {
                        return Err(SqlError::new(
                            sqlstate::GROUPING_ERROR,
                            "SELECT * is not allowed with GROUP BY or aggregates",
                        ));
                    }
                    let qualifier = match item {
                        ast::SelectItem::QualifiedWildcard(
                            ast::SelectItemQualifiedWildcardKind::ObjectName(n),
                            _,
                        ) => Some(object_name(n)?),
                        _ => None,
                    };
                    let mut any = false;
                    for (i, c) in scope.columns.iter().enumerate() {
                        if c.hidden
                            || qualifier.as_ref().is_some_and(|q| c.table.as_deref() != Some(q))
                        {
                            continue;
                        }
                        any = true;
                        exprs.push(Expr::Column(i));
                        columns.push(OutputColumn { name: c.name.clone(), ty: c.ty.clone() });
                    }
                    if let (Some(q), false) = (qualifier, any) {
                        return Err(SqlError::new(
                            sqlstate::UNDEFINED_TABLE,
                            format!("missing FROM-clause entry for table \"{q}\""),
                        ));
                    }
                }
                ast::SelectItem::UnnamedExpr(e)
                | ast::SelectItem::ExprWithAlias { expr: e, .. } => {
                    let (x, ty) = self.expr_in(e, &out_scope, &mut agg_state.as_mut())?;
                    let name = match item {
                        ast::SelectItem::ExprWithAlias { alias, .. } => ident(alias),
                        _ => output_name(e),
                    };
                    exprs.push(x);
                    columns.push(OutputColumn { name, ty });
                }
                other => return Err(SqlError::unsupported(format!("select item {other}"))),
            }
        }
        // HAVING
        let having = match &s.having {
            Some(h) => {
                if !aggregated {
                    return Err(SqlError::unsupported("HAVING without GROUP BY or aggregates"));
                }
                Some(self.boolean(h, &out_scope, &mut agg_state.as_mut(), "HAVING")?)
            }
            None => None,
        };
        // ORDER BY: output names and positions first, then expressions over
        // the input, computed as hidden extra columns.
        let visible = exprs.len();
        let distinct = match &s.distinct {
            None | Some(ast::Distinct::All) => false,
            Some(ast::Distinct::Distinct) => true,
            Some(ast::Distinct::On(_)) => return Err(SqlError::unsupported("DISTINCT ON")),
        };
        let mut keys = Vec::new();
        for o in order_by {
            let by_name = match &o.expr {
                // An output name wins over an input column of the same name.
                ast::Expr::Identifier(i) => columns.iter().position(|c| c.name == ident(i)),
                ast::Expr::Value(v) => Some(ordinal(&v.value, visible)?),
                _ => None,
            };
            let column = match by_name {
                Some(c) => c,
                None => {
                    let (x, _) = self.expr_in(&o.expr, &out_scope, &mut agg_state.as_mut())?;
                    match exprs.iter().position(|e| same_expr(e, &x)) {
                        Some(c) => c,
                        None if distinct => {
                            return Err(SqlError::new(
                                sqlstate::INVALID_COLUMN_REFERENCE,
                                "for SELECT DISTINCT, ORDER BY expressions must appear in select list",
                            ));
                        }
                        None => {
                            exprs.push(x);
                            exprs.len() - 1
                        }
                    }
                }
            };
            keys.push(sort_key(column, o));
        }
        if let Some(state) = agg_state {
            let streaming =
                !state.group_exprs.is_empty() && arrives_grouped(&node, &state.group_exprs);
            node = Node::Aggregate {
                input: Box::new(node),
                group_by: state.group_exprs,
                aggs: state.aggs,
                streaming,
            };
            if let Some(h) = having {
                node = Node::Filter { input: Box::new(node), predicate: h };
            }
        }
        let hidden = exprs.len() > visible;
        node = Node::Project { input: Box::new(node), exprs };
        if distinct {
            node = Node::Distinct { input: Box::new(node) };
        }
        if !keys.is_empty() && !provide_order(&mut node, &keys, true) {
            node = Node::Sort { input: Box::new(node), keys };
        }
        if hidden {
            node = Node::Project {
                input: Box::new(node),
                exprs: (0..visible).map(Expr::Column).collect(),
            };
        }
        Ok(Planned { node, columns })
    }
}

/// Whether two bound expressions compute the same thing. The `Debug` form of a
/// bound expression spells out its whole structure (operators, column
/// positions, literals, types, subquery plans), so equal text means equal
/// expressions; it is used only to reuse a select-list column for ORDER BY.
fn same_expr(a: &Expr, b: &Expr) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

fn rename_columns(scope: &mut Scope, alias: Option<&ast::TableAlias>) {
    if let Some(a) = alias {
        for (c, name) in scope.columns.iter_mut().filter(|c| !c.hidden).zip(&a.columns) {
            c.name = ident(&name.name);
        }
    }
}

fn ordinal(v: &ast::Value, width: usize) -> Result<usize> {
    match v {
        ast::Value::Number(n, _) => match n.parse::<usize>() {
            Ok(i) if i >= 1 && i <= width => Ok(i - 1),
            _ => Err(SqlError::new(
                sqlstate::INVALID_COLUMN_REFERENCE,
                format!("position {n} is not in select list"),
            )),
        },
        _ => Err(SqlError::unsupported(format!("ORDER BY {v}"))),
    }
}

fn sort_key(column: usize, o: &ast::OrderByExpr) -> SortKey {
    let desc = o.options.sort.as_ref().is_some_and(|s| matches!(s, ast::OrderBySort::Desc));
    // PostgreSQL: NULLs sort as larger than everything by default.
    let nulls_first = o.options.nulls_first.unwrap_or(desc);
    SortKey { column, desc, nulls_first }
}

/// A filter above `node`. A single-table scan gets an access path from the
/// whole predicate (a filter already on the scan is merged in first); over a
/// join, the conjuncts that can move below it do (see [`Place`]), the rest
/// stay above.
fn with_filter(node: Node, predicate: Expr) -> Node {
    match node {
        Node::Scan { table, for_update, needed, .. } => {
            let access = choose_access(&table, &predicate);
            let scan = Node::Scan { table, access, for_update, needed };
            Node::Filter { input: Box::new(scan), predicate }
        }
        Node::Filter { input, predicate: first } if matches!(*input, Node::Scan { .. }) => {
            with_filter(*input, Expr::And(Box::new(first), Box::new(predicate)))
        }
        Node::Join { left, right, kind, equi, on, left_width, right_width } => {
            let mut parts = Vec::new();
            conjuncts(predicate, &mut parts);
            let mut above = Vec::new();
            let mut join = JoinParts { equi, on: on.into_iter().collect(), ..JoinParts::default() };
            for p in parts {
                match (Place::of(&p, left_width), kind) {
                    // Filtering the preserved side of an outer join before
                    // or after it is the same; the other side is not.
                    (Some(Place::Left), JoinKind::Inner | JoinKind::Left) => join.left.push(p),
                    (Some(Place::Right), JoinKind::Inner | JoinKind::Right) => {
                        join.push_right(p, left_width)
                    }
                    // WHERE over an inner join is part of its condition.
                    (Some(_), JoinKind::Inner) => join.push_condition(p, left_width),
                    _ => above.push(p),
                }
            }
            let node = join.into_node(*left, *right, kind, left_width, right_width);
            match and_all(above) {
                Some(predicate) => Node::Filter { input: Box::new(node), predicate },
                None => node,
            }
        }
        other => Node::Filter { input: Box::new(other), predicate },
    }
}

/// Where a conjunct over a join's row (left columns, then right columns) can
/// be evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Left,
    Right,
    Both,
}

impl Place {
    /// `None` for a conjunct that reads no column or runs a subquery: it
    /// stays where it was written.
    fn of(e: &Expr, left_width: usize) -> Option<Place> {
        let mut cols = Vec::new();
        columns_read(e, &mut cols);
        if cols.is_empty() || cols.contains(&usize::MAX) {
            None
        } else if cols.iter().all(|&c| c < left_width) {
            Some(Place::Left)
        } else if cols.iter().all(|&c| c >= left_width) {
            Some(Place::Right)
        } else {
            Some(Place::Both)
        }
    }
}

/// A join being assembled: conjuncts for each side, equality keys and the
/// rest of the condition.
#[derive(Default)]
struct JoinParts {
    /// Filters of the left input.
    left: Vec<Expr>,
    /// Filters of the right input, over its own columns.
    right: Vec<Expr>,
    equi: Vec<(Expr, Expr)>,
    on: Vec<Expr>,
}

impl JoinParts {
    fn push_right(&mut self, mut p: Expr, left_width: usize) {
        shift_columns(&mut p, left_width);
        self.right.push(p);
    }

    /// Adds a conjunct of the join condition: an equality of a left-only and
    /// a right-only expression becomes a hash key.
    fn push_condition(&mut self, p: Expr, left_width: usize) {
        if let Expr::Compare(CmpOp::Eq, a, b) = &p {
            let (pa, pb) = (Place::of(a, left_width), Place::of(b, left_width));
            let pair = match (pa, pb) {
                (Some(Place::Left), Some(Place::Right)) => Some(((**a).clone(), (**b).clone())),
                (Some(Place::Right), Some(Place::Left)) => Some(((**b).clone(), (**a).clone())),
                _ => None,
            };
            if let Some((l, mut r)) = pair {
                shift_columns(&mut r, left_width);
                self.equi.push((l, r));
                return;
            }
        }
        self.on.push(p);
    }

    fn into_node(
        self,
        left: Node,
        right: Node,
        kind: JoinKind,
        left_width: usize,
        right_width: usize,
    ) -> Node {
        let left = match and_all(self.left) {
            Some(p) => with_filter(left, p),
            None => left,
        };
        let right = match and_all(self.right) {
            Some(p) => with_filter(right, p),
            None => right,
        };
        Node::Join {
            left: Box::new(left),
            right: Box::new(right),
            kind,
            equi: self.equi,
            on: and_all(self.on),
            left_width,
            right_width,
        }
    }
}

/// A join of `left` and `right` on `condition`. Conjuncts over one side move
/// into it where that keeps the join's meaning: both sides of an inner join,
/// the non-preserved side of an outer join (an ON conjunct filters the rows
/// that may match, not the preserved rows).
fn make_join(
    left: Node,
    right: Node,
    kind: JoinKind,
    condition: Option<Expr>,
    left_width: usize,
    right_width: usize,
) -> Node {
    let mut parts = Vec::new();
    if let Some(c) = condition {
        conjuncts(c, &mut parts);
    }
    let mut join = JoinParts::default();
    for p in parts {
        match (Place::of(&p, left_width), kind) {
            (Some(Place::Left), JoinKind::Inner | JoinKind::Right) => join.left.push(p),
            (Some(Place::Right), JoinKind::Inner | JoinKind::Left) => {
                join.push_right(p, left_width)
            }
            _ => join.push_condition(p, left_width),
        }
    }
    join.into_node(left, right, kind, left_width, right_width)
}

/// Turns the joins of a FROM/WHERE tree that qualify into index
/// nested-loop joins (see [`index_join`]); runs once the WHERE clause has
/// been pushed down.
fn choose_join_methods(node: Node) -> Node {
    match node {
        Node::Filter { input, predicate } => {
            Node::Filter { input: Box::new(choose_join_methods(*input)), predicate }
        }
        Node::Join { left, right, kind, equi, on, left_width, right_width } => {
            let left = choose_join_methods(*left);
            let right = choose_join_methods(*right);
            index_join(left, right, kind, equi, on, left_width, right_width)
        }
        other => other,
    }
}

/// Whether a plan reads a narrowed part of its tables (a key or index point
/// or range) rather than whole tables: the heuristic for "the outer side is
/// small" (there are no statistics). One lookup per outer row then costs
/// less than reading and hashing the whole inner table. A VALUES list is
/// written out in the statement, so it is small too.
fn is_selective(node: &Node) -> bool {
    match node {
        Node::Values { .. } | Node::Series { .. } => true,
        Node::Scan { access, .. } => !matches!(access, Access::Full),
        Node::Filter { input, .. }
        | Node::Project { input, .. }
        | Node::Distinct { input }
        | Node::Limit { input, .. } => is_selective(input),
        Node::IndexJoin { left, .. } => is_selective(left),
        Node::Aggregate { group_by, .. } => group_by.is_empty(),
        _ => false,
    }
}

/// `Column(c) = v` conjuncts with `v` independent of the row: column `c`
/// holds (a value sort-equal to) `v` in every row that passes.
fn equality_columns(predicate: &Expr) -> HashMap<usize, Expr> {
    let mut parts = Vec::new();
    conjuncts(predicate.clone(), &mut parts);
    let mut out = HashMap::new();
    for p in parts {
        if let Expr::Compare(CmpOp::Eq, a, b) = p {
            match (*a, *b) {
                (Expr::Column(c), v) | (v, Expr::Column(c)) if v.is_row_independent() => {
                    out.entry(c).or_insert(v);
                }
                _ => {}
            }
        }
    }
    out
}

/// How an index nested-loop join reads its inner table.
struct Lookup {
    table: Arc<Table>,
    right_filter: Option<Expr>,
    for_update: bool,
    index: u32,
    lookup: Vec<Expr>,
}

/// The lookup an index nested-loop join of `outer` with the table `inner`
/// reads would use, if it qualifies: `outer` [`is_selective`], `inner` is a
/// table scan (perhaps filtered), and an index's leading columns are bound,
/// by join keys (at least one; `equi` pairs outer and inner keys) or by
/// constants of the inner filter: a prefix of the primary key, or all
/// columns of a secondary index. Among those, a full unique key wins, then
/// the longest prefix, then the primary key. A partly bound secondary index
/// is not used: its rows would come in index order rather than in the
/// primary-key order the hash join's inner side yields.
///
/// Lookups find the rows whose key columns are sort-equal to the outer
/// values cast exactly to the column types ([`crate::exec::exact_key_value`]),
/// which is the hash join's `group_eq` matching; the keys and the filter are
/// checked again on every row read anyway.
fn choose_lookup(outer: &Node, inner: &Node, equi: &[(Expr, Expr)]) -> Option<Lookup> {
    if equi.is_empty() || !is_selective(outer) {
        return None;
    }
    let (table, right_filter, for_update) = match inner {
        Node::Scan { table, for_update, .. } => (table.clone(), None, *for_update),
        Node::Filter { input, predicate } => match &**input {
            Node::Scan { table, for_update, .. } => {
                (table.clone(), Some(predicate.clone()), *for_update)
            }
            _ => return None,
        },
        _ => return None,
    };
    // What the outer row fixes of the inner row's columns.
    let mut bound: HashMap<usize, (Expr, bool)> = HashMap::new();
    for (l, r) in equi {
        if let Expr::Column(c) = r {
            bound.entry(*c).or_insert((l.clone(), true));
        }
    }
    if let Some(f) = &right_filter {
        for (c, v) in equality_columns(f) {
            bound.entry(c).or_insert((v, false));
        }
    }
    let candidates = std::iter::once((PRIMARY, &table.primary_key, true))
        .chain(table.indexes.iter().map(|i| (i.id, &i.columns, i.unique)));
    // (a full unique key, columns bound, the primary key): greater is better.
    type Score = (bool, usize, bool);
    let mut best: Option<(Score, u32, Vec<Expr>)> = None;
    for (id, columns, unique) in candidates {
        let n = columns.iter().take_while(|c| bound.contains_key(c)).count();
        let joins = columns[..n].iter().any(|c| bound[c].1);
        let full = n == columns.len();
        if !joins || (id != PRIMARY && !full) {
            continue;
        }
        let score = (full && unique, n, id == PRIMARY);
        if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
            let lookup = columns[..n].iter().map(|c| bound[c].0.clone()).collect();
            best = Some((score, id, lookup));
        }
    }
    let (_, index, lookup) = best?;
    Some(Lookup { table, right_filter, for_update, index, lookup })
}

/// Rewrites every column reference `c` to `f(c)`.
fn map_columns(e: &mut Expr, f: &dyn Fn(usize) -> usize) {
    if let Expr::Column(c) = e {
        *c = f(*c);
    }
    for child in e.children_mut() {
        map_columns(child, f);
    }
}

/// An index nested-loop join (see [`choose_lookup`]) of `left` with the
/// table `right` reads if that qualifies; for an inner join, else of `right`
/// with the table `left` reads, under a projection that puts the columns
/// back in left-then-right order (only when ON runs no subquery, whose
/// references to the joined row would have to move too). Otherwise the hash
/// (or plain nested-loop) join.
fn index_join(
    left: Node,
    right: Node,
    kind: JoinKind,
    equi: Vec<(Expr, Expr)>,
    on: Option<Expr>,
    left_width: usize,
    right_width: usize,
) -> Node {
    if matches!(kind, JoinKind::Inner | JoinKind::Left)
        && let Some(l) = choose_lookup(&left, &right, &equi)
    {
        return Node::IndexJoin {
            left: Box::new(left),
            table: l.table,
            index: l.index,
            lookup: l.lookup,
            right_filter: l.right_filter,
            kind,
            equi,
            on,
            left_width,
            right_width,
            for_update: l.for_update,
        };
    }
    let swappable = kind == JoinKind::Inner
        && on.as_ref().is_none_or(|on| {
            let mut cols = Vec::new();
            columns_read(on, &mut cols);
            !cols.contains(&usize::MAX)
        });
    let swapped: Vec<(Expr, Expr)> = equi.iter().map(|(l, r)| (r.clone(), l.clone())).collect();
    if swappable && let Some(l) = choose_lookup(&right, &left, &swapped) {
        let on = on.map(|mut on| {
            map_columns(&mut on, &|c| {
                if c < left_width { c + right_width } else { c - left_width }
            });
            on
        });
        let join = Node::IndexJoin {
            left: Box::new(right),
            table: l.table,
            index: l.index,
            lookup: l.lookup,
            right_filter: l.right_filter,
            kind,
            equi: swapped,
            on,
            left_width: right_width,
            right_width: left_width,
            for_update: l.for_update,
        };
        let exprs = (right_width..right_width + left_width).chain(0..right_width);
        return Node::Project { input: Box::new(join), exprs: exprs.map(Expr::Column).collect() };
    }
    Node::Join {
        left: Box::new(left),
        right: Box::new(right),
        kind,
        equi,
        on,
        left_width,
        right_width,
    }
}

/// The order a scan yields its rows in: columns whose values ascend (in
/// key order), and the columns its access path fixes by equality. A
/// primary-key scan is in primary-key order; an index scan in the order of
/// its remaining index columns (NULLs first), then of the primary key, since
/// index entries end with it (unique ones only when they hold a NULL, and
/// otherwise the index columns are unique already). The order is total: no
/// two rows agree on all its columns. `None` for at most one row.
fn scan_order(table: &Table, access: &Access) -> Option<(Vec<usize>, Vec<usize>)> {
    let pk = &table.primary_key;
    let (mut order, fixed) = match access {
        Access::PrimaryPoint(_) => return None,
        Access::Full => (pk.clone(), Vec::new()),
        Access::PrimaryRange { eq, .. } => (pk[eq.len()..].to_vec(), pk[..eq.len()].to_vec()),
        Access::IndexEq { index, eq, .. } => {
            let idx = table.indexes.iter().find(|i| i.id == *index)?;
            let mut order = idx.columns[eq.len()..].to_vec();
            order.extend(pk);
            (order, idx.columns[..eq.len()].to_vec())
        }
    };
    let mut seen = std::collections::HashSet::new();
    order.retain(|c| seen.insert(*c));
    Some((order, fixed))
}

/// Whether `node` already yields its rows in the order of `keys` (over its
/// output columns), exactly as a stable sort of them would: then ORDER BY
/// needs no sort, and a LIMIT above stops the scan early. It follows the
/// keys through projections (plain columns only), DISTINCT and GROUP BY
/// columns (both keep the order of first arrival) and filters, down to a
/// single-table scan, and may reverse that scan for descending keys.
///
/// The scan's key order is [`Value::sort_cmp`]'s order for values of one
/// type (the key encoding's invariant, `encoding.rs`), so an ascending key
/// that is a prefix of the scan order is already sorted, and rows equal on
/// it keep the order a stable sort keeps. Columns fixed by equality (in the
/// access path or the filter) hold sort-equal values and do not count. A
/// nullable column (only in secondary indexes) scans NULLs first, so it
/// matches `ASC NULLS FIRST` forward or `DESC NULLS LAST` backward. A
/// backward scan also reverses rows that tie on the keys, so it is taken
/// only when the keys cover the whole scan order (a total order), and never
/// below DISTINCT or an aggregate (which keep the first row of each group,
/// and whose results, `string_agg` or a float sum, depend on input order).
fn provide_order(node: &mut Node, keys: &[SortKey], may_reverse: bool) -> bool {
    let through = |keys: &[SortKey], map: &dyn Fn(usize) -> Option<usize>| {
        keys.iter()
            .map(|k| map(k.column).map(|column| SortKey { column, ..k.clone() }))
            .collect::<Option<Vec<SortKey>>>()
    };
    match node {
        Node::Project { input, exprs } => {
            let Some(keys) = through(keys, &|c| match exprs.get(c) {
                Some(Expr::Column(i)) => Some(*i),
                _ => None,
            }) else {
                return false;
            };
            provide_order(input, &keys, may_reverse)
        }
        Node::Distinct { input } => provide_order(input, keys, false),
        Node::Aggregate { input, group_by, .. } if !group_by.is_empty() => {
            let Some(keys) = through(keys, &|c| match group_by.get(c) {
                Some(Expr::Column(i)) => Some(*i),
                _ => None,
            }) else {
                return false;
            };
            provide_order(input, &keys, false)
        }
        Node::Filter { input, predicate } => match &mut **input {
            Node::Scan { table, access, .. } => {
                let fixed = equality_columns(predicate);
                scan_provides_order(table, access, keys, &fixed, may_reverse)
            }
            other => provide_order(other, keys, may_reverse),
        },
        Node::Scan { table, access, .. } => {
            scan_provides_order(table, access, keys, &HashMap::new(), may_reverse)
        }
        _ => false,
    }
}

fn scan_provides_order(
    table: &Table,
    access: &mut Access,
    keys: &[SortKey],
    fixed_by_filter: &HashMap<usize, Expr>,
    may_reverse: bool,
) -> bool {
    let Some((order, fixed)) = scan_order(table, access) else { return true };
    let is_fixed = |c: &usize| fixed.contains(c) || fixed_by_filter.contains_key(c);
    let order: Vec<usize> = order.into_iter().filter(|c| !is_fixed(c)).collect();
    let keys: Vec<&SortKey> = keys.iter().filter(|k| !is_fixed(&k.column)).collect();
    let Some(first) = keys.first() else { return true };
    let desc = first.desc;
    if desc && (!may_reverse || keys.len() < order.len()) {
        return false;
    }
    for (k, &c) in keys.iter().zip(&order) {
        // NULLs come first forward, last backward.
        let nulls_ok = !table.columns[c].nullable || k.nulls_first != desc;
        if k.column != c || k.desc != desc || !nulls_ok {
            return false;
        }
    }
    match access {
        Access::Full if desc => {
            *access =
                Access::PrimaryRange { eq: Vec::new(), lower: None, upper: None, reverse: true }
        }
        Access::PrimaryRange { reverse, .. } | Access::IndexEq { reverse, .. } => *reverse = desc,
        _ => {}
    }
    true
}

/// Whether the rows of `input` arrive grouped by `group_by`: all plain
/// columns of a single-table scan that, leaving out columns fixed by
/// equality, are a leading part of the scan order (in any arrangement), or
/// include all of it. Rows equal on them are then adjacent, since equal key
/// values encode alike.
fn arrives_grouped(input: &Node, group_by: &[Expr]) -> bool {
    let (table, access, fixed_by_filter) = match input {
        Node::Scan { table, access, .. } => (table, access, HashMap::new()),
        Node::Filter { input, predicate } => match &**input {
            Node::Scan { table, access, .. } => (table, access, equality_columns(predicate)),
            _ => return false,
        },
        _ => return false,
    };
    let mut columns = std::collections::HashSet::new();
    for g in group_by {
        let Expr::Column(c) = g else { return false };
        columns.insert(*c);
    }
    let Some((order, fixed)) = scan_order(table, access) else { return true };
    let is_fixed = |c: &usize| fixed.contains(c) || fixed_by_filter.contains_key(c);
    columns.retain(|c| !is_fixed(c));
    let order: Vec<usize> = order.into_iter().filter(|c| !is_fixed(c)).collect();
    let leading = order.iter().take_while(|c| columns.contains(c)).count();
    leading == columns.len() || leading == order.len()
}

/// A sort under `LIMIT limit OFFSET offset` as a top-N sort; also below the
/// projection that drops hidden ORDER BY columns.
fn bounded_sort(node: Node, limit: &Expr, offset: &Option<Expr>) -> Node {
    match node {
        Node::Sort { input, keys } => {
            Node::TopN { input, keys, limit: limit.clone(), offset: offset.clone() }
        }
        Node::Project { input, exprs } if matches!(*input, Node::Sort { .. }) => {
            Node::Project { input: Box::new(bounded_sort(*input, limit, offset)), exprs }
        }
        other => other,
    }
}

/// Picks an access path for `table` from the conjuncts of `predicate`.
pub fn choose_access(table: &Table, predicate: &Expr) -> Access {
    let mut parts = Vec::new();
    conjuncts(predicate.clone(), &mut parts);
    let mut eq: HashMap<usize, Expr> = HashMap::new();
    let mut lower: HashMap<usize, (Expr, bool)> = HashMap::new();
    let mut upper: HashMap<usize, (Expr, bool)> = HashMap::new();
    for p in &parts {
        let Expr::Compare(op, a, b) = p else { continue };
        let (col, value, op) = match (&**a, &**b) {
            (Expr::Column(c), v) if v.is_row_independent() => (*c, v.clone(), *op),
            (v, Expr::Column(c)) if v.is_row_independent() => (*c, v.clone(), op.flip()),
            _ => continue,
        };
        match op {
            CmpOp::Eq => {
                eq.insert(col, value);
            }
            CmpOp::Gt => {
                lower.insert(col, (value, false));
            }
            CmpOp::GtEq => {
                lower.insert(col, (value, true));
            }
            CmpOp::Lt => {
                upper.insert(col, (value, false));
            }
            CmpOp::LtEq => {
                upper.insert(col, (value, true));
            }
            CmpOp::NotEq => {}
        }
    }
    let pk = &table.primary_key;
    let prefix: Vec<Expr> = pk.iter().map_while(|c| eq.get(c).cloned()).collect();
    if prefix.len() == pk.len() {
        return Access::PrimaryPoint(prefix);
    }
    let next = pk[prefix.len()];
    let (lo, hi) = (lower.get(&next).cloned(), upper.get(&next).cloned());
    if lo.is_some() || hi.is_some() || !prefix.is_empty() {
        // Prefer a unique secondary index fully fixed over a wide key range.
        if prefix.is_empty()
            && let Some(access) = index_access(table, &eq, &lower, &upper, true)
        {
            return access;
        }
        // And an index that fixes more columns than the primary-key prefix
        // when no bound narrows the key range further.
        if lo.is_none()
            && hi.is_none()
            && let Some(access) = index_access(table, &eq, &lower, &upper, false)
            && matches!(&access, Access::IndexEq { eq, .. } if eq.len() > prefix.len())
        {
            return access;
        }
        return Access::PrimaryRange { eq: prefix, lower: lo, upper: hi, reverse: false };
    }
    index_access(table, &eq, &lower, &upper, false).unwrap_or(Access::Full)
}

/// The best secondary index for the equalities `eq` and the bounds
/// `lower`/`upper` (by column): the most leading columns fixed by equality,
/// a full unique key first, then a bound on the next column.
fn index_access(
    table: &Table,
    eq: &HashMap<usize, Expr>,
    lower: &HashMap<usize, (Expr, bool)>,
    upper: &HashMap<usize, (Expr, bool)>,
    unique_only: bool,
) -> Option<Access> {
    let mut best: Option<((bool, usize, bool), &crate::catalog::Index)> = None;
    for index in &table.indexes {
        let n = index.columns.iter().take_while(|c| eq.contains_key(c)).count();
        let bounded =
            index.columns.get(n).is_some_and(|c| lower.contains_key(c) || upper.contains_key(c));
        if n == 0 && !bounded {
            continue;
        }
        let full_unique = index.unique && n == index.columns.len();
        if unique_only && !full_unique {
            continue;
        }
        let score = (full_unique, n, bounded);
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, index));
        }
    }
    best.map(|((_, n, _), index)| {
        let next = index.columns.get(n);
        Access::IndexEq {
            index: index.id,
            eq: index.columns[..n].iter().map(|c| eq[c].clone()).collect(),
            lower: next.and_then(|c| lower.get(c).cloned()),
            upper: next.and_then(|c| upper.get(c).cloned()),
            reverse: false,
        }
    })
}

/// The primary index id, re-exported for the executor.
pub const PRIMARY: u32 = PRIMARY_INDEX;

#[cfg(test)]
mod tests {
    //! Differential tests: each planner choice must return exactly the rows,
    //! in the same order, that the plain plan returns. The plain plan is
    //! forced by writing the query so the choice cannot apply: sort keys as
    //! expressions (`a + 0`, `b || ''`), the inner table behind a derived
    //! table with `OFFSET 0`, a LIMIT outside the sorted derived table.

    use crate::{Database, Session, Value};

    /// A seeded xorshift64*, so a failure replays.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len() as u64) as usize]
        }
    }

    /// The decode masks projection pruning puts on a plan's scans, in plan order.
    fn scan_masks(sql: &str) -> Vec<Option<Vec<bool>>> {
        fn walk(node: &super::Node, out: &mut Vec<Option<Vec<bool>>>) {
            use super::Node as N;
            match node {
                N::Scan { needed, .. } => out.push(needed.as_deref().map(<[bool]>::to_vec)),
                N::Values { .. } | N::Series { .. } => {}
                N::Filter { input, .. }
                | N::Project { input, .. }
                | N::Aggregate { input, .. }
                | N::Sort { input, .. }
                | N::TopN { input, .. }
                | N::Limit { input, .. }
                | N::Distinct { input }
                | N::IndexJoin { left: input, .. } => walk(input, out),
                N::Join { left, right, .. } | N::SetOp { left, right, .. } => {
                    walk(left, out);
                    walk(right, out);
                }
            }
        }
        let db = Database::open_temporary().expect("temporary database");
        db.execute("CREATE TABLE w (id INT PRIMARY KEY, a INT, b TEXT, c TEXT)", &[]).unwrap();
        let mut txn = db.store().begin();
        let mut binder = super::Binder::new(&mut txn);
        let statement = crate::parse(sql).unwrap().remove(0);
        let sqlparser::ast::Statement::Query(q) = statement else { panic!("a query") };
        let mut planned = binder.query(&q).unwrap();
        super::prune_columns(&mut planned.node);
        let mut out = Vec::new();
        walk(&planned.node, &mut out);
        out
    }

    #[test]
    fn scans_decode_only_the_columns_read_above_them() {
        let (t, f) = (true, false);
        assert_eq!(scan_masks("SELECT b FROM w WHERE a > 1"), [Some(vec![f, t, t, f])]);
        assert_eq!(scan_masks("SELECT count(*) FROM w"), [Some(vec![f, f, f, f])]);
        assert_eq!(scan_masks("SELECT * FROM w"), [None]);
        assert_eq!(
            scan_masks("SELECT x.b FROM w x JOIN w y ON x.a = y.id ORDER BY y.c"),
            [Some(vec![f, t, t, f]), Some(vec![t, f, f, t])]
        );
        // A subquery may read any column of the row it is evaluated on.
        assert_eq!(
            scan_masks("SELECT id FROM w x WHERE EXISTS (SELECT 1 FROM w y WHERE y.c = x.c)"),
            [None]
        );
        assert_eq!(scan_masks("SELECT DISTINCT a FROM w"), [Some(vec![f, t, f, f])]);
    }

    fn all_columns(n: usize) -> Vec<super::SortKey> {
        (0..n).map(|column| super::SortKey { column, desc: false, nulls_first: false }).collect()
    }

    fn rows(session: &mut Session, sql: &str) -> Vec<Vec<Value>> {
        match session.execute(sql, &[]) {
            Ok(mut r) => r.pop().expect("a result").rows,
            Err(e) => panic!("{sql}: {e}"),
        }
    }

    fn plan(session: &mut Session, sql: &str) -> String {
        let lines: Vec<String> = rows(session, &format!("EXPLAIN {sql}"))
            .into_iter()
            .map(|r| r[0].to_pg_text())
            .collect();
        lines.join("\n")
    }

    fn fixture(rng: &mut Rng) -> (Database, Session) {
        let db = Database::open_temporary().expect("open");
        let mut s = db.session();
        for ddl in [
            "CREATE TABLE r (a INT, b TEXT, c INT, g INT, PRIMARY KEY (a, b))",
            "CREATE INDEX r_g_c ON r (g, c)",
            "CREATE TABLE o (id INT PRIMARY KEY, x INT, y TEXT, z INT)",
        ] {
            rows(&mut s, ddl);
        }
        let maybe = |rng: &mut Rng, n: u64| {
            if rng.below(4) == 0 { "NULL".to_string() } else { rng.below(n).to_string() }
        };
        let mut values = Vec::new();
        for a in 0..5 {
            for b in ["", "a", "ab", "b", "B"] {
                if rng.below(4) != 0 {
                    let (c, g) = (maybe(rng, 4), maybe(rng, 3));
                    values.push(format!("({a}, '{b}', {c}, {g})"));
                }
            }
        }
        rows(&mut s, &format!("INSERT INTO r VALUES {}", values.join(", ")));
        let mut values = Vec::new();
        for id in 0..12 {
            let y = ["'a'", "'ab'", "'b'", "'zz'", "NULL"][rng.below(5) as usize];
            values.push(format!("({id}, {}, {y}, {})", maybe(rng, 6), maybe(rng, 4)));
        }
        rows(&mut s, &format!("INSERT INTO o VALUES {}", values.join(", ")));
        (db, s)
    }

    fn predicate(rng: &mut Rng) -> String {
        let mut parts = Vec::new();
        for _ in 0..rng.below(3) {
            let k = rng.below(5);
            parts.push(match rng.below(8) {
                0 => format!("a = {k}"),
                1 => format!("a >= {k}"),
                2 => format!("a < {k}"),
                3 => format!("g = {}", k % 3),
                4 => format!("c = {}", k % 4),
                5 => "b = 'ab'".to_string(),
                6 => format!("c < {}", k % 4),
                _ => "c IS NOT NULL".to_string(),
            });
        }
        if parts.is_empty() { String::new() } else { format!(" WHERE {}", parts.join(" AND ")) }
    }

    /// Random ORDER BY keys, plain and as expressions the planner cannot
    /// match to a column.
    fn order_by(rng: &mut Rng) -> (String, String) {
        let mut plain = Vec::new();
        let mut forced = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let (col, expr) = rng
                .pick(&["a|a + 0", "b|b || ''", "c|c + 0", "g|g + 0"])
                .split_once('|')
                .expect("pair");
            let dir = rng.pick(&["", " ASC", " DESC", " DESC NULLS LAST", " NULLS FIRST"]);
            plain.push(format!("{col}{dir}"));
            forced.push(format!("{expr}{dir}"));
        }
        (plain.join(", "), forced.join(", "))
    }

    #[test]
    fn ordered_scans_and_top_n_return_what_a_full_sort_returns() {
        let mut rng = Rng(0x5eed);
        let mut elided = 0;
        for round in 0..6 {
            let (_db, mut s) = fixture(&mut rng);
            for _ in 0..60 {
                let filter = predicate(&mut rng);
                let (keys, forced) = order_by(&mut rng);
                let limit = match rng.below(3) {
                    0 => String::new(),
                    1 => format!(" LIMIT {}", rng.below(6)),
                    _ => format!(" LIMIT {} OFFSET {}", rng.below(6), rng.below(4)),
                };
                let query = format!("SELECT a, b, c, g FROM r{filter} ORDER BY {keys}{limit}");
                let reference = format!(
                    "SELECT * FROM (SELECT a, b, c, g FROM r{filter} ORDER BY {forced} OFFSET 0) s{limit}"
                );
                if !plan(&mut s, &query).contains("Sort") {
                    elided += 1;
                }
                assert_eq!(
                    rows(&mut s, &query),
                    rows(&mut s, &reference),
                    "round {round}: {query}\n{}",
                    plan(&mut s, &query)
                );
            }
        }
        assert!(elided > 20, "only {elided} queries skipped their sort");
    }

    #[test]
    fn access_paths_return_what_a_full_scan_returns() {
        let mut rng = Rng(0xacce55);
        let mut ranges = 0;
        for _ in 0..4 {
            let (_db, mut s) = fixture(&mut rng);
            for _ in 0..60 {
                let mut parts = Vec::new();
                for _ in 0..1 + rng.below(3) {
                    let column = rng.pick(&["a", "c", "g"]);
                    let op = rng.pick(&["=", "<", "<=", ">", ">="]);
                    let value = rng.pick(&["0", "1", "2", "1.5", "2.0", "NULL", "-1"]);
                    parts.push(format!("{column} {op} {value}"));
                }
                let filter = parts.join(" AND ");
                let query = format!("SELECT a, b, c, g FROM r WHERE {filter}");
                let reference =
                    format!("SELECT a, b, c, g FROM (SELECT * FROM r OFFSET 0) r WHERE {filter}");
                if plan(&mut s, &query).contains("(range)") {
                    ranges += 1;
                }
                let (mut got, mut want) = (rows(&mut s, &query), rows(&mut s, &reference));
                got.sort_by(|x, y| crate::exec::compare_rows(x, y, &all_columns(4)));
                want.sort_by(|x, y| crate::exec::compare_rows(x, y, &all_columns(4)));
                assert_eq!(got, want, "{query}\n{}", plan(&mut s, &query));
            }
        }
        assert!(ranges > 40, "only {ranges} range scans");
    }

    #[test]
    fn grouped_input_aggregates_as_hashing_does() {
        let mut rng = Rng(0xa66);
        let mut streamed = 0;
        for _ in 0..4 {
            let (_db, mut s) = fixture(&mut rng);
            for _ in 0..40 {
                let filter = predicate(&mut rng);
                let (cols, forced) = match rng.below(4) {
                    0 => ("a", "a + 0"),
                    1 => ("a, b", "a + 0, b || ''"),
                    2 => ("g, c", "g + 0, c + 0"),
                    _ => ("c", "c + 0"),
                };
                let tail = "count(*), string_agg(b, ','), sum(c)";
                let query = format!("SELECT {cols}, {tail} FROM r{filter} GROUP BY {cols}");
                let reference = format!("SELECT {forced}, {tail} FROM r{filter} GROUP BY {forced}");
                if plan(&mut s, &query).contains("GroupAggregate") {
                    streamed += 1;
                }
                assert_eq!(rows(&mut s, &query), rows(&mut s, &reference), "{query}");
                // Ordered by the groups: the sort is skipped only over a
                // stream or an ordered hash input; the rows are the same.
                let sorted = format!("{query} ORDER BY {cols}");
                let reference = format!("{reference} ORDER BY {forced}");
                assert_eq!(rows(&mut s, &sorted), rows(&mut s, &reference), "{sorted}");
            }
        }
        assert!(streamed > 10, "only {streamed} queries streamed");
    }

    #[test]
    fn index_joins_return_what_hash_joins_return() {
        let mut rng = Rng(0x701);
        let (mut looked_up, mut swapped) = (0, 0);
        for _ in 0..5 {
            let (_db, mut s) = fixture(&mut rng);
            for _ in 0..40 {
                let kind = rng.pick(&["JOIN", "LEFT JOIN"]);
                let on = rng.pick(&[
                    "r.a = o.x",
                    "r.a = o.x AND r.b = o.y",
                    "r.a = o.x AND r.b = o.y AND r.c < 3",
                    "r.g = o.z AND r.c = o.x",
                    "r.a = o.z AND r.g IS NULL",
                    "r.a = o.x + 0.5",
                ]);
                let filter = match rng.below(4) {
                    0 => format!(" WHERE o.id < {}", rng.below(12)),
                    1 => format!(" WHERE o.id >= {} AND r.a = 1", rng.below(12)),
                    2 => format!(" WHERE o.id = {}", rng.below(12)),
                    _ => String::new(),
                };
                let query = format!("SELECT o.id, r.a, r.b, r.c FROM o {kind} r ON {on}{filter}");
                let reference = format!(
                    "SELECT o.id, r.a, r.b, r.c FROM o {kind} (SELECT * FROM r OFFSET 0) r ON {on}{filter}"
                );
                if plan(&mut s, &query).contains("index lookup") {
                    looked_up += 1;
                }
                assert_eq!(
                    rows(&mut s, &query),
                    rows(&mut s, &reference),
                    "{query}\n{}",
                    plan(&mut s, &query)
                );
                // The same inner join written with r first: the lookup
                // swaps the sides, so rows come in o's order; compare sets.
                if kind == "JOIN" {
                    let query = format!("SELECT o.id, r.a, r.b, r.c FROM r JOIN o ON {on}{filter}");
                    let reference = format!(
                        "SELECT o.id, r.a, r.b, r.c FROM (SELECT * FROM r OFFSET 0) r JOIN o ON {on}{filter}"
                    );
                    if plan(&mut s, &query).contains("index lookup") {
                        swapped += 1;
                    }
                    let (mut got, mut want) = (rows(&mut s, &query), rows(&mut s, &reference));
                    got.sort_by(|x, y| crate::exec::compare_rows(x, y, &all_columns(4)));
                    want.sort_by(|x, y| crate::exec::compare_rows(x, y, &all_columns(4)));
                    assert_eq!(got, want, "{query}\n{}", plan(&mut s, &query));
                }
            }
        }
        assert!(looked_up > 30, "only {looked_up} joins looked up");
        assert!(swapped > 10, "only {swapped} joins swapped their sides");
    }
}
