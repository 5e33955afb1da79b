//! INSERT, UPDATE and DELETE, and the index maintenance they share.
//!
//! Rows are written under their primary key; every secondary index gets an
//! entry per row (`catalog.rs` has the layout). A unique index's entry key is
//! the index columns alone when none is NULL, so two transactions inserting
//! the same value write the same key and optimistic validation lets only one
//! commit; the loser gets a serialization failure and, on retry, sees the row
//! and reports the unique violation. NULLs never conflict (the primary key is
//! appended to keep their entries apart), as in PostgreSQL.

use std::sync::Arc;

use sqlparser::ast;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use crate::catalog::{self, Column, Index, PRIMARY_INDEX, Table};
use crate::encoding::{encode_key, encode_row};
use crate::error::{Result, SqlError, sqlstate};
use crate::exec::{self, Cx, Limits, Row};
use crate::expr::{Expr, truth};
use crate::plan::{self, Binder, Node, OutputColumn, Scope, ident, object_name};
use crate::types::{DataType, Value};

/// The result of a data-changing statement.
#[derive(Debug)]
pub struct Changed {
    pub count: u64,
    pub returning: Option<(Vec<OutputColumn>, Vec<Row>)>,
}

impl Changed {
    /// What a describe-only statement reports: its RETURNING columns, no rows.
    fn described(returning: Option<(Vec<OutputColumn>, Vec<Expr>)>) -> Changed {
        Changed { count: 0, returning: returning.map(|(columns, _)| (columns, Vec::new())) }
    }
}

/// The encoded primary-key columns of `row` (without the table prefix).
pub fn pk_bytes(table: &Table, row: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for &c in &table.primary_key {
        encode_key(&mut out, &row[c], &table.columns[c].ty, false);
    }
    out
}

/// The key under which `row` is stored.
pub fn row_key(table: &Table, pk: &[u8]) -> Vec<u8> {
    let mut key = table.index_prefix(PRIMARY_INDEX);
    key.extend_from_slice(pk);
    key
}

/// The key of `row`'s entry in `index`.
pub fn index_key(table: &Table, index: &Index, row: &[Value], pk: &[u8]) -> Vec<u8> {
    let mut key = table.index_prefix(index.id);
    let mut any_null = false;
    for &c in &index.columns {
        any_null |= row[c].is_null();
        encode_key(&mut key, &row[c], &table.columns[c].ty, false);
    }
    if !index.unique || any_null {
        key.extend_from_slice(pk);
    }
    key
}

fn row_text(row: &[Value], table: &Table) -> String {
    let vals: Vec<String> = table
        .visible_columns()
        .map(|(i, _)| if row[i].is_null() { "null".to_string() } else { row[i].to_pg_text() })
        .collect();
    format!("Failing row contains ({}).", vals.join(", "))
}

fn unique_violation(table: &Table, index: Option<&Index>, row: &[Value]) -> SqlError {
    let (name, cols): (String, Vec<usize>) = match index {
        Some(i) => (i.name.clone(), i.columns.clone()),
        None => (format!("{}_pkey", table.name), table.primary_key.clone()),
    };
    let names: Vec<&str> = cols.iter().map(|&c| table.columns[c].name.as_str()).collect();
    let values: Vec<String> = cols.iter().map(|&c| row[c].to_pg_text()).collect();
    SqlError::new(
        sqlstate::UNIQUE_VIOLATION,
        format!("duplicate key value violates unique constraint \"{name}\""),
    )
    .with_detail(format!("Key ({})=({}) already exists.", names.join(", "), values.join(", ")))
}

/// Parses a stored SQL expression (a DEFAULT or CHECK).
pub fn parse_stored_expr(sql: &str) -> Result<ast::Expr> {
    Parser::new(&PostgreSqlDialect {}).try_with_sql(sql).and_then(|mut p| p.parse_expr()).map_err(
        |e| {
            SqlError::new(
                sqlstate::DATA_CORRUPTED,
                format!("stored expression {sql:?} does not parse: {e}"),
            )
        },
    )
}

