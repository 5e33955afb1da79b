//! The system catalogs: `pg_catalog` and `information_schema` tables, as
//! PostgreSQL clients (psql's `\d`, `\dt`, `\l`, drivers, ORMs) query them.
//!
//! They are virtual: the binder turns a reference to one into the rows
//! computed from Strata's own catalog ([`crate::catalog`]) at the reading
//! transaction's snapshot, so they agree with what that transaction sees,
//! uncommitted DDL of its own included. Only what clients need is modelled;
//! the columns are PostgreSQL 15's, in its order, with the same names, and
//! unused ones hold PostgreSQL's values for a plain heap table (`false`,
//! `0`, NULL).
//!
//! Object identifiers are derived, never stored:
//!
//! ```text
//! table      table id << 16                (user table ids start at 100)
//! index      table oid + index id          (the primary key is index 1)
//! type       PostgreSQL's type OIDs        (DataType::oid)
//! namespace  11 pg_catalog, 2200 public, 13000 information_schema
//! catalog    1000 + position in SYSTEM_TABLES
//! ```
//!
//! so an oid is stable for a table's lifetime, and index ids stay below
//! 2^16 (asserted where indexes are created).

use std::collections::HashMap;
use std::sync::Arc;

use strata_txn::Txn;

use crate::catalog::{self, PRIMARY_INDEX, Table};
use crate::error::Result;
use crate::types::{DataType, Value};

/// The `pg_catalog` namespace's oid.
pub const PG_CATALOG: i64 = 11;
/// The `public` namespace's oid: every user table lives there.
pub const PUBLIC: i64 = 2200;
/// The `information_schema` namespace's oid.
pub const INFORMATION_SCHEMA: i64 = 13000;
const NAMESPACES: &[(i64, &str)] =
    &[(PG_CATALOG, "pg_catalog"), (PUBLIC, "public"), (INFORMATION_SCHEMA, "information_schema")];
/// The oid of the one role that owns everything.
pub const OWNER: i64 = 10;
/// The owner's name, as `pg_get_userbyid` reports it.
pub const OWNER_NAME: &str = "strata";
/// The database's name, as `pg_database` and `current_database()` report it.
pub const DATABASE_NAME: &str = "strata";
/// `pg_am` oids of the heap (tables) and btree (indexes) access methods.
const HEAP_AM: i64 = 2;
const BTREE_AM: i64 = 403;
/// The oid of the `default` collation, which text columns carry.
const DEFAULT_COLLATION: i64 = 100;
/// Where catalog table oids start.
const SYSTEM_OID_BASE: i64 = 1000;

// Types of catalog columns. PostgreSQL's `oid`, `name`, `"char"` and array
// types appear as bigint and text: clients read them as text.
const OID: DataType = DataType::Int8;
const NAME: DataType = DataType::Text;
const TEXT: DataType = DataType::Text;
const BOOL: DataType = DataType::Bool;
const INT2: DataType = DataType::Int2;
const INT4: DataType = DataType::Int4;
const FLOAT4: DataType = DataType::Float4;

/// The namespace a catalog table lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schema {
    PgCatalog,
    InformationSchema,
}

impl Schema {
    pub fn name(self) -> &'static str {
        match self {
            Schema::PgCatalog => "pg_catalog",
            Schema::InformationSchema => "information_schema",
        }
    }

    fn oid(self) -> i64 {
        match self {
            Schema::PgCatalog => PG_CATALOG,
            Schema::InformationSchema => INFORMATION_SCHEMA,
        }
    }
}

/// One virtual catalog table.
pub struct SystemTable {
    pub schema: Schema,
    pub name: &'static str,
    pub columns: &'static [(&'static str, DataType)],
    rows: fn(&CatalogView) -> Vec<Vec<Value>>,
}

impl std::fmt::Debug for SystemTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema.name(), self.name)
    }
}

impl SystemTable {
    /// The table's rows as `view` sees the catalog.
    pub fn rows(&self, view: &CatalogView) -> Vec<Vec<Value>> {
        let rows = (self.rows)(view);
        debug_assert!(rows.iter().all(|r| r.len() == self.columns.len()), "{self:?} row width");
        rows
    }

    fn oid(&self) -> i64 {
        let position = SYSTEM_TABLES.iter().position(|t| std::ptr::eq(t, self)).unwrap_or(0);
        SYSTEM_OID_BASE + position as i64
    }
}

/// Resolves a possibly qualified table name (`pg_class`,
/// `pg_catalog.pg_class`, `information_schema.tables`, with an optional
/// leading database name) to a catalog table. As in PostgreSQL, an
/// unqualified name finds `pg_catalog`'s tables before user tables, and
/// `information_schema` must be named.
pub fn resolve(parts: &[String]) -> Option<&'static SystemTable> {
    let (schema, name) = match parts {
        [name] => (Schema::PgCatalog, name),
        [schema, name] | [_, schema, name] => match schema.as_str() {
            "pg_catalog" => (Schema::PgCatalog, name),
            "information_schema" => (Schema::InformationSchema, name),
            _ => return None,
        },
        _ => return None,
    };
    SYSTEM_TABLES.iter().find(|t| t.schema == schema && t.name == name)
}

