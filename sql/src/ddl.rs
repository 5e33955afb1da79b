//! CREATE/DROP TABLE, CREATE/DROP INDEX and ALTER TABLE, all transactional:
//! they change descriptors and rows through the same transaction as DML.

use sqlparser::ast;

use crate::catalog::{self, Check, Column, Index, PRIMARY_INDEX, Table};
use crate::dml::{index_key, parse_stored_expr, pk_bytes};
use crate::encoding::{decode_row, encode_row};
use crate::error::{Result, SqlError, sqlstate};
use crate::plan::{Binder, Scope, ident, object_name};
use crate::types::{DataType, Value};

/// A notice for the client (`IF NOT EXISTS` that did nothing, ...).
pub type Notice = Option<String>;

fn exists(name: &str) -> SqlError {
    SqlError::new(sqlstate::DUPLICATE_TABLE, format!("relation \"{name}\" already exists"))
}

/// Whether any table has a relation (table or index) named `name`.
fn relation_exists(binder: &mut Binder<'_>, name: &str) -> Result<bool> {
    Ok(catalog::list_tables(binder.txn)?
        .iter()
        .any(|t| t.name == name || t.indexes.iter().any(|i| i.name == name)))
}

fn column_positions(table: &Table, cols: &[ast::IndexColumn]) -> Result<Vec<usize>> {
    cols.iter()
        .map(|c| {
            let name = match &c.column.expr {
                ast::Expr::Identifier(i) => ident(i),
                other => return Err(SqlError::unsupported(format!("index on expression {other}"))),
            };
            if c.column.options.sort.as_ref().is_some_and(|s| matches!(s, ast::OrderBySort::Desc)) {
                return Err(SqlError::unsupported("descending index columns"));
            }
            table.column_index(&name).ok_or_else(|| {
                SqlError::new(
                    sqlstate::UNDEFINED_COLUMN,
                    format!("column \"{name}\" does not exist"),
                )
            })
        })
        .collect()
}

/// A column and what its inline constraints ask for.
struct ColumnSpec {
    column: Column,
    primary: bool,
    unique: bool,
    /// A CHECK: its name, if given, and its SQL text.
    check: Option<(Option<String>, String)>,
}

fn column_def(def: &ast::ColumnDef) -> Result<ColumnSpec> {
    let name = ident(&def.name);
    let ty = DataType::from_ast(&def.data_type)?;
    let mut col = Column { name, ty, nullable: true, default: None, hidden: false };
    let (mut primary, mut unique, mut check) = (false, false, None);
    for opt in &def.options {
        match &opt.option {
            ast::ColumnOption::Null => col.nullable = true,
            ast::ColumnOption::NotNull => col.nullable = false,
            ast::ColumnOption::Default(e) => col.default = Some(e.to_string()),
            ast::ColumnOption::PrimaryKey(_) => primary = true,
            ast::ColumnOption::Unique(_) => unique = true,
            ast::ColumnOption::Check(c) => {
                check = Some((c.name.as_ref().map(ident), c.expr.to_string()))
            }
            other => return Err(SqlError::unsupported(format!("column option {other}"))),
        }
    }
    Ok(ColumnSpec { column: col, primary, unique, check })
}