/// Bound constraints and defaults of a table, ready to apply to rows.
struct RowRules {
    defaults: Vec<Option<Expr>>,
    checks: Vec<(String, Expr)>,
}

fn row_rules(binder: &mut Binder<'_>, table: &Table) -> Result<RowRules> {
    let empty = Scope::default();
    let mut defaults = Vec::new();
    for c in &table.columns {
        defaults.push(match &c.default {
            Some(sql) => Some(binder.expr_as(&parse_stored_expr(sql)?, &empty, &c.ty)?.0),
            None => None,
        });
    }
    let scope = Scope::of_table(table, None);
    let mut checks = Vec::new();
    for check in &table.checks {
        checks.push((check.name.clone(), binder.expr(&parse_stored_expr(&check.expr)?, &scope)?.0));
    }
    Ok(RowRules { defaults, checks })
}

/// Casts and checks a complete new row.
fn validate_row(table: &Table, rules: &RowRules, row: &mut [Value], cx: &mut Cx<'_>) -> Result<()> {
    for (v, c) in row.iter_mut().zip(&table.columns) {
        *v = assign(v, c, table)?;
    }
    for (v, c) in row.iter().zip(&table.columns) {
        if v.is_null() && !c.nullable {
            return Err(SqlError::new(
                sqlstate::NOT_NULL_VIOLATION,
                format!(
                    "null value in column \"{}\" of relation \"{}\" violates not-null constraint",
                    c.name, table.name
                ),
            )
            .with_detail(row_text(row, table)));
        }
    }
    for (name, check) in &rules.checks {
        if truth(&check.eval(row, cx)?)? == Some(false) {
            return Err(SqlError::new(
                sqlstate::CHECK_VIOLATION,
                format!(
                    "new row for relation \"{}\" violates check constraint \"{name}\"",
                    table.name
                ),
            )
            .with_detail(row_text(row, table)));
        }
    }
    Ok(())
}

fn assign(v: &Value, c: &Column, _table: &Table) -> Result<Value> {
    v.assign(&c.ty).map_err(|e| {
        if e.code == sqlstate::CANNOT_COERCE {
            SqlError::new(
                sqlstate::DATATYPE_MISMATCH,
                format!(
                    "column \"{}\" is of type {} but expression is of another type",
                    c.name,
                    c.ty.pg_name()
                ),
            )
        } else {
            e
        }
    })
}

/// A unique index (other than the primary key) whose entry for `row` already
/// belongs to another row.
fn conflicting_index<'t>(
    table: &'t Table,
    row: &[Value],
    pk: &[u8],
    cx: &mut Cx<'_>,
) -> Result<Option<&'t Index>> {
    for index in table.indexes.iter().filter(|i| i.unique) {
        if index.columns.iter().any(|&c| row[c].is_null()) {
            continue;
        }
        let key = index_key(table, index, row, pk);
        if cx.txn.get(&key)?.is_some_and(|owner| owner != pk) {
            return Ok(Some(index));
        }
    }
    Ok(None)
}

fn write_row(table: &Table, row: &[Value], pk: &[u8], cx: &mut Cx<'_>) -> Result<()> {
    let mut value = Vec::new();
    encode_row(row, &mut value);
    cx.txn.put(&row_key(table, pk), &value)?;
    for index in &table.indexes {
        cx.txn.put(&index_key(table, index, row, pk), pk)?;
    }
    Ok(())
}

fn delete_row(table: &Table, row: &[Value], pk: &[u8], cx: &mut Cx<'_>) -> Result<()> {
    cx.txn.delete(&row_key(table, pk))?;
    for index in &table.indexes {
        cx.txn.delete(&index_key(table, index, row, pk))?;
    }
    Ok(())
}