/// Catalog columns that hold arrays (as their text), with element types,
/// so that a subscript (`conkey[1]`) reads a typed element.
const ARRAY_COLUMNS: &[(&str, DataType)] = &[
    ("conkey", INT2),
    ("confkey", INT2),
    ("prattrs", INT2),
    ("stxkeys", INT2),
    ("polroles", OID),
    ("stxkind", TEXT),
];

/// The element type of a catalog array column named `column`; text for
/// any other name.
pub fn array_element_type(column: &str) -> DataType {
    ARRAY_COLUMNS.iter().find(|(name, _)| *name == column).map_or(TEXT, |(_, ty)| ty.clone())
}

/// The user catalog at one snapshot, with the derived oids.
#[derive(Debug)]
pub struct CatalogView {
    tables: Vec<Arc<Table>>,
}

impl CatalogView {
    /// Reads every table descriptor at `txn`'s snapshot.
    pub fn load(txn: &mut Txn) -> Result<CatalogView> {
        Ok(CatalogView { tables: catalog::list_tables(txn)? })
    }

    /// Every relation's oid (as text, the key [`crate::expr::Expr::Lookup`]
    /// uses) to its name: the output of a `::regclass` cast.
    pub fn relation_names(&self) -> HashMap<String, Value> {
        let mut names = HashMap::new();
        for t in &self.tables {
            names.insert(table_oid(t).to_string(), Value::Text(t.name.clone()));
            for (oid, name, _) in indexes(t) {
                names.insert(oid.to_string(), Value::Text(name));
            }
        }
        for t in SYSTEM_TABLES {
            names.insert(t.oid().to_string(), Value::Text(t.name.to_string()));
        }
        names
    }

    /// Every relation's name (plain and qualified) to its oid: a text's
    /// `::regclass` cast.
    pub fn relation_oids(&self) -> HashMap<String, Value> {
        let mut oids = HashMap::new();
        for t in &self.tables {
            oids.insert(t.name.clone(), Value::Int(table_oid(t)));
            oids.insert(format!("public.{}", t.name), Value::Int(table_oid(t)));
            for (oid, name, _) in indexes(t) {
                oids.insert(format!("public.{name}"), Value::Int(oid));
                oids.insert(name, Value::Int(oid));
            }
        }
        for t in SYSTEM_TABLES {
            oids.insert(format!("{}.{}", t.schema.name(), t.name), Value::Int(t.oid()));
            if t.schema == Schema::PgCatalog {
                oids.entry(t.name.to_string()).or_insert(Value::Int(t.oid()));
            }
        }
        oids
    }

    /// Namespace oid to name: a `::regnamespace` cast.
    pub fn namespace_names(&self) -> HashMap<String, Value> {
        NAMESPACES
            .iter()
            .map(|(oid, name)| (oid.to_string(), Value::Text((*name).into())))
            .collect()
    }

    /// Namespace name to oid.
    pub fn namespace_oids(&self) -> HashMap<String, Value> {
        NAMESPACES.iter().map(|(oid, name)| ((*name).to_string(), Value::Int(*oid))).collect()
    }

    /// `"oid:0"` to an index's `CREATE INDEX` statement and `"oid:n"` to its
    /// n-th key column (`pg_get_indexdef`).
    pub fn index_definitions(&self) -> HashMap<String, Value> {
        let mut defs = HashMap::new();
        for t in &self.tables {
            for (oid, name, index) in indexes(t) {
                let unique = if index.unique { "UNIQUE " } else { "" };
                let def = format!(
                    "CREATE {unique}INDEX {} ON public.{} USING btree ({})",
                    quote_ident(&name),
                    quote_ident(&t.name),
                    column_list(t, &index.columns)
                );
                defs.insert(format!("{oid}:0"), Value::Text(def));
                for (n, &c) in index.columns.iter().enumerate() {
                    let column = Value::Text(quote_ident(&t.columns[c].name));
                    defs.insert(format!("{oid}:{}", n + 1), column);
                }
            }
        }
        defs
    }

    /// `"oid:0"` to a constraint's definition (`pg_get_constraintdef`).
    pub fn constraint_definitions(&self) -> HashMap<String, Value> {
        let mut defs = HashMap::new();
        for t in &self.tables {
            for c in constraints(t) {
                defs.insert(format!("{}:0", c.oid), Value::Text(c.definition));
            }
        }
        defs
    }
}

/// Quotes an identifier when PostgreSQL would (not all lower-case letters,
/// digits and underscores, or starting with a digit).
pub fn quote_ident(name: &str) -> String {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain { name.to_string() } else { format!("\"{}\"", name.replace('"', "\"\"")) }
}

fn column_list(t: &Table, columns: &[usize]) -> String {
    columns.iter().map(|&c| quote_ident(&t.columns[c].name)).collect::<Vec<_>>().join(", ")
}

pub fn table_oid(t: &Table) -> i64 {
    i64::from(t.id) << 16
}