/// CREATE TABLE.
pub fn create_table(binder: &mut Binder<'_>, ct: &ast::CreateTable) -> Result<Notice> {
    if ct.query.is_some() {
        return Err(SqlError::unsupported("CREATE TABLE AS"));
    }
    let name = object_name(&ct.name)?;
    if relation_exists(binder, &name)? {
        if ct.if_not_exists {
            return Ok(Some(format!("relation \"{name}\" already exists, skipping")));
        }
        return Err(exists(&name));
    }
    let mut columns: Vec<Column> = Vec::new();
    let mut primary_key: Option<Vec<usize>> = None;
    let mut uniques: Vec<(Option<String>, Vec<usize>)> = Vec::new();
    let mut checks: Vec<(Option<String>, String)> = Vec::new();
    let multiple_pk = || {
        SqlError::new(
            sqlstate::INVALID_TABLE_DEFINITION,
            format!("multiple primary keys for table \"{name}\" are not allowed"),
        )
    };
    for def in &ct.columns {
        let ColumnSpec { column: col, primary, unique, check } = column_def(def)?;
        if columns.iter().any(|c| c.name == col.name) {
            return Err(SqlError::new(
                sqlstate::DUPLICATE_COLUMN,
                format!("column \"{}\" specified more than once", col.name),
            ));
        }
        let pos = columns.len();
        columns.push(col);
        if primary {
            if primary_key.is_some() {
                return Err(multiple_pk());
            }
            primary_key = Some(vec![pos]);
        }
        if unique {
            uniques.push((None, vec![pos]));
        }
        if let Some(c) = check {
            checks.push(c);
        }
    }
    let mut table = Table {
        id: 0,
        name: name.clone(),
        columns,
        primary_key: Vec::new(),
        indexes: Vec::new(),
        checks: Vec::new(),
        next_index_id: PRIMARY_INDEX + 1,
    };
    for c in &ct.constraints {
        match c {
            ast::TableConstraint::PrimaryKey(pk) => {
                if primary_key.is_some() {
                    return Err(multiple_pk());
                }
                primary_key = Some(column_positions(&table, &pk.columns)?);
            }
            ast::TableConstraint::Unique(u) => {
                uniques.push((u.name.as_ref().map(ident), column_positions(&table, &u.columns)?))
            }
            ast::TableConstraint::Check(ch) => {
                checks.push((ch.name.as_ref().map(ident), ch.expr.to_string()))
            }
            other => return Err(SqlError::unsupported(format!("constraint {other}"))),
        }
    }
    match primary_key {
        Some(pk) => {
            for &c in &pk {
                table.columns[c].nullable = false;
            }
            table.primary_key = pk;
        }
        None => {
            // A hidden row id keys tables declared without a primary key.
            table.columns.push(Column {
                name: "rowid".into(),
                ty: DataType::Int8,
                nullable: false,
                default: None,
                hidden: true,
            });
            table.primary_key = vec![table.columns.len() - 1];
        }
    }
    for (cname, cols) in uniques {
        let suffix: Vec<&str> = cols.iter().map(|&c| table.columns[c].name.as_str()).collect();
        let iname = cname.unwrap_or_else(|| format!("{name}_{}_key", suffix.join("_")));
        table.indexes.push(Index {
            id: table.next_index_id,
            name: iname,
            columns: cols,
            unique: true,
        });
        table.next_index_id += 1;
    }
    let scope = Scope::of_table(&table, None);
    for (i, (cname, expr)) in checks.into_iter().enumerate() {
        // Bind now so a bad CHECK fails at CREATE time.
        let (_, ty) = binder.expr(&parse_stored_expr(&expr)?, &scope)?;
        if ty != DataType::Bool {
            return Err(SqlError::new(
                sqlstate::DATATYPE_MISMATCH,
                "argument of CHECK must be type boolean",
            ));
        }
        let default_name =
            if i == 0 { format!("{name}_check") } else { format!("{name}_check{i}") };
        table.checks.push(Check { name: cname.unwrap_or(default_name), expr });
    }
    let empty = Scope::default();
    for c in &table.columns {
        if let Some(d) = &c.default {
            binder.expr_as(&parse_stored_expr(d)?, &empty, &c.ty)?;
        }
    }
    table.id = catalog::allocate_table_id(binder.txn)?;
    catalog::put_table(binder.txn, &table)?;
    Ok(None)
}

/// DROP TABLE / DROP INDEX.
pub fn drop(
    binder: &mut Binder<'_>,
    object_type: &ast::ObjectType,
    if_exists: bool,
    names: &[ast::ObjectName],
) -> Result<Notice> {
    let mut notice = None;
    for n in names {
        let name = object_name(n)?;
        match object_type {
            ast::ObjectType::Table => match catalog::get_table(binder.txn, &name)? {
                Some(t) => catalog::drop_table(binder.txn, &t)?,
                None if if_exists => {
                    notice = Some(format!("table \"{name}\" does not exist, skipping"))
                }
                None => {
                    return Err(SqlError::new(
                        sqlstate::UNDEFINED_TABLE,
                        format!("table \"{name}\" does not exist"),
                    ));
                }
            },
            ast::ObjectType::Index => {
                let owner = catalog::list_tables(binder.txn)?
                    .into_iter()
                    .find(|t| t.index_by_name(&name).is_some());
                match owner {
                    Some(t) => {
                        let mut t = (*t).clone();
                        let pos = t.indexes.iter().position(|i| i.name == name).expect("found");
                        let index = t.indexes.remove(pos);
                        let keys: Vec<Vec<u8>> = binder
                            .txn
                            .scan(t.index_range(index.id), false)?
                            .map(|r| r.map(|(k, _)| k))
                            .collect::<std::result::Result<_, _>>()?;
                        for k in keys {
                            binder.txn.delete(&k)?;
                        }
                        catalog::put_table(binder.txn, &t)?;
                    }
                    None if if_exists => {
                        notice = Some(format!("index \"{name}\" does not exist, skipping"))
                    }
                    None => {
                        return Err(SqlError::new(
                            sqlstate::UNDEFINED_OBJECT,
                            format!("index \"{name}\" does not exist"),
                        ));
                    }
                }
            }
            other => return Err(SqlError::unsupported(format!("DROP {other}"))),
        }
    }
    Ok(notice)
}