fn returning(
    binder: &mut Binder<'_>,
    table: &Table,
    items: &Option<Vec<ast::SelectItem>>,
) -> Result<Option<(Vec<OutputColumn>, Vec<Expr>)>> {
    let Some(items) = items else { return Ok(None) };
    let scope = Scope::of_table(table, None);
    let mut columns = Vec::new();
    let mut exprs = Vec::new();
    for item in items {
        match item {
            ast::SelectItem::Wildcard(_) => {
                for (i, c) in table.visible_columns() {
                    columns.push(OutputColumn { name: c.name.clone(), ty: c.ty.clone() });
                    exprs.push(Expr::Column(i));
                }
            }
            ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } => {
                let (x, ty) = binder.expr(e, &scope)?;
                let name = match item {
                    ast::SelectItem::ExprWithAlias { alias, .. } => ident(alias),
                    ast::SelectItem::UnnamedExpr(ast::Expr::Identifier(i)) => ident(i),
                    _ => "?column?".to_string(),
                };
                columns.push(OutputColumn { name, ty });
                exprs.push(x);
            }
            other => return Err(SqlError::unsupported(format!("RETURNING {other}"))),
        }
    }
    Ok(Some((columns, exprs)))
}

fn project(exprs: &[Expr], row: &[Value], cx: &mut Cx<'_>) -> Result<Row> {
    exprs.iter().map(|e| e.eval(row, cx)).collect()
}

/// What ON CONFLICT asks for.
enum OnConflict {
    Error,
    Nothing,
    Update { assignments: Vec<(usize, Expr)>, filter: Option<Expr> },
}