/// A table's indexes as PostgreSQL lists them: the primary key's (named
/// `TABLE_pkey`) when the key is declared, then the secondary ones.
/// Yields (oid, name, index).
fn indexes(t: &Table) -> Vec<(i64, String, catalog::Index)> {
    let mut out = Vec::new();
    let declared_key = t.primary_key.iter().all(|&c| !t.columns[c].hidden);
    if declared_key {
        let primary = catalog::Index {
            id: PRIMARY_INDEX,
            name: format!("{}_pkey", t.name),
            columns: t.primary_key.clone(),
            unique: true,
        };
        out.push((table_oid(t) + i64::from(PRIMARY_INDEX), primary.name.clone(), primary));
    }
    for i in &t.indexes {
        debug_assert!(i.id < 1 << 16, "index ids fit the oid scheme");
        out.push((table_oid(t) + i64::from(i.id), i.name.clone(), i.clone()));
    }
    out
}

/// A constraint row: primary keys and CHECKs (a UNIQUE index is shown as an
/// index, as `CREATE UNIQUE INDEX` makes it in PostgreSQL).
struct Constraint {
    oid: i64,
    name: String,
    kind: &'static str,
    index_oid: i64,
    /// `{1,2}`: the constrained columns' attribute numbers.
    keys: Option<String>,
    definition: String,
    /// The CHECK expression.
    expression: Option<String>,
}

fn constraints(t: &Table) -> Vec<Constraint> {
    let mut out = Vec::new();
    // Constraint oids follow the table's index oids: table oid + 2^15 + n.
    let base = table_oid(t) + (1 << 15);
    for (oid, name, index) in indexes(t) {
        if index.id == PRIMARY_INDEX {
            out.push(Constraint {
                oid: base,
                name,
                kind: "p",
                index_oid: oid,
                keys: Some(attnum_array(t, &index.columns)),
                definition: format!("PRIMARY KEY ({})", column_list(t, &index.columns)),
                expression: None,
            });
        }
    }
    for (n, check) in t.checks.iter().enumerate() {
        out.push(Constraint {
            oid: base + 1 + n as i64,
            name: check.name.clone(),
            kind: "c",
            index_oid: 0,
            keys: None,
            definition: format!("CHECK ({})", check.expr),
            expression: Some(check.expr.clone()),
        });
    }
    out
}

/// Attribute numbers: 1-based positions among the visible columns.
fn attnum(t: &Table, column: usize) -> i64 {
    t.columns[..column].iter().filter(|c| !c.hidden).count() as i64 + 1
}

fn attnum_array(t: &Table, columns: &[usize]) -> String {
    let nums: Vec<String> = columns.iter().map(|&c| attnum(t, c).to_string()).collect();
    format!("{{{}}}", nums.join(","))
}

/// PostgreSQL's type modifier: declared length + 4 for character types,
/// `(precision << 16 | scale) + 4` for numeric, -1 when unconstrained.
pub fn typmod(ty: &DataType) -> i64 {
    match ty {
        DataType::Varchar(Some(n)) | DataType::Char(Some(n)) => i64::from(*n) + 4,
        DataType::Numeric { precision: Some(p), scale } => {
            ((i64::from(*p) << 16) | i64::from(scale.unwrap_or(0))) + 4
        }
        _ => -1,
    }
}

/// `format_type(oid, typmod)`: the SQL name of a type, with its modifier.
pub fn format_type(oid: i64, typmod: Option<i64>) -> Option<String> {
    let length = typmod.filter(|&m| m >= 4).map(|m| (m - 4) as u32);
    let ty = match oid {
        16 => DataType::Bool,
        21 => DataType::Int2,
        23 => DataType::Int4,
        20 => DataType::Int8,
        700 => DataType::Float4,
        701 => DataType::Float8,
        1700 => DataType::Numeric {
            precision: length.map(|m| m >> 16),
            scale: length.map(|m| m & 0xffff),
        },
        25 => DataType::Text,
        1043 => DataType::Varchar(length),
        1042 => DataType::Char(length),
        17 => DataType::Bytea,
        1082 => DataType::Date,
        1114 => DataType::Timestamp,
        _ => {
            return PSEUDO_TYPES
                .iter()
                .find(|(o, ..)| *o == oid)
                .map(|(_, name, ..)| (*name).to_string());
        }
    };
    Some(ty.pg_name())
}

/// Types that only catalogs use: (oid, name, length).
const PSEUDO_TYPES: &[(i64, &str, i64)] = &[
    (26, "oid", 4),
    (19, "name", 64),
    (18, "\"char\"", 1),
    (2205, "regclass", 4),
    (2206, "regtype", 4),
];

/// The types user columns can have, as `pg_type` rows: (type, typname, length).
const USER_TYPES: &[(DataType, &str, i64)] = &[
    (DataType::Bool, "bool", 1),
    (DataType::Int2, "int2", 2),
    (DataType::Int4, "int4", 4),
    (DataType::Int8, "int8", 8),
    (DataType::Float4, "float4", 4),
    (DataType::Float8, "float8", 8),
    (DataType::Numeric { precision: None, scale: None }, "numeric", -1),
    (DataType::Text, "text", -1),
    (DataType::Varchar(None), "varchar", -1),
    (DataType::Char(None), "bpchar", -1),
    (DataType::Bytea, "bytea", -1),
    (DataType::Date, "date", 4),
    (DataType::Timestamp, "timestamp", 8),
];

/// A column type's `pg_type` entry (by oid, so any modifier matches).
fn user_type(ty: &DataType) -> Option<&'static (DataType, &'static str, i64)> {
    USER_TYPES.iter().find(|(u, ..)| u.oid() == ty.oid())
}