/// All rows of a table, decoded.
fn all_rows(binder: &mut Binder<'_>, table: &Table) -> Result<Vec<Vec<Value>>> {
    let types = table.column_types();
    binder
        .txn
        .scan(table.index_range(PRIMARY_INDEX), false)?
        .map(|r| r.map_err(SqlError::from).and_then(|(_, v)| decode_row(&v, &types)))
        .collect()
}

/// CREATE [UNIQUE] INDEX, with a backfill of existing rows.
pub fn create_index(binder: &mut Binder<'_>, ci: &ast::CreateIndex) -> Result<Notice> {
    if ci.predicate.is_some() || !ci.include.is_empty() {
        return Err(SqlError::unsupported("partial or covering indexes"));
    }
    let table_name = object_name(&ci.table_name)?;
    let mut table = (*catalog::require_table(binder.txn, &table_name)?).clone();
    let columns = column_positions(&table, &ci.columns)?;
    let name = match &ci.name {
        Some(n) => object_name(n)?,
        None => {
            let cols: Vec<&str> = columns.iter().map(|&c| table.columns[c].name.as_str()).collect();
            format!("{table_name}_{}_idx", cols.join("_"))
        }
    };
    if relation_exists(binder, &name)? {
        if ci.if_not_exists {
            return Ok(Some(format!("relation \"{name}\" already exists, skipping")));
        }
        return Err(exists(&name));
    }
    let index = Index { id: table.next_index_id, name: name.clone(), columns, unique: ci.unique };
    table.next_index_id += 1;
    for row in all_rows(binder, &table)? {
        let pk = pk_bytes(&table, &row);
        let key = index_key(&table, &index, &row, &pk);
        if index.unique && binder.txn.get(&key)?.is_some() {
            let cols: Vec<&str> =
                index.columns.iter().map(|&c| table.columns[c].name.as_str()).collect();
            let vals: Vec<String> = index.columns.iter().map(|&c| row[c].to_pg_text()).collect();
            return Err(SqlError::new(
                sqlstate::UNIQUE_VIOLATION,
                format!("could not create unique index \"{name}\""),
            )
            .with_detail(format!(
                "Key ({})=({}) is duplicated.",
                cols.join(", "),
                vals.join(", ")
            )));
        }
        binder.txn.put(&key, &pk)?;
    }
    table.indexes.push(index);
    catalog::put_table(binder.txn, &table)?;
    Ok(None)
}