/// INSERT. `new_rowid` supplies hidden row ids for tables without a primary key.
pub fn insert(
    binder: &mut Binder<'_>,
    ins: &ast::Insert,
    params: &[Value],
    now: i64,
    limits: &Limits,
    new_rowid: &mut dyn FnMut() -> Result<i64>,
) -> Result<Changed> {
    let ast::TableObject::TableName(name) = &ins.table else {
        return Err(SqlError::unsupported("INSERT into a table function"));
    };
    let table = catalog::require_table(binder.txn, &object_name(name)?)?;
    let targets: Vec<usize> = if ins.columns.is_empty() {
        table.visible_columns().map(|(i, _)| i).collect()
    } else {
        let mut t = Vec::new();
        for c in &ins.columns {
            let name = object_name(c)?;
            let i = table.column_index(&name).filter(|&i| !table.columns[i].hidden).ok_or_else(
                || {
                    SqlError::new(
                        sqlstate::UNDEFINED_COLUMN,
                        format!("column \"{name}\" of relation \"{}\" does not exist", table.name),
                    )
                },
            )?;
            if t.contains(&i) {
                return Err(SqlError::new(
                    sqlstate::DUPLICATE_COLUMN,
                    format!("column \"{name}\" specified more than once"),
                ));
            }
            t.push(i);
        }
        t
    };
    let source =
        ins.source.as_ref().ok_or_else(|| SqlError::unsupported("INSERT without a source"))?;
    // VALUES rows bind each expression against its target column's type, so
    // literals are read as that type; other queries are planned as usual.
    let planned: Node = match &*source.body {
        ast::SetExpr::Values(v) if source.order_by.is_none() && source.limit_clause.is_none() => {
            let empty = Scope::default();
            let mut rows = Vec::new();
            for row in &v.rows {
                if row.content.len() > targets.len() {
                    return Err(SqlError::new(
                        sqlstate::SYNTAX_ERROR,
                        "INSERT has more expressions than target columns",
                    ));
                }
                let mut r = Vec::new();
                for (e, &c) in row.content.iter().zip(&targets) {
                    r.push(match e {
                        ast::Expr::Identifier(i)
                            if i.quote_style.is_none()
                                && i.value.eq_ignore_ascii_case("default") =>
                        {
                            Expr::Literal(Value::Null) // replaced by the default below
                        }
                        e => binder.expr_as(e, &empty, &table.columns[c].ty)?.0,
                    });
                }
                rows.push(r);
            }
            Node::Values { rows }
        }
        _ => {
            let p = binder.query(source)?;
            if p.columns.len() > targets.len() {
                return Err(SqlError::new(
                    sqlstate::SYNTAX_ERROR,
                    "INSERT has more expressions than target columns",
                ));
            }
            p.node
        }
    };
    let rules = row_rules(binder, &table)?;
    let on_conflict = match &ins.on {
        None => OnConflict::Error,
        Some(ast::OnInsert::OnConflict(oc)) => match &oc.action {
            ast::OnConflictAction::DoNothing => OnConflict::Nothing,
            ast::OnConflictAction::DoUpdate(du) => {
                // SET expressions see the existing row, then EXCLUDED.
                let mut scope = Scope::of_table(&table, None);
                let excluded = Scope::of_table(&table, Some("excluded"));
                scope.columns.extend(excluded.columns);
                let mut assignments = Vec::new();
                for a in &du.assignments {
                    let ast::AssignmentTarget::ColumnName(col) = &a.target else {
                        return Err(SqlError::unsupported("tuple assignment"));
                    };
                    let name = object_name(col)?;
                    let c = table.column_index(&name).ok_or_else(|| {
                        SqlError::new(
                            sqlstate::UNDEFINED_COLUMN,
                            format!(
                                "column \"{name}\" of relation \"{}\" does not exist",
                                table.name
                            ),
                        )
                    })?;
                    assignments
                        .push((c, binder.expr_as(&a.value, &scope, &table.columns[c].ty)?.0));
                }
                let filter = du
                    .selection
                    .as_ref()
                    .map(|s| binder.expr(s, &scope).map(|(x, _)| x))
                    .transpose()?;
                OnConflict::Update { assignments, filter }
            }
        },
        Some(other) => return Err(SqlError::unsupported(format!("{other}"))),
    };
    let returning = returning(binder, &table, &ins.returning)?;
    if binder.describe_only {
        return Ok(Changed::described(returning));
    }
    let explicit_default: Vec<Vec<bool>> = match &*source.body {
        ast::SetExpr::Values(v) => v
            .rows
            .iter()
            .map(|r| r.content.iter().map(|e| matches!(e, ast::Expr::Identifier(i) if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default"))).collect())
            .collect(),
        _ => Vec::new(),
    };

    let mut cx = Cx::new(binder.txn, params, now, limits);
    let mut op = exec::build(&planned);
    let mut count = 0;
    let mut returned = Vec::new();
    let mut n = 0;
    while let Some(source_row) = op.next(&mut cx)? {
        let mut row: Row = vec![Value::Null; table.columns.len()];
        let defaults_here = explicit_default.get(n);
        n += 1;
        for (i, (c, d)) in table.columns.iter().zip(&rules.defaults).enumerate() {
            let given = targets.iter().position(|&t| t == i).filter(|&p| p < source_row.len());
            let use_default = match given {
                None => true,
                Some(p) => defaults_here.is_some_and(|d| d.get(p).copied().unwrap_or(false)),
            };
            row[i] = if !use_default {
                source_row[given.expect("given")].clone()
            } else if c.hidden {
                Value::Int(new_rowid()?)
            } else {
                match d {
                    Some(d) => d.eval(&[], &mut cx)?,
                    None => Value::Null,
                }
            };
        }
        validate_row(&table, &rules, &mut row, &mut cx)?;
        let pk = pk_bytes(&table, &row);
        let existing = cx.txn.get(&row_key(&table, &pk))?;
        let clash_index =
            if existing.is_none() { conflicting_index(&table, &row, &pk, &mut cx)? } else { None };
        if existing.is_some() || clash_index.is_some() {
            match &on_conflict {
                OnConflict::Error => return Err(unique_violation(&table, clash_index, &row)),
                OnConflict::Nothing => continue,
                OnConflict::Update { assignments, filter } => {
                    let Some(old_bytes) = existing else {
                        return Err(SqlError::unsupported(
                            "ON CONFLICT DO UPDATE on a secondary unique index",
                        ));
                    };
                    let old = crate::encoding::decode_row(&old_bytes, &table.column_types())?;
                    let mut both = old.clone();
                    both.extend(row.iter().cloned());
                    if let Some(f) = filter
                        && truth(&f.eval(&both, &mut cx)?)? != Some(true)
                    {
                        continue;
                    }
                    let mut new = old.clone();
                    for (c, e) in assignments {
                        new[*c] = e.eval(&both, &mut cx)?;
                    }
                    replace_row(&table, &rules, &old, new, &mut cx, &returning, &mut returned)?;
                    count += 1;
                    continue;
                }
            }
        }
        write_row(&table, &row, &pk, &mut cx)?;
        if let Some((_, exprs)) = &returning {
            returned.push(project(exprs, &row, &mut cx)?);
        }
        count += 1;
    }
    Ok(Changed { count, returning: returning.map(|(cols, _)| (cols, returned)) })
}

/// Replaces `old` by `new`, maintaining keys and indexes.
fn replace_row(
    table: &Table,
    rules: &RowRules,
    old: &[Value],
    mut new: Row,
    cx: &mut Cx<'_>,
    returning: &Option<(Vec<OutputColumn>, Vec<Expr>)>,
    returned: &mut Vec<Row>,
) -> Result<()> {
    validate_row(table, rules, &mut new, cx)?;
    let old_pk = pk_bytes(table, old);
    let new_pk = pk_bytes(table, &new);
    if new_pk != old_pk && cx.txn.get(&row_key(table, &new_pk))?.is_some() {
        return Err(unique_violation(table, None, &new));
    }
    if let Some(index) = conflicting_index(table, &new, &new_pk, cx)? {
        // The entry may be this very row's old one.
        if index_key(table, index, old, &old_pk) != index_key(table, index, &new, &new_pk) {
            return Err(unique_violation(table, Some(index), &new));
        }
    }
    delete_row(table, old, &old_pk, cx)?;
    write_row(table, &new, &new_pk, cx)?;
    if let Some((_, exprs)) = returning {
        returned.push(project(exprs, &new, cx)?);
    }
    Ok(())
}

/// Plans the scan for the rows of `table` matching `selection`.
fn matching_plan(
    binder: &mut Binder<'_>,
    table: &Arc<Table>,
    alias: Option<&str>,
    selection: &Option<ast::Expr>,
) -> Result<Node> {
    let scope = Scope::of_table(table, alias);
    let mut node = Node::Scan {
        table: table.clone(),
        access: plan::Access::Full,
        for_update: false,
        needed: None,
    };
    if let Some(w) = selection {
        let (predicate, ty) = binder.expr(w, &scope)?;
        if ty != DataType::Bool {
            return Err(SqlError::new(
                sqlstate::DATATYPE_MISMATCH,
                format!("argument of WHERE must be type boolean, not type {}", ty.pg_name()),
            ));
        }
        let access = plan::choose_access(table, &predicate);
        node = Node::Filter {
            input: Box::new(Node::Scan {
                table: table.clone(),
                access,
                for_update: false,
                needed: None,
            }),
            predicate,
        };
    }
    Ok(node)
}

/// The rows `node` yields, materialized before any change (so a statement
/// never sees its own writes).
fn matching_rows(
    binder: &mut Binder<'_>,
    node: &Node,
    params: &[Value],
    now: i64,
    limits: &Limits,
) -> Result<Vec<Row>> {
    let mut cx = Cx::new(binder.txn, params, now, limits);
    let mut op = exec::build(node);
    let mut rows = Vec::new();
    while let Some(r) = op.next(&mut cx)? {
        cx.charge(exec::row_size(&r))?;
        rows.push(r);
    }
    Ok(rows)
}

fn target_table(
    binder: &mut Binder<'_>,
    t: &ast::TableWithJoins,
) -> Result<(Arc<Table>, Option<String>)> {
    if !t.joins.is_empty() {
        return Err(SqlError::unsupported("UPDATE/DELETE with joins"));
    }
    match &t.relation {
        ast::TableFactor::Table { name, alias, .. } => Ok((
            catalog::require_table(binder.txn, &object_name(name)?)?,
            alias.as_ref().map(|a| ident(&a.name)),
        )),
        other => Err(SqlError::unsupported(format!("UPDATE/DELETE of {other}"))),
    }
}

/// UPDATE.
pub fn update(
    binder: &mut Binder<'_>,
    up: &ast::Update,
    params: &[Value],
    now: i64,
    limits: &Limits,
) -> Result<Changed> {
    if up.from.is_some() {
        return Err(SqlError::unsupported("UPDATE ... FROM"));
    }
    let (table, alias) = target_table(binder, &up.table)?;
    let scope = Scope::of_table(&table, alias.as_deref());
    let mut assignments = Vec::new();
    for a in &up.assignments {
        let ast::AssignmentTarget::ColumnName(col) = &a.target else {
            return Err(SqlError::unsupported("tuple assignment"));
        };
        let name = col.0.last().map(|p| match p {
            ast::ObjectNamePart::Identifier(i) => ident(i),
            other => other.to_string(),
        });
        let name = name.unwrap_or_default();
        let c =
            table.column_index(&name).filter(|&c| !table.columns[c].hidden).ok_or_else(|| {
                SqlError::new(
                    sqlstate::UNDEFINED_COLUMN,
                    format!("column \"{name}\" of relation \"{}\" does not exist", table.name),
                )
            })?;
        let value = match &a.value {
            ast::Expr::Identifier(i)
                if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default") =>
            {
                None
            }
            e => Some(binder.expr_as(e, &scope, &table.columns[c].ty)?.0),
        };
        assignments.push((c, value));
    }
    let rules = row_rules(binder, &table)?;
    let returning = returning(binder, &table, &up.returning)?;
    let plan = matching_plan(binder, &table, alias.as_deref(), &up.selection)?;
    if binder.describe_only {
        return Ok(Changed::described(returning));
    }
    let rows = matching_rows(binder, &plan, params, now, limits)?;
    let mut cx = Cx::new(binder.txn, params, now, limits);
    let mut returned = Vec::new();
    for old in &rows {
        let mut new = old.clone();
        for (c, e) in &assignments {
            new[*c] = match e {
                Some(e) => e.eval(old, &mut cx)?,
                None => match &rules.defaults[*c] {
                    Some(d) => d.eval(&[], &mut cx)?,
                    None => Value::Null,
                },
            };
        }
        replace_row(&table, &rules, old, new, &mut cx, &returning, &mut returned)?;
    }
    Ok(Changed { count: rows.len() as u64, returning: returning.map(|(cols, _)| (cols, returned)) })
}

/// DELETE.
pub fn delete(
    binder: &mut Binder<'_>,
    del: &ast::Delete,
    params: &[Value],
    now: i64,
    limits: &Limits,
) -> Result<Changed> {
    if del.using.is_some() || !del.tables.is_empty() {
        return Err(SqlError::unsupported("DELETE ... USING"));
    }
    let from = match &del.from {
        ast::FromTable::WithFromKeyword(t) | ast::FromTable::WithoutKeyword(t) => t,
    };
    let [target] = from.as_slice() else {
        return Err(SqlError::unsupported("DELETE from several tables"));
    };
    let (table, alias) = target_table(binder, target)?;
    let returning = returning(binder, &table, &del.returning)?;
    let plan = matching_plan(binder, &table, alias.as_deref(), &del.selection)?;
    if binder.describe_only {
        return Ok(Changed::described(returning));
    }
    let rows = matching_rows(binder, &plan, params, now, limits)?;
    let mut cx = Cx::new(binder.txn, params, now, limits);
    let mut returned = Vec::new();
    for row in &rows {
        delete_row(&table, row, &pk_bytes(&table, row), &mut cx)?;
        if let Some((_, exprs)) = &returning {
            returned.push(project(exprs, row, &mut cx)?);
        }
    }
    Ok(Changed { count: rows.len() as u64, returning: returning.map(|(cols, _)| (cols, returned)) })
}