/// The leading columns of an `information_schema` constraint row: the
/// constraint's catalog, schema and name, then its table's.
fn constraint_identity(constraint: String, table: &str) -> Vec<Value> {
    vec![
        text(DATABASE_NAME),
        text("public"),
        text(constraint),
        text(DATABASE_NAME),
        text("public"),
        text(table),
    ]
}

fn collation_of(ty: &DataType) -> i64 {
    if ty.is_string() { DEFAULT_COLLATION } else { 0 }
}

// ---------------------------------------------------------------------------
// The tables. Each row builder emits values in its column list's order.

fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

fn int(i: i64) -> Value {
    Value::Int(i)
}

fn bool(b: bool) -> Value {
    Value::Bool(b)
}

static SYSTEM_TABLES: &[SystemTable] = &[
    SystemTable {
        schema: Schema::PgCatalog,
        name: "pg_namespace",
        columns: &[("oid", OID), ("nspname", NAME), ("nspowner", OID), ("nspacl", TEXT)],
        rows: |_| {
            NAMESPACES
                .iter()
                .map(|(oid, name)| vec![int(*oid), text(*name), int(OWNER), Value::Null])
                .collect()
        },
    },
    SystemTable {
        schema: Schema::PgCatalog,
        name: "pg_class",
        columns: &[
            ("oid", OID),
            ("relname", NAME),
            ("relnamespace", OID),
            ("reltype", OID),
            ("reloftype", OID),
            ("relowner", OID),
            ("relam", OID),
            ("relfilenode", OID),
            ("reltablespace", OID),
            ("relpages", INT4),
            ("reltuples", FLOAT4),
            ("relallvisible", INT4),
            ("reltoastrelid", OID),
            ("relhasindex", BOOL),
            ("relisshared", BOOL),
            ("relpersistence", TEXT),
            ("relkind", TEXT),
            ("relnatts", INT2),
            ("relchecks", INT2),
            ("relhasrules", BOOL),
            ("relhastriggers", BOOL),
            ("relhassubclass", BOOL),
            ("relrowsecurity", BOOL),
            ("relforcerowsecurity", BOOL),
            ("relispopulated", BOOL),
            ("relreplident", TEXT),
            ("relispartition", BOOL),
            ("relrewrite", OID),
            ("relacl", TEXT),
            ("reloptions", TEXT),
            ("relpartbound", TEXT),
        ],
        rows: pg_class_rows,
    },
    SystemTable {
        schema: Schema::PgCatalog,
        name: "pg_am",
        columns: &[("oid", OID), ("amname", NAME), ("amhandler", TEXT), ("amtype", TEXT)],
        rows: |_| {
            vec![
                vec![int(HEAP_AM), text("heap"), text("heap_tableam_handler"), text("t")],
                vec![int(BTREE_AM), text("btree"), text("bthandler"), text("i")],
            ]
        },
    },
    SystemTable {
        schema: Schema::PgCatalog,
        name: "pg_attribute",
        columns: &[
            ("attrelid", OID),
            ("attname", NAME),
            ("atttypid", OID),
            ("attlen", INT2),
            ("attnum", INT2),
            ("attndims", INT4),
            ("atttypmod", INT4),
            ("attnotnull", BOOL),
            ("atthasdef", BOOL),
            ("atthasmissing", BOOL),
            ("attidentity", TEXT),
            ("attgenerated", TEXT),
            ("attisdropped", BOOL),
            ("attislocal", BOOL),
            ("attinhcount", INT4),
            ("attcollation", OID),
            ("attstattarget", INT4),
            ("attstorage", TEXT),
            ("attcompression", TEXT),
            ("attacl", TEXT),
            ("attoptions", TEXT),
            ("attfdwoptions", TEXT),
        ],
        rows: pg_attribute_rows,
    },
    SystemTable {
        schema: Schema::PgCatalog,
        name: "pg_attrdef",
        columns: &[("oid", OID), ("adrelid", OID), ("adnum", INT2), ("adbin", TEXT)],
        rows: |view| {
            let mut rows = Vec::new();
            for t in &view.tables {
                for (i, c) in t.visible_columns() {
                    if let Some(default) = &c.default {
                        let num = attnum(t, i);
                        rows.push(vec![
                            int(table_oid(t) + (1 << 14) + num),
                            int(table_oid(t)),
                            int(num),
                            text(default.clone()),
                        ]);
                    }
                }
            }
            rows
        },
    },
    SystemTable {
        schema: Schema::PgCatalog,
        name: "pg_index",
        columns: &[
            ("indexrelid", OID),
            ("indrelid", OID),
            ("indnatts", INT2),
            ("indnkeyatts", INT2),
            ("indisunique", BOOL),
            ("indnullsnotdistinct", BOOL),
            ("indisprimary", BOOL),
            ("indisexclusion", BOOL),
            ("indimmediate", BOOL),
            ("indisclustered", BOOL),
            ("indisvalid", BOOL),
            ("indcheckxmin", BOOL),
            ("indisready", BOOL),
            ("indislive", BOOL),
            ("indisreplident", BOOL),
            ("indkey", TEXT),
            ("indcollation", TEXT),
            ("indclass", TEXT),
            ("indoption", TEXT),
            ("indexprs", TEXT),
            ("indpred", TEXT),
        ],
        rows: |view| {
            let mut rows = Vec::new();
            for t in &view.tables {
                for (oid, _, index) in indexes(t) {
                    let n = index.columns.len() as i64;
                    let keys: Vec<String> =
                        index.columns.iter().map(|&c| attnum(t, c).to_string()).collect();
                    let zeros = vec!["0"; index.columns.len()].join(" ");
                    rows.push(vec![
                        int(oid),
                        int(table_oid(t)),
                        int(n),
                        int(n),
                        bool(index.unique),
                        bool(false),
                        bool(index.id == PRIMARY_INDEX),
                        bool(false),
                        bool(true),
                        bool(false),
                        bool(true),
                        bool(false),
                        bool(true),
                        bool(true),
                        bool(false),
                        text(keys.join(" ")),
                        text(zeros.clone()),
                        text(zeros.clone()),
                        text(zeros),
                        Value::Null,
                        Value::Null,
                    ]);
                }
            }
            rows
        },
    },
    SystemTable {
        schema: Schema::PgCatalog,
        name: "pg_constraint",
        columns: &[
            ("oid", OID),
            ("conname", NAME),
            ("connamespace", OID),
            ("contype", TEXT),
            ("condeferrable", BOOL),
            ("condeferred", BOOL),
            ("convalidated", BOOL),
            ("conrelid", OID),
            ("contypid", OID),
            ("conindid", OID),
            ("conparentid", OID),
            ("confrelid", OID),
            ("confupdtype", TEXT),
            ("confdeltype", TEXT),
            ("confmatchtype", TEXT),
            ("conislocal", BOOL),
            ("coninhcount", INT4),
            ("connoinherit", BOOL),
            ("conkey", TEXT),
            ("confkey", TEXT),
            ("conbin", TEXT),
        ],
        rows: |view| {
            let mut rows = Vec::new();
            for t in &view.tables {
                for c in constraints(t) {
                    rows.push(vec![
                        int(c.oid),
                        text(c.name),
                        int(PUBLIC),
                        text(c.kind),
                        bool(false),
                        bool(false),
                        bool(true),
                        int(table_oid(t)),
                        int(0),
                        int(c.index_oid),
                        int(0),
                        int(0),
                        text(" "),
                        text(" "),
                        text(" "),
                        bool(true),
                        int(0),
                        bool(false),
                        c.keys.map_or(Value::Null, Value::Text),
                        Value::Null,
                        c.expression.map_or(Value::Null, Value::Text),
                    ]);
                }
            }
            rows
        },
    },
    SystemTable {
        schema: Schema::PgCatalog,
        name: "pg_type",
        columns: &[
            ("oid", OID),
            ("typname", NAME),
            ("typnamespace", OID),
            ("typowner", OID),
            ("typlen", INT2),
            ("typbyval", BOOL),
            ("typtype", TEXT),
            ("typcategory", TEXT),
            ("typisdefined", BOOL),
            ("typdelim", TEXT),
            ("typrelid", OID),
            ("typelem", OID),
            ("typarray", OID),
            ("typnotnull", BOOL),
            ("typbasetype", OID),
            ("typtypmod", INT4),
            ("typndims", INT4),
            ("typcollation", OID),
        ],
        rows: |_| {
            let mut rows: Vec<(i64, String, i64, i64)> = USER_TYPES
                .iter()
                .map(|(ty, name, len)| {
                    (i64::from(ty.oid()), name.to_string(), *len, collation_of(ty))
                })
                .collect();
            rows.extend(
                PSEUDO_TYPES
                    .iter()
                    .map(|(oid, name, len)| (*oid, name.trim_matches('"').to_string(), *len, 0)),
            );
            rows.into_iter()
                .map(|(oid, name, len, collation)| {
                    let category = match oid {
                        16 => "B",
                        20 | 21 | 23 | 26 | 700 | 701 | 1700 | 2205 | 2206 => "N",
                        1082 | 1114 => "D",
                        17 => "U",
                        _ => "S",
                    };
                    vec![
                        int(oid),
                        text(name),
                        int(PG_CATALOG),
                        int(OWNER),
                        int(len),
                        bool((1..=8).contains(&len)),
                        text("b"),
                        text(category),
                        bool(true),
                        text(","),
                        int(0),
                        int(0),
                        int(0),
                        bool(false),
                        int(0),
                        int(-1),
                        int(0),
                        int(collation),
                    ]
                })
                .collect()
        },
    },
    SystemTable {
        schema: Schema::PgCatalog,
        name: "pg_collation",
        columns: &[
            ("oid", OID),
            ("collname", NAME),
            ("collnamespace", OID),
            ("collowner", OID),
            ("collprovider", TEXT),
            ("collisdeterministic", BOOL),
            ("collencoding", INT4),
            ("collcollate", TEXT),
            ("collctype", TEXT),
        ],
        rows: |_| {
            [(DEFAULT_COLLATION, "default", "d", Value::Null), (950, "C", "c", text("C"))]
                .into_iter()
                .map(|(oid, name, provider, locale)| {
                    vec![
                        int(oid),
                        text(name),
                        int(PG_CATALOG),
                        int(OWNER),
                        text(provider),
                        bool(true),
                        int(-1),
                        locale.clone(),
                        locale,
                    ]
                })
                .collect()
        },
    },
    SystemTable {
        schema: Schema::PgCatalog,
        name: "pg_database",
        columns: &[
            ("oid", OID),
            ("datname", NAME),
            ("datdba", OID),
            ("encoding", INT4),
            ("datlocprovider", TEXT),
            ("datistemplate", BOOL),
            ("datallowconn", BOOL),
            ("datconnlimit", INT4),
            ("datcollate", TEXT),
            ("datctype", TEXT),
            ("daticulocale", TEXT),
            ("datcollversion", TEXT),
            ("datacl", TEXT),
        ],
        rows: |_| {
            vec![vec![
                int(5),
                text(DATABASE_NAME),
                int(OWNER),
                int(6),
                text("c"),
                bool(false),
                bool(true),
                int(-1),
                text("C"),
                text("C"),
                Value::Null,
                Value::Null,
                Value::Null,
            ]]
        },
    },
    SystemTable {
        schema: Schema::PgCatalog,
        name: "pg_roles",
        columns: &[
            ("oid", OID),
            ("rolname", NAME),
            ("rolsuper", BOOL),
            ("rolinherit", BOOL),
            ("rolcreaterole", BOOL),
            ("rolcreatedb", BOOL),
            ("rolcanlogin", BOOL),
            ("rolreplication", BOOL),
            ("rolconnlimit", INT4),
            ("rolpassword", TEXT),
            ("rolvaliduntil", TEXT),
            ("rolbypassrls", BOOL),
            ("rolconfig", TEXT),
        ],
        rows: |_| {
            vec![vec![
                int(OWNER),
                text(OWNER_NAME),
                bool(true),
                bool(true),
                bool(true),
                bool(true),
                bool(true),
                bool(false),
                int(-1),
                text("********"),
                Value::Null,
                bool(true),
                Value::Null,
            ]]
        },
    },
    SystemTable {
        schema: Schema::PgCatalog,
        name: "pg_auth_members",
        columns: &[
            ("oid", OID),
            ("roleid", OID),
            ("member", OID),
            ("grantor", OID),
            ("admin_option", BOOL),
        ],
        rows: |_| Vec::new(),
    },
    SystemTable {
        schema: Schema::PgCatalog,
        name: "pg_tablespace",
        columns: &[("oid", OID), ("spcname", NAME), ("spcowner", OID)],
        rows: |_| vec![vec![int(1663), text("pg_default"), int(OWNER)]],
    },
    // Catalogs of features Strata does not have: present, so that the
    // queries clients send find them, and empty.
    SystemTable {
        schema: Schema::PgCatalog,
        name: "pg_description",
        columns: &[("objoid", OID), ("classoid", OID), ("objsubid", INT4), ("description", TEXT)],
        rows: |_| Vec::new(),
    },
    SystemTable {
        schema: Schema::PgCatalog,
        name: "pg_inherits",
        columns: &[
            ("inhrelid", OID),
            ("inhparent", OID),
            ("inhseqno", INT4),
            ("inhdetachpending", BOOL),
        ],
        rows: |_| Vec::new(),
    },
    SystemTable {
        schema: Schema::PgCatalog,
        name: "pg_trigger",
        columns: &[
            ("oid", OID),
            ("tgrelid", OID),
            ("tgparentid", OID),
            ("tgname", NAME),
            ("tgfoid", OID),
            ("tgtype", INT2),
            ("tgenabled", TEXT),
            ("tgisinternal", BOOL),
        ],
        rows: |_| Vec::new(),
    },
    SystemTable {
        schema: Schema::PgCatalog,
        name: "pg_policy",
        columns: &[
            ("oid", OID),
            ("polname", NAME),
            ("polrelid", OID),
            ("polcmd", TEXT),
            ("polpermissive", BOOL),
            ("polroles", TEXT),
            ("polqual", TEXT),
            ("polwithcheck", TEXT),
        ],
        rows: |_| Vec::new(),
    },
    SystemTable {
        schema: Schema::PgCatalog,
        name: "pg_statistic_ext",
        columns: &[
            ("oid", OID),
            ("stxrelid", OID),
            ("stxname", NAME),
            ("stxnamespace", OID),
            ("stxowner", OID),
            ("stxstattarget", INT4),
            ("stxkeys", TEXT),
            ("stxkind", TEXT),
            ("stxexprs", TEXT),
        ],
        rows: |_| Vec::new(),
    },
    SystemTable {
        schema: Schema::PgCatalog,
        name: "pg_publication",
        columns: &[
            ("oid", OID),
            ("pubname", NAME),
            ("pubowner", OID),
            ("puballtables", BOOL),
            ("pubinsert", BOOL),
            ("pubupdate", BOOL),
            ("pubdelete", BOOL),
            ("pubtruncate", BOOL),
            ("pubviaroot", BOOL),
        ],
        rows: |_| Vec::new(),
    },
    SystemTable {
        schema: Schema::PgCatalog,
        name: "pg_publication_rel",
        columns: &[
            ("oid", OID),
            ("prpubid", OID),
            ("prrelid", OID),
            ("prqual", TEXT),
            ("prattrs", TEXT),
        ],
        rows: |_| Vec::new(),
    },
    SystemTable {
        schema: Schema::PgCatalog,
        name: "pg_publication_namespace",
        columns: &[("oid", OID), ("pnpubid", OID), ("pnnspid", OID)],
        rows: |_| Vec::new(),
    },
    SystemTable {
        schema: Schema::InformationSchema,
        name: "schemata",
        columns: &[("catalog_name", NAME), ("schema_name", NAME), ("schema_owner", NAME)],
        rows: |_| {
            ["pg_catalog", "public", "information_schema"]
                .iter()
                .map(|s| vec![text(DATABASE_NAME), text(*s), text(OWNER_NAME)])
                .collect()
        },
    },
    SystemTable {
        schema: Schema::InformationSchema,
        name: "tables",
        columns: &[
            ("table_catalog", NAME),
            ("table_schema", NAME),
            ("table_name", NAME),
            ("table_type", TEXT),
            ("is_insertable_into", TEXT),
            ("is_typed", TEXT),
        ],
        rows: |view| {
            view.tables
                .iter()
                .map(|t| {
                    vec![
                        text(DATABASE_NAME),
                        text("public"),
                        text(t.name.clone()),
                        text("BASE TABLE"),
                        text("YES"),
                        text("NO"),
                    ]
                })
                .collect()
        },
    },
    SystemTable {
        schema: Schema::InformationSchema,
        name: "columns",
        columns: &[
            ("table_catalog", NAME),
            ("table_schema", NAME),
            ("table_name", NAME),
            ("column_name", NAME),
            ("ordinal_position", INT4),
            ("column_default", TEXT),
            ("is_nullable", TEXT),
            ("data_type", TEXT),
            ("character_maximum_length", INT4),
            ("numeric_precision", INT4),
            ("numeric_scale", INT4),
            ("datetime_precision", INT4),
            ("udt_name", NAME),
            ("is_identity", TEXT),
            ("is_generated", TEXT),
            ("is_updatable", TEXT),
        ],
        rows: information_schema_columns,
    },
    SystemTable {
        schema: Schema::InformationSchema,
        name: "table_constraints",
        columns: &[
            ("constraint_catalog", NAME),
            ("constraint_schema", NAME),
            ("constraint_name", NAME),
            ("table_catalog", NAME),
            ("table_schema", NAME),
            ("table_name", NAME),
            ("constraint_type", TEXT),
            ("is_deferrable", TEXT),
            ("initially_deferred", TEXT),
        ],
        rows: |view| {
            let mut rows = Vec::new();
            for t in &view.tables {
                for c in constraints(t) {
                    let kind = if c.kind == "p" { "PRIMARY KEY" } else { "CHECK" };
                    let mut row = constraint_identity(c.name, &t.name);
                    row.extend([text(kind), text("NO"), text("NO")]);
                    rows.push(row);
                }
            }
            rows
        },
    },
    SystemTable {
        schema: Schema::InformationSchema,
        name: "key_column_usage",
        columns: &[
            ("constraint_catalog", NAME),
            ("constraint_schema", NAME),
            ("constraint_name", NAME),
            ("table_catalog", NAME),
            ("table_schema", NAME),
            ("table_name", NAME),
            ("column_name", NAME),
            ("ordinal_position", INT4),
        ],
        rows: |view| {
            let mut rows = Vec::new();
            for t in &view.tables {
                for (_, name, index) in indexes(t) {
                    if index.id != PRIMARY_INDEX {
                        continue;
                    }
                    for (n, &c) in index.columns.iter().enumerate() {
                        let mut row = constraint_identity(name.clone(), &t.name);
                        row.extend([text(t.columns[c].name.clone()), int(n as i64 + 1)]);
                        rows.push(row);
                    }
                }
            }
            rows
        },
    },
];