/// ALTER TABLE ... ADD COLUMN / DROP COLUMN.
pub fn alter_table(binder: &mut Binder<'_>, at: &ast::AlterTable) -> Result<Notice> {
    let name = object_name(&at.name)?;
    let Some(table) = catalog::get_table(binder.txn, &name)? else {
        if at.if_exists {
            return Ok(Some(format!("relation \"{name}\" does not exist, skipping")));
        }
        return Err(SqlError::new(
            sqlstate::UNDEFINED_TABLE,
            format!("relation \"{name}\" does not exist"),
        ));
    };
    let mut table = (*table).clone();
    let mut notice = None;
    for op in &at.operations {
        match op {
            ast::AlterTableOperation::AddColumn { if_not_exists, column_def: def, .. } => {
                let ColumnSpec { column: col, primary, unique, check } = column_def(def)?;
                if table.column_index(&col.name).is_some() {
                    if *if_not_exists {
                        notice = Some(format!(
                            "column \"{}\" of relation \"{name}\" already exists, skipping",
                            col.name
                        ));
                        continue;
                    }
                    return Err(SqlError::new(
                        sqlstate::DUPLICATE_COLUMN,
                        format!("column \"{}\" of relation \"{name}\" already exists", col.name),
                    ));
                }
                if primary || unique || check.is_some() {
                    return Err(SqlError::unsupported("constraints in ALTER TABLE ADD COLUMN"));
                }
                // Existing rows get the default (or NULL, which NOT NULL refuses).
                let default = match &col.default {
                    Some(d) => {
                        let e =
                            binder.expr_as(&parse_stored_expr(d)?, &Scope::default(), &col.ty)?.0;
                        let limits = crate::exec::Limits::memory(usize::MAX);
                        let mut cx = crate::exec::Cx::new(binder.txn, &[], 0, &limits);
                        e.eval(&[], &mut cx)?.assign(&col.ty)?
                    }
                    None => Value::Null,
                };
                let rows = all_rows(binder, &table)?;
                if default.is_null() && !col.nullable && !rows.is_empty() {
                    return Err(SqlError::new(
                        sqlstate::NOT_NULL_VIOLATION,
                        format!(
                            "column \"{}\" of relation \"{name}\" contains null values",
                            col.name
                        ),
                    ));
                }
                // The hidden row id stays last; the new column goes before it.
                let pos = if table.columns.last().is_some_and(|c| c.hidden) {
                    table.columns.len() - 1
                } else {
                    table.columns.len()
                };
                let old = table.clone();
                table.columns.insert(pos, col);
                remap_positions(&mut table, |c| if c >= pos { c + 1 } else { c });
                rewrite_rows(binder, &old, &table, rows, |mut r| {
                    r.insert(pos, default.clone());
                    r
                })?;
            }
            ast::AlterTableOperation::DropColumn { column_names, if_exists, .. } => {
                for cname in column_names {
                    let cname = ident(cname);
                    let Some(pos) =
                        table.column_index(&cname).filter(|&p| !table.columns[p].hidden)
                    else {
                        if *if_exists {
                            notice = Some(format!(
                                "column \"{cname}\" of relation \"{name}\" does not exist, skipping"
                            ));
                            continue;
                        }
                        return Err(SqlError::new(
                            sqlstate::UNDEFINED_COLUMN,
                            format!("column \"{cname}\" of relation \"{name}\" does not exist"),
                        ));
                    };
                    if table.primary_key.contains(&pos) {
                        return Err(SqlError::new(
                            sqlstate::FEATURE_NOT_SUPPORTED,
                            format!(
                                "cannot drop column \"{cname}\": it is part of the primary key"
                            ),
                        ));
                    }
                    let rows = all_rows(binder, &table)?;
                    let old = table.clone();
                    // Indexes and checks on the column go with it, as in PostgreSQL.
                    let dropped: Vec<Index> = table
                        .indexes
                        .iter()
                        .filter(|i| i.columns.contains(&pos))
                        .cloned()
                        .collect();
                    table.indexes.retain(|i| !i.columns.contains(&pos));
                    table.columns.remove(pos);
                    let scope = Scope::of_table(&table, None);
                    let mut kept = Vec::new();
                    for c in std::mem::take(&mut table.checks) {
                        if binder.expr(&parse_stored_expr(&c.expr)?, &scope).is_ok() {
                            kept.push(c);
                        }
                    }
                    table.checks = kept;
                    remap_positions(&mut table, |c| if c > pos { c - 1 } else { c });
                    for index in &dropped {
                        for row in &rows {
                            binder.txn.delete(&index_key(
                                &old,
                                index,
                                row,
                                &pk_bytes(&old, row),
                            ))?;
                        }
                    }
                    rewrite_rows(binder, &old, &table, rows, |mut r| {
                        r.remove(pos);
                        r
                    })?;
                }
            }
            other => return Err(SqlError::unsupported(format!("ALTER TABLE {other}"))),
        }
    }
    catalog::put_table(binder.txn, &table)?;
    Ok(notice)
}

fn remap_positions(table: &mut Table, f: impl Fn(usize) -> usize) {
    for c in &mut table.primary_key {
        *c = f(*c);
    }
    for i in &mut table.indexes {
        for c in &mut i.columns {
            *c = f(*c);
        }
    }
}

/// Rewrites every row after a column change. Keys keep their bytes (key
/// columns do not change), so only values and index entries are rewritten.
fn rewrite_rows(
    binder: &mut Binder<'_>,
    old: &Table,
    new: &Table,
    rows: Vec<Vec<Value>>,
    f: impl Fn(Vec<Value>) -> Vec<Value>,
) -> Result<()> {
    for row in rows {
        let pk = pk_bytes(old, &row);
        let new_row = f(row);
        let mut value = Vec::new();
        encode_row(&new_row, &mut value);
        let mut key = new.index_prefix(PRIMARY_INDEX);
        key.extend_from_slice(&pk);
        binder.txn.put(&key, &value)?;
    }
    Ok(())
}