fn pg_class_rows(view: &CatalogView) -> Vec<Vec<Value>> {
    let mut rows = Vec::new();
    let mut push =
        |oid: i64, name: &str, namespace: i64, kind: &str, natts: usize, t: Option<&Table>| {
            let has_index = t.is_some_and(|t| !indexes(t).is_empty());
            let checks = t.map_or(0, |t| t.checks.len() as i64);
            let am = if kind == "i" { BTREE_AM } else { HEAP_AM };
            rows.push(vec![
                int(oid),
                text(name),
                int(namespace),
                int(0),
                int(0),
                int(OWNER),
                int(am),
                int(oid),
                int(0),
                int(0),
                Value::Float(-1.0),
                int(0),
                int(0),
                bool(has_index),
                bool(false),
                text("p"),
                text(kind),
                int(natts as i64),
                int(checks),
                bool(false),
                bool(false),
                bool(false),
                bool(false),
                bool(false),
                bool(true),
                text("d"),
                bool(false),
                int(0),
                Value::Null,
                Value::Null,
                Value::Null,
            ]);
        };
    for t in &view.tables {
        push(table_oid(t), &t.name, PUBLIC, "r", t.visible_columns().count(), Some(t));
        for (oid, name, index) in indexes(t) {
            push(oid, &name, PUBLIC, "i", index.columns.len(), None);
        }
    }
    for s in SYSTEM_TABLES {
        push(s.oid(), s.name, s.schema.oid(), "v", s.columns.len(), None);
    }
    rows
}

fn pg_attribute_rows(view: &CatalogView) -> Vec<Vec<Value>> {
    let mut rows = Vec::new();
    let mut push =
        |relid: i64, name: &str, num: i64, ty: &DataType, not_null: bool, has_default: bool| {
            let len = user_type(ty).map_or(-1, |(_, _, len)| *len);
            rows.push(vec![
                int(relid),
                text(name),
                int(i64::from(ty.oid())),
                int(len),
                int(num),
                int(0),
                int(typmod(ty)),
                bool(not_null),
                bool(has_default),
                bool(false),
                text(""),
                text(""),
                bool(false),
                bool(true),
                int(0),
                int(collation_of(ty)),
                int(-1),
                text(if len > 0 { "p" } else { "x" }),
                text(""),
                Value::Null,
                Value::Null,
                Value::Null,
            ]);
        };
    for t in &view.tables {
        for (i, c) in t.visible_columns() {
            push(table_oid(t), &c.name, attnum(t, i), &c.ty, !c.nullable, c.default.is_some());
        }
        for (oid, _, index) in indexes(t) {
            for (n, &c) in index.columns.iter().enumerate() {
                let column = &t.columns[c];
                push(oid, &column.name, n as i64 + 1, &column.ty, false, false);
            }
        }
    }
    rows
}

fn information_schema_columns(view: &CatalogView) -> Vec<Vec<Value>> {
    let mut rows = Vec::new();
    for t in &view.tables {
        for (i, c) in t.visible_columns() {
            let (length, precision, scale, datetime) = match &c.ty {
                DataType::Varchar(n) | DataType::Char(n) => (
                    n.map_or(Value::Null, |n| int(i64::from(n))),
                    Value::Null,
                    Value::Null,
                    Value::Null,
                ),
                DataType::Int2 => (Value::Null, int(16), int(0), Value::Null),
                DataType::Int4 => (Value::Null, int(32), int(0), Value::Null),
                DataType::Int8 => (Value::Null, int(64), int(0), Value::Null),
                DataType::Float4 => (Value::Null, int(24), Value::Null, Value::Null),
                DataType::Float8 => (Value::Null, int(53), Value::Null, Value::Null),
                DataType::Numeric { precision, scale } => (
                    Value::Null,
                    precision.map_or(Value::Null, |p| int(i64::from(p))),
                    scale.map_or(Value::Null, |s| int(i64::from(s))),
                    Value::Null,
                ),
                DataType::Date => (Value::Null, Value::Null, Value::Null, int(0)),
                DataType::Timestamp => (Value::Null, Value::Null, Value::Null, int(6)),
                _ => (Value::Null, Value::Null, Value::Null, Value::Null),
            };
            let udt = user_type(&c.ty).map_or("", |(_, name, _)| *name);
            let data_type = match &c.ty {
                DataType::Numeric { .. } => "numeric".to_string(),
                DataType::Varchar(_) => "character varying".to_string(),
                DataType::Char(_) => "character".to_string(),
                other => other.pg_name(),
            };
            rows.push(vec![
                text(DATABASE_NAME),
                text("public"),
                text(t.name.clone()),
                text(c.name.clone()),
                int(attnum(t, i)),
                c.default.clone().map_or(Value::Null, Value::Text),
                text(if c.nullable { "YES" } else { "NO" }),
                text(data_type),
                length,
                precision,
                scale,
                datetime,
                text(udt),
                text("NO"),
                text("NEVER"),
                text("YES"),
            ]);
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_matches_its_columns() {
        let view = CatalogView { tables: Vec::new() };
        for t in SYSTEM_TABLES {
            for row in t.rows(&view) {
                assert_eq!(row.len(), t.columns.len(), "{t:?}");
            }
        }
    }

    #[test]
    fn names_resolve_as_postgres_search_path_does() {
        let parts = |s: &str| s.split('.').map(str::to_string).collect::<Vec<_>>();
        assert_eq!(resolve(&parts("pg_class")).map(|t| t.name), Some("pg_class"));
        assert_eq!(resolve(&parts("pg_catalog.pg_class")).map(|t| t.name), Some("pg_class"));
        assert_eq!(resolve(&parts("strata.pg_catalog.pg_type")).map(|t| t.name), Some("pg_type"));
        assert_eq!(resolve(&parts("information_schema.tables")).map(|t| t.name), Some("tables"));
        // information_schema is not on the search path.
        assert!(resolve(&parts("tables")).is_none());
        assert!(resolve(&parts("public.pg_class")).is_none());
    }

    #[test]
    fn format_type_inverts_oid_and_typmod() {
        for ty in [
            DataType::Int4,
            DataType::Numeric { precision: Some(10), scale: Some(2) },
            DataType::Numeric { precision: None, scale: None },
            DataType::Varchar(Some(20)),
            DataType::Varchar(None),
            DataType::Char(Some(3)),
            DataType::Timestamp,
        ] {
            let typmod = typmod(&ty);
            assert_eq!(format_type(i64::from(ty.oid()), Some(typmod)), Some(ty.pg_name()));
        }
        assert_eq!(format_type(26, None).as_deref(), Some("oid"));
        assert_eq!(format_type(123_456, None), None);
    }

    #[test]
    fn quote_ident_quotes_what_postgres_would() {
        assert_eq!(quote_ident("orders"), "orders");
        assert_eq!(quote_ident("Orders"), "\"Orders\"");
        assert_eq!(quote_ident("1x"), "\"1x\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
