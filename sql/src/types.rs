//! SQL data types and values, with PostgreSQL 15 as the reference for every
//! result, message and SQLSTATE.
//!
//! [`DataType`] is the type of a column or an expression; [`Value`] is one datum.
//! A `Value` does not carry its type: the binder knows the types, and the
//! functions here take them as arguments where the answer depends on them.
//!
//! | type                  | `Value`              | stored as                                   |
//! |-----------------------|----------------------|---------------------------------------------|
//! | boolean               | `Bool`               |                                             |
//! | smallint/integer/bigint | `Int(i64)`         | always within the type's range              |
//! | real, double precision| `Float(f64)`         | a real is an exact `f32` widened to `f64`   |
//! | numeric(p,s)          | `Numeric(Decimal)`   | the scale is the display scale (`1.50`) |
//! | text, varchar(n)      | `Text`               |                                             |
//! | character(n)          | `Text`               | padded with spaces to n characters          |
//! | bytea                 | `Bytes`              |                                             |
//! | date                  | `Date(i32)`          | days since 2000-01-01; `i32::MIN/MAX` ∓infinity |
//! | timestamp             | `Timestamp(i64)`     | µs since 2000-01-01; `i64::MIN/MAX` ∓infinity |
//!
//! Because a `Value::Float` does not say whether it is a `real`, the functions
//! whose answer differs for `real` have typed variants: [`Value::to_pg_text_typed`]
//! (a real prints with `f32` precision: `0.1::real` is `0.1`, `1e6::real` is
//! `1e+06`) and [`Value::cast_from`] / [`Value::assign_from`] (a real becomes a
//! numeric with 6 significant digits, a `character(n)` loses its padding when
//! it becomes text, only `integer` casts to `boolean`). The untyped variants
//! assume `double precision`, `text` and `integer`.
//!
//! # Where Strata differs from PostgreSQL
//!
//! - numeric is `rust_decimal`: at most 28 decimal places and a 96-bit mantissa
//!   (about 28 significant digits). Input with more fractional digits is
//!   rounded (half away from zero) to fit; a larger integer part is
//!   `value overflows numeric format` (22003). `NaN` and `Infinity` are not
//!   numerics (0A000). A division whose PostgreSQL result scale exceeds what
//!   fits is rounded to fewer places.
//! - Comparisons between integers, floats and numerics are exact. PostgreSQL
//!   converts `bigint` and `numeric` to `double precision` when compared with a
//!   float, so `9007199254740993::int8 = 9007199254740992::float8` is true there
//!   and false here. Exactness keeps [`Value::sort_cmp`] a total order and
//!   [`Value::hash_key`] consistent with it.
//! - Date/time input accepts the ISO forms only (`YYYY-MM-DD`, with a time after a
//!   space or `T`, an ignored time zone, `BC`), plus `epoch`, `infinity` and
//!   `-infinity`; `now`, `today`, `tomorrow` and `yesterday` are 0A000 because
//!   they need a clock. `timestamp(p)` for p < 6 is not supported.
//! - There is no `%` operator for floats in PostgreSQL; [`arithmetic`] reports
//!   42883 as PostgreSQL's binder would.

use std::cmp::Ordering;
use std::hash::Hasher;

use rust_decimal::{Decimal, RoundingStrategy};
use sqlparser::ast;

use crate::error::{Result, SqlError, sqlstate};

/// The type of a column or an expression.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DataType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    /// `numeric(p,s)`; `numeric(p)` is `{ Some(p), Some(0) }`, plain `numeric`
    /// is `{ None, None }` (no constraint).
    Numeric {
        precision: Option<u32>,
        scale: Option<u32>,
    },
    Text,
    /// `varchar(n)`; `None` is unlimited.
    Varchar(Option<u32>),
    /// `character(n)` (blank-padded); `None` is PostgreSQL's unlimited `bpchar`.
    Char(Option<u32>),
    Bytea,
    Date,
    /// `timestamp without time zone`, microsecond precision.
    Timestamp,
}

/// One datum. See the module documentation for the representation of each type.
///
/// `PartialEq` is derived and structural: it is for tests. Floats compare with
/// `==` (so `NaN != NaN` and `0.0 == -0.0`), numerics by value (`1.0 == 1.00`,
/// as `rust_decimal` compares), and `Int(1) != Float(1.0)`. SQL equality is
/// [`Value::sql_cmp`]; grouping equality is [`Value::group_eq`].
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Numeric(Decimal),
    Text(String),
    Bytes(Vec<u8>),
    /// Days since 2000-01-01, as PostgreSQL.
    Date(i32),
    /// Microseconds since 2000-01-01 00:00:00, as PostgreSQL.
    Timestamp(i64),
}

/// A binary arithmetic operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

// ---------------------------------------------------------------------------
// Limits

/// The largest `rust_decimal` mantissa, 2^96 - 1.
const MAX_MANTISSA: u128 = (1 << 96) - 1;
/// The largest `rust_decimal` scale.
const MAX_NUMERIC_SCALE: u32 = 28;
/// Maximum length of varchar(n) and char(n), as PostgreSQL.
const MAX_CHAR_LENGTH: u64 = 10_485_760;
const USECS_PER_DAY: i64 = 86_400_000_000;
/// `days_from_civil(2000, 1, 1)`: PostgreSQL's epoch in Unix days.
const PG_EPOCH_UNIX_DAYS: i64 = days_from_civil(2000, 1, 1);
/// 4714-11-24 BC (Julian day 0), the first valid date and timestamp.
pub(crate) const DATE_MIN_DAYS: i64 = days_from_civil(-4713, 11, 24) - PG_EPOCH_UNIX_DAYS;
/// 5874898-01-01, the first date past the valid range.
pub(crate) const DATE_END_DAYS: i64 = days_from_civil(5_874_898, 1, 1) - PG_EPOCH_UNIX_DAYS;
const TIMESTAMP_MIN: i64 = DATE_MIN_DAYS * USECS_PER_DAY;
/// 294277-01-01 00:00:00, the first timestamp past the valid range.
const TIMESTAMP_END: i64 = (days_from_civil(294_277, 1, 1) - PG_EPOCH_UNIX_DAYS) * USECS_PER_DAY;
pub(crate) const DATE_NEG_INFINITY: i32 = i32::MIN;
pub(crate) const DATE_POS_INFINITY: i32 = i32::MAX;
pub(crate) const TIMESTAMP_NEG_INFINITY: i64 = i64::MIN;
pub(crate) const TIMESTAMP_POS_INFINITY: i64 = i64::MAX;

// ---------------------------------------------------------------------------
// Errors

fn error(code: &'static str, message: impl Into<String>) -> SqlError {
    SqlError::new(code, message)
}

fn division_by_zero() -> SqlError {
    error(sqlstate::DIVISION_BY_ZERO, "division by zero")
}

fn numeric_overflow() -> SqlError {
    error(sqlstate::NUMERIC_VALUE_OUT_OF_RANGE, "value overflows numeric format")
}

fn float_overflow() -> SqlError {
    error(sqlstate::NUMERIC_VALUE_OUT_OF_RANGE, "value out of range: overflow")
}

fn float_underflow() -> SqlError {
    error(sqlstate::NUMERIC_VALUE_OUT_OF_RANGE, "value out of range: underflow")
}

fn cannot_cast(from: &DataType, to: &DataType) -> SqlError {
    error(
        sqlstate::CANNOT_COERCE,
        format!("cannot cast type {} to {}", from.base_name(), to.base_name()),
    )
}

fn undefined_type(name: &str) -> SqlError {
    error(sqlstate::UNDEFINED_OBJECT, format!("type \"{name}\" does not exist"))
}

fn syntax_error_near(token: &str) -> SqlError {
    error(sqlstate::SYNTAX_ERROR, format!("syntax error at or near \"{token}\""))
}

fn invalid_syntax(type_name: &str, text: &str) -> SqlError {
    error(
        sqlstate::INVALID_TEXT_REPRESENTATION,
        format!("invalid input syntax for type {type_name}: \"{text}\""),
    )
}

// ---------------------------------------------------------------------------
// DataType

impl DataType {
    /// Converts a parsed SQL type name. `SERIAL` and `BIGSERIAL` are not types
    /// (`type "serial" does not exist`); CREATE TABLE handles them first.
    pub fn from_ast(ty: &ast::DataType) -> Result<DataType> {
        use ast::DataType as A;
        let result = match ty {
            A::Bool | A::Boolean => DataType::Bool,
            A::SmallInt(None) | A::Int2(None) => DataType::Int2,
            A::Int(None) | A::Integer(None) | A::Int4(None) => DataType::Int4,
            A::BigInt(None) | A::Int8(None) => DataType::Int8,
            A::SmallInt(Some(_))
            | A::Int2(Some(_))
            | A::Int(Some(_))
            | A::Integer(Some(_))
            | A::Int4(Some(_))
            | A::BigInt(Some(_))
            | A::Int8(Some(_)) => return Err(syntax_error_near("(")),
            A::Real | A::Float4 => DataType::Float4,
            A::DoublePrecision | A::Float8 => DataType::Float8,
            A::Float(info) => float_from_info(info)?,
            A::Numeric(info) | A::Decimal(info) | A::Dec(info) => numeric_from_info(info)?,
            A::Text => DataType::Text,
            A::Varchar(len) | A::CharacterVarying(len) | A::CharVarying(len) => {
                DataType::Varchar(char_length(len.as_ref(), "varchar")?)
            }
            A::Char(len) | A::Character(len) => {
                DataType::Char(Some(char_length(len.as_ref(), "char")?.unwrap_or(1)))
            }
            A::Bytea => DataType::Bytea,
            A::Date => DataType::Date,
            A::Timestamp(precision, tz) => match tz {
                ast::TimezoneInfo::None | ast::TimezoneInfo::WithoutTimeZone => {
                    timestamp_with_precision(*precision)?
                }
                ast::TimezoneInfo::WithTimeZone | ast::TimezoneInfo::Tz => {
                    return Err(SqlError::unsupported("type timestamp with time zone"));
                }
            },
            A::Custom(name, modifiers) => custom_type(name, modifiers)?,
            A::Uuid
            | A::JSON
            | A::JSONB
            | A::Interval { .. }
            | A::Time(..)
            | A::Regclass
            | A::Bit(_)
            | A::BitVarying(_)
            | A::VarBit(_)
            | A::Array(_) => {
                return Err(SqlError::unsupported(format!(
                    "type {}",
                    ty.to_string().to_lowercase()
                )));
            }
            other => return Err(undefined_type(&other.to_string().to_lowercase())),
        };
        Ok(result)
    }

    /// The name as PostgreSQL's `format_type` shows it, with the modifier.
    pub fn pg_name(&self) -> String {
        match self {
            DataType::Numeric { precision: Some(p), scale } => {
                format!("numeric({p},{})", scale.unwrap_or(0))
            }
            DataType::Varchar(Some(n)) => format!("character varying({n})"),
            DataType::Char(Some(n)) => format!("character({n})"),
            DataType::Char(None) => "bpchar".to_string(),
            other => other.base_name().to_string(),
        }
    }

    /// The name without modifier, as PostgreSQL's `format_type_be` shows it in
    /// error messages ("cannot cast type boolean to numeric").
    fn base_name(&self) -> &'static str {
        match self {
            DataType::Bool => "boolean",
            DataType::Int2 => "smallint",
            DataType::Int4 => "integer",
            DataType::Int8 => "bigint",
            DataType::Float4 => "real",
            DataType::Float8 => "double precision",
            DataType::Numeric { .. } => "numeric",
            DataType::Text => "text",
            DataType::Varchar(_) => "character varying",
            DataType::Char(_) => "character",
            DataType::Bytea => "bytea",
            DataType::Date => "date",
            DataType::Timestamp => "timestamp without time zone",
        }
    }

    /// The PostgreSQL type OID.
    pub fn oid(&self) -> u32 {
        match self {
            DataType::Bool => 16,
            DataType::Int2 => 21,
            DataType::Int4 => 23,
            DataType::Int8 => 20,
            DataType::Float4 => 700,
            DataType::Float8 => 701,
            DataType::Numeric { .. } => 1700,
            DataType::Text => 25,
            DataType::Varchar(_) => 1043,
            DataType::Char(_) => 1042,
            DataType::Bytea => 17,
            DataType::Date => 1082,
            DataType::Timestamp => 1114,
        }
    }

    /// smallint, integer, bigint.
    pub fn is_integer(&self) -> bool {
        matches!(self, DataType::Int2 | DataType::Int4 | DataType::Int8)
    }

    /// Integers, floats and numeric.
    pub fn is_numeric(&self) -> bool {
        self.is_integer()
            || matches!(self, DataType::Float4 | DataType::Float8 | DataType::Numeric { .. })
    }

    /// text, varchar, char.
    pub fn is_string(&self) -> bool {
        matches!(self, DataType::Text | DataType::Varchar(_) | DataType::Char(_))
    }
}

fn float_from_info(info: &ast::ExactNumberInfo) -> Result<DataType> {
    match info {
        ast::ExactNumberInfo::None => Ok(DataType::Float8),
        ast::ExactNumberInfo::Precision(p) => {
            if *p < 1 {
                Err(error(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    "precision for type float must be at least 1 bit",
                ))
            } else if *p > 53 {
                Err(error(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    "precision for type float must be less than 54 bits",
                ))
            } else if *p <= 24 {
                Ok(DataType::Float4)
            } else {
                Ok(DataType::Float8)
            }
        }
        ast::ExactNumberInfo::PrecisionAndScale(..) => Err(syntax_error_near(",")),
    }
}

fn numeric_from_info(info: &ast::ExactNumberInfo) -> Result<DataType> {
    match *info {
        ast::ExactNumberInfo::None => Ok(DataType::Numeric { precision: None, scale: None }),
        ast::ExactNumberInfo::Precision(p) => numeric_type(p as i64, 0),
        ast::ExactNumberInfo::PrecisionAndScale(p, s) => numeric_type(p as i64, s),
    }
}

fn numeric_type(precision: i64, scale: i64) -> Result<DataType> {
    if !(1..=1000).contains(&precision) {
        return Err(error(
            sqlstate::INVALID_PARAMETER_VALUE,
            format!("NUMERIC precision {precision} must be between 1 and 1000"),
        ));
    }
    if !(-1000..=1000).contains(&scale) {
        return Err(error(
            sqlstate::INVALID_PARAMETER_VALUE,
            format!("NUMERIC scale {scale} must be between -1000 and 1000"),
        ));
    }
    if scale < 0 {
        return Err(SqlError::unsupported("negative NUMERIC scale"));
    }
    if scale > MAX_NUMERIC_SCALE as i64 {
        return Err(SqlError::unsupported(format!("NUMERIC scale above {MAX_NUMERIC_SCALE}")));
    }
    Ok(DataType::Numeric { precision: Some(precision as u32), scale: Some(scale as u32) })
}

fn char_length(len: Option<&ast::CharacterLength>, type_name: &str) -> Result<Option<u32>> {
    match len {
        None => Ok(None),
        Some(ast::CharacterLength::IntegerLength { length, .. }) => {
            char_length_value(*length as i64, type_name).map(Some)
        }
        Some(ast::CharacterLength::Max) => Err(syntax_error_near("MAX")),
    }
}

fn char_length_value(length: i64, type_name: &str) -> Result<u32> {
    if length < 1 {
        return Err(error(
            sqlstate::INVALID_PARAMETER_VALUE,
            format!("length for type {type_name} must be at least 1"),
        ));
    }
    if length as u64 > MAX_CHAR_LENGTH {
        return Err(error(
            sqlstate::INVALID_PARAMETER_VALUE,
            format!("length for type {type_name} cannot exceed {MAX_CHAR_LENGTH}"),
        ));
    }
    Ok(length as u32)
}

fn timestamp_with_precision(precision: Option<u64>) -> Result<DataType> {
    match precision {
        // PostgreSQL reduces a precision above 6 to 6 with a warning.
        None => Ok(DataType::Timestamp),
        Some(p) if p >= 6 => Ok(DataType::Timestamp),
        Some(p) => Err(SqlError::unsupported(format!("type timestamp({p})"))),
    }
}

/// A type name sqlparser does not know as a keyword (`bpchar`, `int4`
/// written as an identifier, `pg_catalog.int4`, `text(5)`, ...).
fn custom_type(name: &ast::ObjectName, modifiers: &[ast::TypeModifier]) -> Result<DataType> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|part| match part {
            ast::ObjectNamePart::Identifier(ident) if ident.quote_style.is_some() => {
                ident.value.clone()
            }
            ast::ObjectNamePart::Identifier(ident) => ident.value.to_lowercase(),
            other => other.to_string(),
        })
        .collect();
    let base = match parts.as_slice() {
        [name] => name.as_str(),
        [schema, name] if schema == "pg_catalog" => name.as_str(),
        _ => return Err(undefined_type(&parts.join("."))),
    };
    let mut numbers = Vec::with_capacity(modifiers.len());
    for modifier in modifiers {
        match modifier {
            ast::TypeModifier::Number(n, _) => {
                numbers.push(n.parse::<i64>().map_err(|_| syntax_error_near(n))?)
            }
            other => return Err(syntax_error_near(&other.to_string())),
        }
    }
    let too_many_modifiers = || {
        error(sqlstate::INVALID_PARAMETER_VALUE, format!("invalid type modifier for type {base}"))
    };
    let length = |type_name: &str| -> Result<Option<u32>> {
        match numbers.as_slice() {
            [] => Ok(None),
            [n] => char_length_value(*n, type_name).map(Some),
            _ => Err(too_many_modifiers()),
        }
    };
    match base {
        "bpchar" => return Ok(DataType::Char(length("char")?)),
        "varchar" => return Ok(DataType::Varchar(length("varchar")?)),
        "numeric" | "decimal" => {
            return match numbers.as_slice() {
                [] => Ok(DataType::Numeric { precision: None, scale: None }),
                [p] => numeric_type(*p, 0),
                [p, s] => numeric_type(*p, *s),
                _ => Err(too_many_modifiers()),
            };
        }
        _ => {}
    }
    let simple = match base {
        "bool" | "boolean" => Some(DataType::Bool),
        "int2" | "smallint" => Some(DataType::Int2),
        "int4" | "int" | "integer" => Some(DataType::Int4),
        "int8" | "bigint" => Some(DataType::Int8),
        "float4" | "real" => Some(DataType::Float4),
        "float8" => Some(DataType::Float8),
        "text" => Some(DataType::Text),
        "bytea" => Some(DataType::Bytea),
        "date" => Some(DataType::Date),
        "timestamp" => Some(DataType::Timestamp),
        _ => None,
    };
    if let Some(ty) = simple {
        if !numbers.is_empty() && ty != DataType::Timestamp {
            return Err(error(
                sqlstate::SYNTAX_ERROR,
                format!("type modifier is not allowed for type \"{base}\""),
            ));
        }
        return match (ty, numbers.as_slice()) {
            (DataType::Timestamp, [p]) => timestamp_with_precision(Some((*p).max(0) as u64)),
            (DataType::Timestamp, [_, _, ..]) => Err(too_many_modifiers()),
            (ty, _) => Ok(ty),
        };
    }
    const KNOWN_UNSUPPORTED: &[&str] = &[
        "timestamptz",
        "time",
        "timetz",
        "interval",
        "json",
        "jsonb",
        "uuid",
        "money",
        "inet",
        "cidr",
        "macaddr",
        "macaddr8",
        "xml",
        "oid",
        "name",
        "bit",
        "varbit",
        "point",
        "line",
        "lseg",
        "box",
        "path",
        "polygon",
        "circle",
        "tsvector",
        "tsquery",
        "regclass",
        "regtype",
        "int4range",
        "int8range",
        "numrange",
        "daterange",
        "tsrange",
        "tstzrange",
    ];
    if KNOWN_UNSUPPORTED.contains(&base) {
        return Err(SqlError::unsupported(format!("type {base}")));
    }
    Err(undefined_type(base))
}

// ---------------------------------------------------------------------------
// Value: casts

/// Which casts are allowed: PostgreSQL's explicit (`CAST`, `::`) or
/// assignment (INSERT/UPDATE target) context.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CastContext {
    Explicit,
    Assignment,
}

/// The broad kind of a value or type, to check that a value fits a type.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Null,
    Bool,
    Int,
    Float,
    Numeric,
    String,
    Bytes,
    Date,
    Timestamp,
}

fn type_kind(ty: &DataType) -> Kind {
    match ty {
        DataType::Bool => Kind::Bool,
        DataType::Int2 | DataType::Int4 | DataType::Int8 => Kind::Int,
        DataType::Float4 | DataType::Float8 => Kind::Float,
        DataType::Numeric { .. } => Kind::Numeric,
        DataType::Text | DataType::Varchar(_) | DataType::Char(_) => Kind::String,
        DataType::Bytea => Kind::Bytes,
        DataType::Date => Kind::Date,
        DataType::Timestamp => Kind::Timestamp,
    }
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    fn kind(&self) -> Kind {
        match self {
            Value::Null => Kind::Null,
            Value::Bool(_) => Kind::Bool,
            Value::Int(_) => Kind::Int,
            Value::Float(_) => Kind::Float,
            Value::Numeric(_) => Kind::Numeric,
            Value::Text(_) => Kind::String,
            Value::Bytes(_) => Kind::Bytes,
            Value::Date(_) => Kind::Date,
            Value::Timestamp(_) => Kind::Timestamp,
        }
    }

    /// The type assumed for a value when the caller does not say: `Int` is an
    /// integer, `Float` a double precision, `Text` a text.
    fn natural_type(&self) -> DataType {
        match self {
            Value::Null | Value::Text(_) => DataType::Text,
            Value::Bool(_) => DataType::Bool,
            Value::Int(_) => DataType::Int4,
            Value::Float(_) => DataType::Float8,
            Value::Numeric(_) => DataType::Numeric { precision: None, scale: None },
            Value::Bytes(_) => DataType::Bytea,
            Value::Date(_) => DataType::Date,
            Value::Timestamp(_) => DataType::Timestamp,
        }
    }

    /// Explicit cast (`CAST(x AS t)`, `x::t`) with PostgreSQL semantics,
    /// assuming the value has its natural type (`Int` is an integer, `Float` a
    /// double precision, `Text` a text). See [`Value::cast_from`].
    ///
    /// - integer to a narrower integer is range-checked (22003 `smallint out of
    ///   range`); float to integer rounds half to even (`2.5::float8::int` is
    ///   2), numeric to integer rounds half away from zero (`2.5::numeric::int`
    ///   is 3);
    /// - text to anything uses the type's input function (22P02 on bad input);
    ///   anything to text uses the output function, except boolean which
    ///   becomes `true`/`false`;
    /// - `varchar(n)`/`char(n)` truncate to n characters, `char(n)` pads;
    /// - `numeric(p,s)` rounds to s places and raises 22003 `numeric field
    ///   overflow` when more than p - s integer digits remain;
    /// - integer ↔ boolean (0 is false); float → numeric keeps 15 significant
    ///   digits; date ↔ timestamp.
    ///
    /// Anything else is 42846 `cannot cast type X to Y`. NULL casts to NULL.
    pub fn cast(&self, to: &DataType) -> Result<Value> {
        self.convert(&self.natural_type(), to, CastContext::Explicit)
    }

    /// [`Value::cast`] from a known source type. It differs from `cast` for a
    /// `real` source (text output with `f32` precision; numeric with 6
    /// significant digits), a `character(n)` source (trailing spaces are
    /// removed when it becomes text or varchar) and an integer source cast to
    /// boolean (only `integer` can be, as in PostgreSQL). If the value's kind
    /// does not match `from`, `from` is ignored.
    pub fn cast_from(&self, from: &DataType, to: &DataType) -> Result<Value> {
        self.convert(from, to, CastContext::Explicit)
    }

    /// Assignment cast (the value of an INSERT or UPDATE target column): like
    /// [`Value::cast`], but a string longer than `varchar(n)`/`char(n)` is 22001
    /// `value too long for type character varying(n)` unless the excess is
    /// spaces (which are dropped), and only PostgreSQL's assignment casts are
    /// allowed: between numeric types, anything to a string type, date ↔
    /// timestamp. Others (boolean ↔ integer, text → integer, ...) are 42846
    /// `cannot cast type boolean to integer`.
    pub fn assign(&self, to: &DataType) -> Result<Value> {
        self.convert(&self.natural_type(), to, CastContext::Assignment)
    }

    /// [`Value::assign`] from a known source type; see [`Value::cast_from`].
    pub fn assign_from(&self, from: &DataType, to: &DataType) -> Result<Value> {
        self.convert(from, to, CastContext::Assignment)
    }

    fn convert(&self, from: &DataType, to: &DataType, context: CastContext) -> Result<Value> {
        if self.is_null() {
            return Ok(Value::Null);
        }
        let natural;
        let from = if self.kind() == type_kind(from) {
            from
        } else {
            natural = self.natural_type();
            &natural
        };
        let explicit = context == CastContext::Explicit;
        match (self, to) {
            (_, DataType::Text | DataType::Varchar(_) | DataType::Char(_)) => {
                let text = match self {
                    Value::Bool(b) => (if *b { "true" } else { "false" }).to_string(),
                    Value::Text(s)
                        if matches!(from, DataType::Char(_))
                            && !matches!(to, DataType::Char(_)) =>
                    {
                        s.trim_end_matches(' ').to_string()
                    }
                    Value::Text(s) => s.clone(),
                    other => other.to_pg_text_typed(from),
                };
                apply_string_typmod(text, to, context).map(Value::Text)
            }
            (Value::Text(s), _) if explicit => Value::parse(s, to),
            (Value::Bool(b), DataType::Bool) => Ok(Value::Bool(*b)),
            (Value::Bool(b), DataType::Int4) if explicit => Ok(Value::Int(*b as i64)),
            (Value::Int(i), DataType::Bool) if explicit && *from == DataType::Int4 => {
                Ok(Value::Bool(*i != 0))
            }
            (Value::Int(i), DataType::Int2 | DataType::Int4 | DataType::Int8) => {
                check_int(*i as i128, to)
            }
            (Value::Int(i), DataType::Float4) => Ok(Value::Float(*i as f32 as f64)),
            (Value::Int(i), DataType::Float8) => Ok(Value::Float(*i as f64)),
            (Value::Int(i), DataType::Numeric { .. }) => {
                apply_numeric_typmod(Decimal::from(*i), to).map(Value::Numeric)
            }
            (Value::Float(f), DataType::Int2 | DataType::Int4 | DataType::Int8) => {
                float_to_int(*f, to)
            }
            (Value::Float(f), DataType::Float4) => {
                if *from == DataType::Float4 {
                    Ok(Value::Float(*f))
                } else {
                    f64_to_f32(*f).map(|f| Value::Float(f as f64))
                }
            }
            (Value::Float(f), DataType::Float8) => Ok(Value::Float(*f)),
            (Value::Float(f), DataType::Numeric { .. }) => {
                let d = float_to_numeric(*f, *from == DataType::Float4)?;
                apply_numeric_typmod(d, to).map(Value::Numeric)
            }
            (Value::Numeric(d), DataType::Int2 | DataType::Int4 | DataType::Int8) => {
                let rounded = d.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
                check_int(rounded.as_i128(), to)
            }
            (Value::Numeric(d), DataType::Float4) => Ok(Value::Float(numeric_to_f32(d) as f64)),
            (Value::Numeric(d), DataType::Float8) => Ok(Value::Float(numeric_to_f64(d))),
            (Value::Numeric(d), DataType::Numeric { .. }) => {
                apply_numeric_typmod(*d, to).map(Value::Numeric)
            }
            (Value::Bytes(b), DataType::Bytea) => Ok(Value::Bytes(b.clone())),
            (Value::Date(d), DataType::Date) => Ok(Value::Date(*d)),
            (Value::Date(d), DataType::Timestamp) => date_to_timestamp(*d).map(Value::Timestamp),
            (Value::Timestamp(t), DataType::Timestamp) => Ok(Value::Timestamp(*t)),
            (Value::Timestamp(t), DataType::Date) => Ok(Value::Date(timestamp_to_date(*t))),
            _ => Err(cannot_cast(from, to)),
        }
    }

    /// Parses text in the type's input format: literals of known type and
    /// parameters in text format.
    ///
    /// Integers: optional sign, surrounding whitespace, range-checked (22003
    /// `value "X" is out of range for type integer`). Floats: also `NaN`,
    /// `Infinity`, `-Infinity`, `inf`. Numeric: decimal with optional exponent,
    /// rounded to the type's scale (`NaN` is 0A000). Boolean:
    /// `t/true/yes/on/1/f/false/no/off/0`, any case, unique prefixes. Date:
    /// `YYYY-MM-DD` (a time after it is ignored), `epoch`, `±infinity`, `BC`.
    /// Timestamp: `YYYY-MM-DD[( |T)HH:MM[:SS[.ffffff]]][zone]`, the zone ignored
    /// as PostgreSQL does. Bytea: hex (`\x0a0b`) or escape format. Varchar(n)
    /// and char(n) check the length as an assignment does (22001); char(n)
    /// pads. Bad input is 22P02, 22007 or 22008 with PostgreSQL's messages.
    ///
    /// This is the input function, which never truncates: for an explicit cast
    /// of a string literal to `varchar(n)` use `Value::Text(s).cast(ty)`.
    pub fn parse(text: &str, ty: &DataType) -> Result<Value> {
        match ty {
            DataType::Bool => parse_bool(text).map(Value::Bool),
            DataType::Int2 | DataType::Int4 | DataType::Int8 => parse_int(text, ty).map(Value::Int),
            DataType::Float4 => parse_float(text, true).map(Value::Float),
            DataType::Float8 => parse_float(text, false).map(Value::Float),
            DataType::Numeric { .. } => {
                let d = parse_numeric(text)?;
                apply_numeric_typmod(d, ty).map(Value::Numeric)
            }
            DataType::Text => Ok(Value::Text(text.to_string())),
            DataType::Varchar(_) | DataType::Char(_) => {
                apply_string_typmod(text.to_string(), ty, CastContext::Assignment).map(Value::Text)
            }
            DataType::Bytea => parse_bytea(text).map(Value::Bytes),
            DataType::Date => parse_date(text).map(Value::Date),
            DataType::Timestamp => parse_timestamp(text).map(Value::Timestamp),
        }
    }

    /// PostgreSQL's text output format (what psql shows), assuming a `Float`
    /// is a double precision: see [`Value::to_pg_text_typed`] for real.
    ///
    /// bool `t`/`f`; floats shortest round-trip as PostgreSQL 15 with
    /// `extra_float_digits = 1` (`0.1`, `1e+20`, `1e-05`, `NaN`, `Infinity`);
    /// numeric with its scale (`1.50`); bytea `\x0a0b`; date `2024-01-31`;
    /// timestamp `2024-01-31 12:34:56.5`; `±infinity`; years before 1 AD with
    /// ` BC`. NULL is the empty string, but callers handle NULL themselves.
    pub fn to_pg_text(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Bool(b) => (if *b { "t" } else { "f" }).to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => format_float(*f, false),
            Value::Numeric(d) => canonical_zero(*d).to_string(),
            Value::Text(s) => s.clone(),
            Value::Bytes(b) => format_bytea(b),
            Value::Date(d) => format_date(*d),
            Value::Timestamp(t) => format_timestamp(*t),
        }
    }

    /// [`Value::to_pg_text`] for a value of type `ty`: a real prints with `f32`
    /// precision (`0.1::real` is `0.1`, `1e6::real` is `1e+06`).
    pub fn to_pg_text_typed(&self, ty: &DataType) -> String {
        match (self, ty) {
            (Value::Float(f), DataType::Float4) => format_float(*f, true),
            _ => self.to_pg_text(),
        }
    }

    // -----------------------------------------------------------------------
    // Comparison and hashing

    /// SQL comparison: `None` if either side is NULL or the kinds cannot be
    /// compared. Integers, floats and numerics compare exactly by value; NaN
    /// equals NaN and is above every number, `-0.0` equals `0.0` (as
    /// PostgreSQL). Strings and bytea compare bytewise (C collation); a date
    /// compares with a timestamp as its midnight.
    pub fn sql_cmp(&self, other: &Value) -> Option<Ordering> {
        if self.is_null() || other.is_null() {
            return None;
        }
        cmp_non_null(self, other)
    }

    /// Total order for ORDER BY, GROUP BY and DISTINCT: [`Value::sql_cmp`] with
    /// NULL after everything (PostgreSQL's NULLS LAST for ascending order).
    /// Values of kinds that cannot be compared order by kind (boolean, numbers,
    /// strings, bytea, dates and timestamps), so that the order stays total.
    pub fn sort_cmp(&self, other: &Value) -> Ordering {
        match (self.is_null(), other.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => {
                cmp_non_null(self, other).unwrap_or_else(|| kind_rank(self).cmp(&kind_rank(other)))
            }
        }
    }

    /// Equality for grouping, DISTINCT and hash joins: `sort_cmp == Equal`, so
    /// NULL equals NULL, NaN equals NaN and `Int(1)`, `Float(1.0)` and
    /// `Numeric(1.00)` are equal.
    pub fn group_eq(&self, other: &Value) -> bool {
        self.sort_cmp(other) == Ordering::Equal
    }

    /// Hashes the value consistently with [`Value::group_eq`]: equal values hash
    /// equally. Numbers hash a canonical form: an integral value (of any kind)
    /// as its `i128`, a fraction exactly representable as a decimal as the
    /// normalised decimal (so `Float(0.5)` and `Numeric(0.50)` agree), any
    /// other float by its bits (NaN canonical, `-0.0` is the integer 0). A date
    /// hashes as its midnight timestamp.
    pub fn hash_key(&self, state: &mut impl Hasher) {
        state.write_u8(kind_rank(self));
        match self {
            Value::Null => {}
            Value::Bool(b) => state.write_u8(*b as u8),
            Value::Int(_) | Value::Float(_) | Value::Numeric(_) => match number_key(self) {
                NumberKey::Integer(i) => {
                    state.write_u8(0);
                    state.write_i128(i);
                }
                NumberKey::Decimal(mantissa, scale) => {
                    state.write_u8(1);
                    state.write_i128(mantissa);
                    state.write_u32(scale);
                }
                NumberKey::Float(bits) => {
                    state.write_u8(2);
                    state.write_u64(bits);
                }
            },
            Value::Text(s) => {
                state.write_usize(s.len());
                state.write(s.as_bytes());
            }
            Value::Bytes(b) => {
                state.write_usize(b.len());
                state.write(b);
            }
            Value::Date(_) | Value::Timestamp(_) => state.write_i128(datetime_key(self)),
        }
    }
}

/// Applies the length of `varchar(n)`/`char(n)`: an explicit cast truncates,
/// an assignment raises 22001 unless the excess is spaces; `char(n)` pads.
fn apply_string_typmod(text: String, to: &DataType, context: CastContext) -> Result<String> {
    let (limit, pad) = match to {
        DataType::Varchar(Some(n)) => (*n as usize, false),
        DataType::Char(Some(n)) => (*n as usize, true),
        _ => return Ok(text),
    };
    let mut text = text;
    let mut count = 0;
    if let Some((cut, _)) = text.char_indices().nth(limit) {
        if context == CastContext::Assignment && !text[cut..].bytes().all(|b| b == b' ') {
            return Err(error(
                sqlstate::STRING_DATA_RIGHT_TRUNCATION,
                format!("value too long for type {}", to.pg_name()),
            ));
        }
        text.truncate(cut);
        count = limit;
    } else if pad {
        count = text.chars().count();
    }
    if pad {
        text.extend(std::iter::repeat_n(' ', limit - count));
    }
    Ok(text)
}

/// Applies `numeric(p,s)`: rounds half away from zero to s places, then
/// raises 22003 `numeric field overflow` if the value needs more than p - s
/// integer digits (PostgreSQL's `apply_typmod`).
fn apply_numeric_typmod(d: Decimal, ty: &DataType) -> Result<Decimal> {
    let DataType::Numeric { precision: Some(precision), scale } = ty else {
        return Ok(canonical_zero(d));
    };
    let scale = scale.unwrap_or(0);
    let mut rounded = d.round_dp_with_strategy(scale, RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(scale);
    let magnitude = rounded.mantissa().unsigned_abs();
    let integer_digits = decimal_digits(magnitude / 10u128.pow(rounded.scale()));
    let fits = if *precision >= scale {
        integer_digits <= precision - scale
    } else {
        // numeric(2,3): the value must be below 10^-(s-p).
        magnitude < 10u128.pow(rounded.scale().saturating_sub(scale - precision))
    };
    if !fits {
        let max_digits = *precision as i64 - scale as i64;
        let bound = if max_digits == 0 { "1".to_string() } else { format!("10^{max_digits}") };
        return Err(error(sqlstate::NUMERIC_VALUE_OUT_OF_RANGE, "numeric field overflow")
            .with_detail(format!(
                "A field with precision {precision}, scale {scale} must round to an absolute value less than {bound}."
            )));
    }
    Ok(canonical_zero(rounded))
}

/// The number of decimal digits of `n` (0 for 0).
fn decimal_digits(n: u128) -> u32 {
    if n == 0 { 0 } else { n.ilog10() + 1 }
}

/// Numerics have no negative zero in PostgreSQL.
fn canonical_zero(mut d: Decimal) -> Decimal {
    if d.is_zero() {
        d.set_sign_positive(true);
    }
    d
}

fn int_range(ty: &DataType) -> (i128, i128, &'static str) {
    match ty {
        DataType::Int2 => (i16::MIN as i128, i16::MAX as i128, "smallint out of range"),
        DataType::Int4 => (i32::MIN as i128, i32::MAX as i128, "integer out of range"),
        _ => (i64::MIN as i128, i64::MAX as i128, "bigint out of range"),
    }
}

fn check_int(v: i128, ty: &DataType) -> Result<Value> {
    let (min, max, message) = int_range(ty);
    if v < min || v > max {
        return Err(error(sqlstate::NUMERIC_VALUE_OUT_OF_RANGE, message));
    }
    Ok(Value::Int(v as i64))
}

/// PostgreSQL's `float8_int4` and friends: round half to even (`rint`), then
/// range-check; NaN is out of range.
fn float_to_int(f: f64, ty: &DataType) -> Result<Value> {
    let (min, max, message) = int_range(ty);
    let r = f.round_ties_even();
    // `max + 1` is a power of two, exact as f64.
    if r.is_nan() || r < min as f64 || r >= (max + 1) as f64 {
        return Err(error(sqlstate::NUMERIC_VALUE_OUT_OF_RANGE, message));
    }
    Ok(Value::Int(r as i64))
}

/// double precision to real, with PostgreSQL's overflow and underflow checks.
fn f64_to_f32(f: f64) -> Result<f32> {
    let r = f as f32;
    if r.is_infinite() && f.is_finite() {
        return Err(float_overflow());
    }
    if r == 0.0 && f != 0.0 {
        return Err(float_underflow());
    }
    Ok(r)
}

/// PostgreSQL's `float8_numeric`/`float4_numeric`: the value printed with 15
/// (6 for real) significant digits, read back as numeric.
fn float_to_numeric(f: f64, is_real: bool) -> Result<Decimal> {
    if f.is_nan() {
        return Err(error(sqlstate::FEATURE_NOT_SUPPORTED, "cannot convert NaN to numeric"));
    }
    if f.is_infinite() {
        return Err(error(sqlstate::FEATURE_NOT_SUPPORTED, "cannot convert infinity to numeric"));
    }
    let significant = if is_real { 6 } else { 15 };
    let printed = format!("{:.*e}", significant - 1, f);
    let (mantissa, exponent) = printed.split_once('e').expect("LowerExp output has an exponent");
    // %g drops trailing zeros of the fraction, which sets the numeric's scale.
    let mantissa = if mantissa.contains('.') {
        mantissa.trim_end_matches('0').trim_end_matches('.')
    } else {
        mantissa
    };
    let literal = parse_decimal_literal(&format!("{mantissa}e{exponent}"))
        .expect("formatted float is a valid literal");
    decimal_from_literal(&literal)
}

/// Consumes an optional `+` or `-` at `*i`; returns whether it was `-`.
fn take_sign(b: &[u8], i: &mut usize) -> bool {
    match b.get(*i) {
        Some(b'-') => {
            *i += 1;
            true
        }
        Some(b'+') => {
            *i += 1;
            false
        }
        _ => false,
    }
}

/// numeric to double precision, correctly rounded (as PostgreSQL, via text).
fn numeric_to_f64(d: &Decimal) -> f64 {
    d.to_string().parse().expect("a decimal prints as a valid float")
}

fn numeric_to_f32(d: &Decimal) -> f32 {
    d.to_string().parse().expect("a decimal prints as a valid float")
}

pub(crate) fn date_to_timestamp(d: i32) -> Result<i64> {
    match d {
        DATE_NEG_INFINITY => Ok(TIMESTAMP_NEG_INFINITY),
        DATE_POS_INFINITY => Ok(TIMESTAMP_POS_INFINITY),
        d => {
            let t = d as i128 * USECS_PER_DAY as i128;
            if !(TIMESTAMP_MIN as i128..TIMESTAMP_END as i128).contains(&t) {
                return Err(error(
                    sqlstate::DATETIME_FIELD_OVERFLOW,
                    "date out of range for timestamp",
                ));
            }
            Ok(t as i64)
        }
    }
}

fn timestamp_to_date(t: i64) -> i32 {
    match t {
        TIMESTAMP_NEG_INFINITY => DATE_NEG_INFINITY,
        TIMESTAMP_POS_INFINITY => DATE_POS_INFINITY,
        t => t.div_euclid(USECS_PER_DAY) as i32,
    }
}

// ---------------------------------------------------------------------------
// Input functions

/// C `isspace`, which PostgreSQL's input functions skip.
fn is_pg_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn pg_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii() && is_pg_space(c as u8))
}

/// PostgreSQL's `parse_bool_with_len`.
fn parse_bool(text: &str) -> Result<bool> {
    let lower = pg_trim(text).to_ascii_lowercase();
    let prefix_of = |word: &str| word.starts_with(lower.as_str());
    let value = match lower.as_bytes().first() {
        Some(b't') if prefix_of("true") => Some(true),
        Some(b'y') if prefix_of("yes") => Some(true),
        Some(b'f') if prefix_of("false") => Some(false),
        Some(b'n') if prefix_of("no") => Some(false),
        Some(b'o') if lower.len() >= 2 && prefix_of("on") => Some(true),
        Some(b'o') if lower.len() >= 2 && prefix_of("off") => Some(false),
        Some(b'1') if lower.len() == 1 => Some(true),
        Some(b'0') if lower.len() == 1 => Some(false),
        _ => None,
    };
    value.ok_or_else(|| invalid_syntax("boolean", text))
}

/// PostgreSQL 15's `pg_strtoint16/32/64`: whitespace, sign, decimal digits.
fn parse_int(text: &str, ty: &DataType) -> Result<i64> {
    let type_name = ty.base_name();
    let (min, max, _) = int_range(ty);
    let out_of_range = || {
        error(
            sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
            format!("value \"{text}\" is out of range for type {type_name}"),
        )
    };
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() && is_pg_space(b[i]) {
        i += 1;
    }
    let negative = take_sign(b, &mut i);
    let digits_start = i;
    let mut magnitude: i128 = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        magnitude = magnitude * 10 + (b[i] - b'0') as i128;
        if magnitude > -min {
            return Err(out_of_range());
        }
        i += 1;
    }
    let digits_end = i;
    while i < b.len() && is_pg_space(b[i]) {
        i += 1;
    }
    if digits_end == digits_start || i != b.len() {
        return Err(invalid_syntax(type_name, text));
    }
    let value = if negative { -magnitude } else { magnitude };
    if value < min || value > max {
        return Err(out_of_range());
    }
    Ok(value as i64)
}

/// A decimal literal split into its parts: `-12.50e3` is
/// `{ negative, digits: "1250", fraction_digits: 2, exponent: 3 }`.
struct DecimalLiteral {
    negative: bool,
    digits: Vec<u8>,
    fraction_digits: usize,
    exponent: i64,
}

/// Recognises `[+-](digits[.digits]|.digits)[(e|E)[+-]digits]` exactly (no
/// surrounding whitespace).
fn parse_decimal_literal(s: &str) -> Option<DecimalLiteral> {
    let b = s.as_bytes();
    let mut i = 0;
    let negative = take_sign(b, &mut i);
    let mut digits = Vec::new();
    while i < b.len() && b[i].is_ascii_digit() {
        digits.push(b[i] - b'0');
        i += 1;
    }
    let mut fraction_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            digits.push(b[i] - b'0');
            fraction_digits += 1;
            i += 1;
        }
    }
    if digits.is_empty() {
        return None;
    }
    let mut exponent: i64 = 0;
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        let exponent_negative = take_sign(b, &mut i);
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            // Saturate: anything this large overflows or underflows anyway.
            exponent = (exponent * 10 + (b[i] - b'0') as i64).min(1 << 40);
            i += 1;
        }
        if i == start {
            return None;
        }
        if exponent_negative {
            exponent = -exponent;
        }
    }
    (i == b.len()).then_some(DecimalLiteral { negative, digits, fraction_digits, exponent })
}

/// Builds the decimal of a literal, keeping its scale (`1.50` has scale 2).
/// Digits beyond what `rust_decimal` holds (28 places, 96-bit mantissa) are
/// rounded half away from zero; an integer part that does not fit is 22003.
fn decimal_from_literal(literal: &DecimalLiteral) -> Result<Decimal> {
    let first_nonzero = literal.digits.iter().position(|&d| d != 0);
    let scale = literal.fraction_digits as i64 - literal.exponent;
    let Some(first_nonzero) = first_nonzero else {
        let scale = scale.clamp(0, MAX_NUMERIC_SCALE as i64) as u32;
        return Ok(Decimal::from_i128_with_scale(0, scale));
    };
    let mut digits = literal.digits[first_nonzero..].to_vec();
    let mut scale = scale;
    if scale < 0 {
        // 12e3: append the zeros, if they can fit at all.
        if digits.len() as i64 - scale > 29 {
            return Err(numeric_overflow());
        }
        digits.extend(std::iter::repeat_n(0, (-scale) as usize));
        scale = 0;
    }
    let len = digits.len() as i64;
    // Drop `drop` trailing digits (rounding) until the rest fits.
    let mut drop = (scale - MAX_NUMERIC_SCALE as i64).max(0);
    loop {
        if drop > scale {
            return Err(numeric_overflow());
        }
        let kept = len - drop;
        if kept > 29 {
            drop += kept - 29;
            continue;
        }
        let mut mantissa: u128 = 0;
        for &d in &digits[..kept.max(0) as usize] {
            mantissa = mantissa * 10 + d as u128;
        }
        let round_digit = if kept >= 0 && kept < len { digits[kept as usize] } else { 0 };
        if round_digit >= 5 {
            mantissa += 1;
        }
        if mantissa > MAX_MANTISSA {
            drop += 1;
            continue;
        }
        let signed = if literal.negative { -(mantissa as i128) } else { mantissa as i128 };
        return Ok(canonical_zero(Decimal::from_i128_with_scale(signed, (scale - drop) as u32)));
    }
}

/// PostgreSQL's `numeric_in` (without NaN and Infinity).
fn parse_numeric(text: &str) -> Result<Decimal> {
    let trimmed = pg_trim(text);
    let lower = trimmed.to_ascii_lowercase();
    if lower == "nan" {
        return Err(SqlError::unsupported("numeric NaN"));
    }
    if matches!(lower.as_str(), "infinity" | "+infinity" | "-infinity" | "inf" | "+inf" | "-inf") {
        return Err(SqlError::unsupported("numeric Infinity"));
    }
    let literal = parse_decimal_literal(trimmed).ok_or_else(|| invalid_syntax("numeric", text))?;
    decimal_from_literal(&literal)
}

/// PostgreSQL's `float8in`/`float4in`: strtod syntax plus NaN and Infinity;
/// a result that overflows to infinity or underflows to zero is 22003.
fn parse_float(text: &str, is_real: bool) -> Result<f64> {
    let type_name = if is_real { "real" } else { "double precision" };
    let trimmed = pg_trim(text);
    match trimmed.to_ascii_lowercase().as_str() {
        "nan" => return Ok(f64::NAN),
        "infinity" | "+infinity" | "inf" | "+inf" => return Ok(f64::INFINITY),
        "-infinity" | "-inf" => return Ok(f64::NEG_INFINITY),
        _ => {}
    }
    let literal = parse_decimal_literal(trimmed).ok_or_else(|| invalid_syntax(type_name, text))?;
    let value =
        if is_real { trimmed.parse::<f32>().map(|f| f as f64) } else { trimmed.parse::<f64>() }
            .map_err(|_| invalid_syntax(type_name, text))?;
    let nonzero_input = literal.digits.iter().any(|&d| d != 0);
    if value.is_infinite() || (value == 0.0 && nonzero_input) {
        return Err(error(
            sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
            format!("\"{text}\" is out of range for type {type_name}"),
        ));
    }
    Ok(value)
}

/// PostgreSQL's `byteain`: `\x` followed by hex digit pairs (whitespace
/// between pairs allowed), else the escape format (`\\` and `\ooo`).
fn parse_bytea(text: &str) -> Result<Vec<u8>> {
    let b = text.as_bytes();
    if let Some(hex) = b.strip_prefix(b"\\x") {
        let mut out = Vec::with_capacity(hex.len() / 2);
        let mut i = 0;
        while i < hex.len() {
            if is_pg_space(hex[i]) {
                i += 1;
                continue;
            }
            let high = hex_digit(hex, i)?;
            if i + 1 >= hex.len() {
                return Err(error(
                    sqlstate::INVALID_PARAMETER_VALUE,
                    "invalid hexadecimal data: odd number of digits",
                ));
            }
            let low = hex_digit(hex, i + 1)?;
            out.push(high << 4 | low);
            i += 2;
        }
        return Ok(out);
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
        } else if b.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else if i + 3 < b.len()
            && (b'0'..=b'3').contains(&b[i + 1])
            && (b'0'..=b'7').contains(&b[i + 2])
            && (b'0'..=b'7').contains(&b[i + 3])
        {
            out.push((b[i + 1] - b'0') << 6 | (b[i + 2] - b'0') << 3 | (b[i + 3] - b'0'));
            i += 4;
        } else {
            return Err(error(
                sqlstate::INVALID_TEXT_REPRESENTATION,
                "invalid input syntax for type bytea",
            ));
        }
    }
    Ok(out)
}

fn hex_digit(hex: &[u8], i: usize) -> Result<u8> {
    let c = hex[i];
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => {
            // Report the whole character, which may be multi-byte.
            let s = String::from_utf8_lossy(&hex[i..]);
            let ch = s.chars().next().unwrap_or('?');
            Err(error(
                sqlstate::INVALID_PARAMETER_VALUE,
                format!("invalid hexadecimal digit: \"{ch}\""),
            ))
        }
    }
}

// ---------------------------------------------------------------------------
// Dates and times

/// Days since 1970-01-01 of a proleptic Gregorian date (year 0 is 1 BC).
///
/// Howard Hinnant, "chrono-Compatible Low-Level Date Algorithms",
/// `days_from_civil`: <http://howardhinnant.github.io/date_algorithms.html#days_from_civil>.
const fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400; // [0, 399]
    let mp = ((month + 9) % 12) as i64; // March is 0
    let doy = (153 * mp + 2) / 5 + day as i64 - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`] (Hinnant's `civil_from_days`).
const fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, day)
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A parsed date or timestamp literal.
enum DateTimeLiteral {
    /// Days since 2000-01-01 and microseconds into that day (up to 24:00:00,
    /// or a leap second past it).
    Finite {
        days: i64,
        micros: i64,
    },
    PosInfinity,
    NegInfinity,
}

/// Parses the ISO date/time forms PostgreSQL accepts (see [`Value::parse`]).
/// `type_name` is `date` or `timestamp`, for messages.
fn parse_datetime(text: &str, type_name: &str) -> Result<DateTimeLiteral> {
    let syntax = || {
        error(
            sqlstate::INVALID_DATETIME_FORMAT,
            format!("invalid input syntax for type {type_name}: \"{text}\""),
        )
    };
    let field_overflow = || {
        error(
            sqlstate::DATETIME_FIELD_OVERFLOW,
            format!("date/time field value out of range: \"{text}\""),
        )
    };
    let lower = pg_trim(text).to_ascii_lowercase();
    match lower.as_str() {
        "infinity" | "+infinity" => return Ok(DateTimeLiteral::PosInfinity),
        "-infinity" => return Ok(DateTimeLiteral::NegInfinity),
        "epoch" => {
            return Ok(DateTimeLiteral::Finite {
                days: days_from_civil(1970, 1, 1) - PG_EPOCH_UNIX_DAYS,
                micros: 0,
            });
        }
        "now" | "today" | "tomorrow" | "yesterday" | "allballs" => {
            return Err(SqlError::unsupported(format!("date/time value \"{lower}\"")));
        }
        _ => {}
    }
    let b = lower.as_bytes();
    let mut p = 0;
    let digits = |p: &mut usize| -> (u64, usize) {
        let start = *p;
        let mut v: u64 = 0;
        while *p < b.len() && b[*p].is_ascii_digit() {
            v = v.saturating_mul(10).saturating_add((b[*p] - b'0') as u64);
            *p += 1;
        }
        (v, *p - start)
    };
    let expect = |p: &mut usize, c: u8| -> bool {
        if b.get(*p) == Some(&c) {
            *p += 1;
            true
        } else {
            false
        }
    };
    let skip_spaces = |p: &mut usize| {
        while *p < b.len() && is_pg_space(b[*p]) {
            *p += 1;
        }
    };

    // Date: a year of 3 or more digits (shorter years depend on DateStyle).
    let (year, year_len) = digits(&mut p);
    if year_len < 3 || !expect(&mut p, b'-') {
        return Err(syntax());
    }
    let (month, month_len) = digits(&mut p);
    if !(1..=2).contains(&month_len) || !expect(&mut p, b'-') {
        return Err(syntax());
    }
    let (day, day_len) = digits(&mut p);
    if !(1..=2).contains(&day_len) {
        return Err(syntax());
    }

    // Time: after a space or a 'T'.
    let (mut hour, mut minute, mut second, mut fraction_micros) = (0u64, 0u64, 0u64, 0u64);
    let mut has_time = false;
    let before_time = p;
    if p < b.len() && (b[p] == b't' || is_pg_space(b[p])) {
        p += 1;
        skip_spaces(&mut p);
        if p < b.len() && b[p].is_ascii_digit() {
            has_time = true;
            let (h, h_len) = digits(&mut p);
            if !(1..=2).contains(&h_len) || !expect(&mut p, b':') {
                return Err(syntax());
            }
            let (m, m_len) = digits(&mut p);
            if !(1..=2).contains(&m_len) {
                return Err(syntax());
            }
            hour = h;
            minute = m;
            if expect(&mut p, b':') {
                let (s, s_len) = digits(&mut p);
                if !(1..=2).contains(&s_len) {
                    return Err(syntax());
                }
                second = s;
                if expect(&mut p, b'.') {
                    // Microseconds, rounded half up on the 7th digit.
                    let start = p;
                    let mut scale = 100_000;
                    while p < b.len() && b[p].is_ascii_digit() {
                        let d = (b[p] - b'0') as u64;
                        if scale >= 1 {
                            fraction_micros += d * scale;
                        } else if p - start == 6 && d >= 5 {
                            fraction_micros += 1;
                        }
                        scale /= 10;
                        p += 1;
                    }
                }
            }
        } else {
            p = before_time;
        }
    }
    skip_spaces(&mut p);
    // A time zone, ignored as PostgreSQL ignores it for timestamp without time zone.
    if has_time && p < b.len() {
        if b[p] == b'+' || b[p] == b'-' {
            p += 1;
            let (_, len) = digits(&mut p);
            if len == 0 || len > 6 {
                return Err(syntax());
            }
            while expect(&mut p, b':') {
                let (_, len) = digits(&mut p);
                if len != 2 {
                    return Err(syntax());
                }
            }
        } else if b[p..].starts_with(b"utc") || b[p..].starts_with(b"gmt") {
            p += 3;
        } else if b[p] == b'z' {
            p += 1;
        }
        skip_spaces(&mut p);
    }
    let mut before_christ = false;
    if b[p..].starts_with(b"bc") {
        before_christ = true;
        p += 2;
    } else if b[p..].starts_with(b"ad") {
        p += 2;
    }
    skip_spaces(&mut p);
    if p != b.len() {
        return Err(syntax());
    }

    if year == 0 || !(1..=12).contains(&month) {
        return Err(field_overflow());
    }
    // Years this large are out of range anyway; keep the arithmetic small.
    let year = year.min(100_000_000) as i64;
    let year = if before_christ { 1 - year } else { year };
    let (month, day) = (month as u32, day.min(99) as u32);
    if day < 1 || day > days_in_month(year, month) {
        return Err(field_overflow());
    }
    if hour > 24
        || minute > 59
        || second > 60
        || (hour == 24 && (minute > 0 || second > 0 || fraction_micros > 0))
    {
        return Err(field_overflow());
    }
    let days = days_from_civil(year, month, day) - PG_EPOCH_UNIX_DAYS;
    let micros = ((hour * 60 + minute) * 60 + second) * 1_000_000 + fraction_micros;
    Ok(DateTimeLiteral::Finite { days, micros: micros as i64 })
}

fn parse_date(text: &str) -> Result<i32> {
    match parse_datetime(text, "date")? {
        DateTimeLiteral::PosInfinity => Ok(DATE_POS_INFINITY),
        DateTimeLiteral::NegInfinity => Ok(DATE_NEG_INFINITY),
        DateTimeLiteral::Finite { days, .. } => {
            if !(DATE_MIN_DAYS..DATE_END_DAYS).contains(&days) {
                return Err(error(
                    sqlstate::DATETIME_FIELD_OVERFLOW,
                    format!("date out of range: \"{text}\""),
                ));
            }
            Ok(days as i32)
        }
    }
}

fn parse_timestamp(text: &str) -> Result<i64> {
    match parse_datetime(text, "timestamp")? {
        DateTimeLiteral::PosInfinity => Ok(TIMESTAMP_POS_INFINITY),
        DateTimeLiteral::NegInfinity => Ok(TIMESTAMP_NEG_INFINITY),
        DateTimeLiteral::Finite { days, micros } => {
            let t = (days as i128) * (USECS_PER_DAY as i128) + micros as i128;
            if !(TIMESTAMP_MIN as i128..TIMESTAMP_END as i128).contains(&t) {
                return Err(error(
                    sqlstate::DATETIME_FIELD_OVERFLOW,
                    format!("timestamp out of range: \"{text}\""),
                ));
            }
            Ok(t as i64)
        }
    }
}

/// `YYYY-MM-DD` (at least four year digits), with ` BC` before year 1.
fn format_ymd(days_since_2000: i64, out: &mut String) -> bool {
    use std::fmt::Write;
    let (year, month, day) = civil_from_days(days_since_2000 + PG_EPOCH_UNIX_DAYS);
    let before_christ = year <= 0;
    let shown_year = if before_christ { 1 - year } else { year };
    let _ = write!(out, "{shown_year:04}-{month:02}-{day:02}");
    before_christ
}

fn format_date(d: i32) -> String {
    match d {
        DATE_NEG_INFINITY => "-infinity".to_string(),
        DATE_POS_INFINITY => "infinity".to_string(),
        d => {
            let mut out = String::with_capacity(13);
            if format_ymd(d as i64, &mut out) {
                out.push_str(" BC");
            }
            out
        }
    }
}

fn format_timestamp(t: i64) -> String {
    use std::fmt::Write;
    match t {
        TIMESTAMP_NEG_INFINITY => "-infinity".to_string(),
        TIMESTAMP_POS_INFINITY => "infinity".to_string(),
        t => {
            let mut out = String::with_capacity(29);
            let before_christ = format_ymd(t.div_euclid(USECS_PER_DAY), &mut out);
            let time = t.rem_euclid(USECS_PER_DAY);
            let seconds = time / 1_000_000;
            let micros = time % 1_000_000;
            let _ =
                write!(out, " {:02}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60);
            if micros != 0 {
                let fraction = format!("{micros:06}");
                out.push('.');
                out.push_str(fraction.trim_end_matches('0'));
            }
            if before_christ {
                out.push_str(" BC");
            }
            out
        }
    }
}

// ---------------------------------------------------------------------------
// Output functions

/// PostgreSQL 15's `float8out`/`float4out` with `extra_float_digits = 1`: the
/// shortest digits that read back to the same value (Ryu there, Rust's
/// shortest formatting here: both pick the closest shortest digits), in fixed
/// notation when the decimal exponent is in [-4, 15) ([-4, 6) for real), as
/// `printf("%g")` would, else `d.ddde±XX`.
fn format_float(f: f64, is_real: bool) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    let shortest = if is_real { format!("{:e}", f as f32) } else { format!("{f:e}") };
    let (mantissa, exponent) = shortest.split_once('e').expect("LowerExp output has an exponent");
    let exponent: i32 = exponent.parse().expect("LowerExp exponent is an integer");
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let mut out = String::with_capacity(digits.len() + 8);
    if negative {
        out.push('-');
    }
    let fixed_limit = if is_real { 6 } else { 15 };
    if exponent < -4 || exponent >= fixed_limit {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exponent < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exponent.unsigned_abs()));
    } else if exponent >= 0 {
        let integer_len = exponent as usize + 1;
        if digits.len() <= integer_len {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', integer_len - digits.len()));
        } else {
            out.push_str(&digits[..integer_len]);
            out.push('.');
            out.push_str(&digits[integer_len..]);
        }
    } else {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-exponent - 1) as usize));
        out.push_str(&digits);
    }
    out
}

fn format_bytea(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 + bytes.len() * 2);
    out.push_str("\\x");
    for &b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
    out
}

// ---------------------------------------------------------------------------
// Comparison

/// The order of kinds that cannot be compared with each other, for
/// `sort_cmp`; also the kind tag hashed by `hash_key`.
fn kind_rank(v: &Value) -> u8 {
    match v {
        Value::Bool(_) => 0,
        Value::Int(_) | Value::Float(_) | Value::Numeric(_) => 1,
        Value::Text(_) => 2,
        Value::Bytes(_) => 3,
        Value::Date(_) | Value::Timestamp(_) => 4,
        Value::Null => 5,
    }
}

fn cmp_non_null(a: &Value, b: &Value) -> Option<Ordering> {
    use Value as V;
    Some(match (a, b) {
        (V::Bool(x), V::Bool(y)) => x.cmp(y),
        (V::Int(_) | V::Float(_) | V::Numeric(_), V::Int(_) | V::Float(_) | V::Numeric(_)) => {
            cmp_numbers(a, b)
        }
        (V::Text(x), V::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
        (V::Bytes(x), V::Bytes(y)) => x.cmp(y),
        (V::Date(_) | V::Timestamp(_), V::Date(_) | V::Timestamp(_)) => {
            datetime_key(a).cmp(&datetime_key(b))
        }
        _ => return None,
    })
}

/// Orders dates and timestamps together: a date is its midnight; infinities
/// are the extremes.
fn datetime_key(v: &Value) -> i128 {
    match *v {
        Value::Date(DATE_POS_INFINITY) | Value::Timestamp(TIMESTAMP_POS_INFINITY) => i128::MAX,
        Value::Date(DATE_NEG_INFINITY) | Value::Timestamp(TIMESTAMP_NEG_INFINITY) => i128::MIN,
        Value::Date(d) => d as i128 * USECS_PER_DAY as i128,
        Value::Timestamp(t) => t as i128,
        _ => unreachable!("datetime_key of a non-datetime value"),
    }
}

/// Exact comparison of two numbers of any numeric kind.
fn cmp_numbers(a: &Value, b: &Value) -> Ordering {
    use Value as V;
    match (a, b) {
        (V::Int(x), V::Int(y)) => x.cmp(y),
        (V::Float(x), V::Float(y)) => cmp_f64(*x, *y),
        (V::Numeric(x), V::Numeric(y)) => x.cmp(y),
        (V::Int(x), V::Float(y)) => cmp_i64_f64(*x, *y),
        (V::Float(x), V::Int(y)) => cmp_i64_f64(*y, *x).reverse(),
        (V::Int(x), V::Numeric(y)) => Decimal::from(*x).cmp(y),
        (V::Numeric(x), V::Int(y)) => x.cmp(&Decimal::from(*y)),
        (V::Numeric(x), V::Float(y)) => cmp_decimal_f64(x, *y),
        (V::Float(x), V::Numeric(y)) => cmp_decimal_f64(y, *x).reverse(),
        _ => unreachable!("cmp_numbers of a non-number"),
    }
}

/// PostgreSQL's float order: NaN equals NaN and is above everything; -0 = 0.
fn cmp_f64(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.partial_cmp(&b).expect("non-NaN floats are ordered"),
    }
}

/// Exact comparison of an integer with a float.
fn cmp_i64_f64(i: i64, f: f64) -> Ordering {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f.is_nan() || f >= TWO_63 {
        return Ordering::Less;
    }
    if f < -TWO_63 {
        return Ordering::Greater;
    }
    let truncated = f.trunc();
    match i.cmp(&(truncated as i64)) {
        Ordering::Equal => 0.0f64.partial_cmp(&(f - truncated)).expect("finite"),
        other => other,
    }
}

/// Exact comparison of a decimal with a float: compares `M / 10^s` with
/// `m * 2^e` as big integers.
fn cmp_decimal_f64(d: &Decimal, f: f64) -> Ordering {
    if f.is_nan() || f == f64::INFINITY {
        return Ordering::Less;
    }
    if f == f64::NEG_INFINITY {
        return Ordering::Greater;
    }
    let sign_d = if d.is_zero() {
        0
    } else if d.is_sign_negative() {
        -1
    } else {
        1
    };
    let sign_f = if f == 0.0 {
        0
    } else if f < 0.0 {
        -1
    } else {
        1
    };
    if sign_d != sign_f || sign_d == 0 {
        return sign_d.cmp(&sign_f);
    }
    // |d| = big_d / 10^scale, |f| = m * 2^e: compare big_d * 2^-e with m * 10^scale.
    let (m, e) = decompose_f64(f);
    let mut left = BigUint::from_u128(d.mantissa().unsigned_abs());
    let mut right = BigUint::from_u128(m as u128);
    for _ in 0..d.scale() {
        right.mul_small(10);
    }
    if e >= 0 {
        right.shl(e as u32);
    } else {
        left.shl((-e) as u32);
    }
    let magnitude = left.compare(&right);
    if sign_d < 0 { magnitude.reverse() } else { magnitude }
}

/// Splits a finite float into `|f| = m * 2^e` with an integer `m < 2^53`.
fn decompose_f64(f: f64) -> (u64, i32) {
    let bits = f.abs().to_bits();
    let biased_exponent = (bits >> 52) as i32;
    let fraction = bits & ((1 << 52) - 1);
    if biased_exponent == 0 {
        (fraction, -1074)
    } else {
        (fraction | 1 << 52, biased_exponent - 1075)
    }
}

/// Just enough of an unsigned big integer for [`cmp_decimal_f64`].
struct BigUint {
    /// Little-endian 32-bit limbs.
    limbs: Vec<u32>,
}

impl BigUint {
    fn from_u128(x: u128) -> BigUint {
        let limbs = (0..4).map(|i| (x >> (32 * i)) as u32).collect();
        BigUint { limbs }
    }

    fn mul_small(&mut self, k: u32) {
        let mut carry = 0u64;
        for limb in &mut self.limbs {
            let product = *limb as u64 * k as u64 + carry;
            *limb = product as u32;
            carry = product >> 32;
        }
        if carry != 0 {
            self.limbs.push(carry as u32);
        }
    }

    fn shl(&mut self, bits: u32) {
        let words = (bits / 32) as usize;
        let bits = bits % 32;
        if bits != 0 {
            let mut carry = 0u32;
            for limb in &mut self.limbs {
                let shifted = (*limb as u64) << bits | carry as u64;
                *limb = shifted as u32;
                carry = (shifted >> 32) as u32;
            }
            if carry != 0 {
                self.limbs.push(carry);
            }
        }
        self.limbs.splice(0..0, std::iter::repeat_n(0, words));
    }

    fn significant(&self) -> &[u32] {
        let len = self.limbs.iter().rposition(|&l| l != 0).map_or(0, |i| i + 1);
        &self.limbs[..len]
    }

    fn compare(&self, other: &BigUint) -> Ordering {
        let (a, b) = (self.significant(), other.significant());
        a.len().cmp(&b.len()).then_with(|| a.iter().rev().cmp(b.iter().rev()))
    }
}

/// The canonical form of a number, for [`Value::hash_key`].
enum NumberKey {
    Integer(i128),
    /// Normalised mantissa and scale > 0.
    Decimal(i128, u32),
    Float(u64),
}

fn number_key(v: &Value) -> NumberKey {
    match v {
        Value::Int(i) => NumberKey::Integer(*i as i128),
        Value::Numeric(d) => {
            let n = d.normalize();
            if n.scale() == 0 {
                NumberKey::Integer(n.mantissa())
            } else {
                NumberKey::Decimal(n.mantissa(), n.scale())
            }
        }
        Value::Float(f) => {
            const TWO_127: f64 = 1.7014118346046923e38;
            if f.is_nan() {
                NumberKey::Float(f64::NAN.to_bits())
            } else if f.is_infinite() {
                NumberKey::Float(f.to_bits())
            } else if f.fract() == 0.0 && f.abs() < TWO_127 {
                NumberKey::Integer(*f as i128)
            } else {
                // |f| = m / 2^k with m odd; it equals a decimal exactly iff
                // m * 5^k / 10^k fits rust_decimal: k <= 28 and m * 5^k < 2^96.
                let (m, e) = decompose_f64(*f);
                let exact = if e >= 0 {
                    None // an integer of 2^127 or more: beyond any decimal
                } else {
                    let k = (-e) as u32 - m.trailing_zeros().min((-e) as u32);
                    let m = m >> ((-e) as u32 - k);
                    (k <= MAX_NUMERIC_SCALE)
                        .then(|| m as u128 * 5u128.pow(k))
                        .filter(|&mantissa| mantissa <= MAX_MANTISSA)
                        .map(|mantissa| (mantissa, k))
                };
                match exact {
                    Some((mantissa, k)) if *f < 0.0 => NumberKey::Decimal(-(mantissa as i128), k),
                    Some((mantissa, k)) => NumberKey::Decimal(mantissa as i128, k),
                    None => NumberKey::Float(f.to_bits()),
                }
            }
        }
        _ => unreachable!("number_key of a non-number"),
    }
}

// ---------------------------------------------------------------------------
// Arithmetic

/// The result type of a binary arithmetic operator, by PostgreSQL's operator
/// resolution: two integers give the wider (`int2 + int2` is int2), an
/// integer or numeric with a numeric gives numeric, real with real gives real,
/// any other mix with a float gives double precision (`1 + 1.5::real` is
/// double precision, as is `numeric + real`). `None` unless both are numeric.
pub fn arithmetic_result_type(left: &DataType, right: &DataType) -> Option<DataType> {
    use DataType as T;
    if !left.is_numeric() || !right.is_numeric() {
        return None;
    }
    Some(match (left, right) {
        (T::Float8, _) | (_, T::Float8) => T::Float8,
        (T::Float4, T::Float4) => T::Float4,
        (T::Float4, _) | (_, T::Float4) => T::Float8,
        (T::Numeric { .. }, _) | (_, T::Numeric { .. }) => {
            T::Numeric { precision: None, scale: None }
        }
        (T::Int8, _) | (_, T::Int8) => T::Int8,
        (T::Int4, _) | (_, T::Int4) => T::Int4,
        _ => T::Int2,
    })
}

/// Applies `op` with PostgreSQL semantics in the `result` type (from
/// [`arithmetic_result_type`]); operands of any numeric kind are converted.
/// NULL in, NULL out.
///
/// - Integers: overflow at the result type's width is 22003 (`smallint out of
///   range`, ...); division truncates toward zero; `x % -1` is 0.
/// - Division or modulo by zero is 22012 `division by zero`, for every type.
/// - Numeric: exact; addition and subtraction keep the larger scale,
///   multiplication the sum of scales, modulo the larger scale, division
///   PostgreSQL's `select_div_scale` (at least 16 significant digits and
///   no less than either input's scale: `1/3` is `0.33333333333333333333`,
///   `10/4` is `2.5000000000000000`), rounded half away from zero. Beyond
///   `rust_decimal`'s 28 places the scale is lowered. Overflow is 22003 `value
///   overflows numeric format`.
/// - Floats: IEEE arithmetic in the result width; a finite result becoming
///   infinite is 22003 `value out of range: overflow`, a nonzero product or
///   quotient becoming zero `value out of range: underflow`. PostgreSQL has no
///   float `%`: 42883.
pub fn arithmetic(op: ArithOp, left: &Value, right: &Value, result: &DataType) -> Result<Value> {
    if left.is_null() || right.is_null() {
        return Ok(Value::Null);
    }
    match result {
        DataType::Int2 | DataType::Int4 | DataType::Int8 => {
            integer_arithmetic(op, integer_operand(left)?, integer_operand(right)?, result)
        }
        DataType::Float4 => {
            if op == ArithOp::Mod {
                return Err(no_float_modulo(result));
            }
            let (a, b) = (float_operand(left)? as f32, float_operand(right)? as f32);
            let r = match op {
                ArithOp::Add => a + b,
                ArithOp::Sub => a - b,
                ArithOp::Mul => a * b,
                ArithOp::Div => {
                    if b == 0.0 && !a.is_nan() {
                        return Err(division_by_zero());
                    }
                    a / b
                }
                ArithOp::Mod => unreachable!(),
            };
            check_float_result(op, a as f64, b as f64, r as f64).map(Value::Float)
        }
        DataType::Float8 => {
            if op == ArithOp::Mod {
                return Err(no_float_modulo(result));
            }
            let (a, b) = (float_operand(left)?, float_operand(right)?);
            let r = match op {
                ArithOp::Add => a + b,
                ArithOp::Sub => a - b,
                ArithOp::Mul => a * b,
                ArithOp::Div => {
                    if b == 0.0 && !a.is_nan() {
                        return Err(division_by_zero());
                    }
                    a / b
                }
                ArithOp::Mod => unreachable!(),
            };
            check_float_result(op, a, b, r).map(Value::Float)
        }
        DataType::Numeric { .. } => {
            let r = numeric_arithmetic(op, numeric_operand(left)?, numeric_operand(right)?)?;
            apply_numeric_typmod(r, result).map(Value::Numeric)
        }
        other => Err(SqlError::internal(format!("arithmetic in type {}", other.pg_name()))),
    }
}

/// Unary minus in type `ty`: `-(-32768::int2)` is 22003 `smallint out of range`.
pub fn negate(v: &Value, ty: &DataType) -> Result<Value> {
    match v {
        Value::Null => Ok(Value::Null),
        Value::Int(i) => {
            let ty = if ty.is_integer() { ty } else { &DataType::Int8 };
            check_int(-(*i as i128), ty)
        }
        Value::Float(f) => Ok(Value::Float(-f)),
        Value::Numeric(d) => Ok(Value::Numeric(canonical_zero(-*d))),
        other => Err(SqlError::internal(format!("negate {other:?}"))),
    }
}

fn no_float_modulo(ty: &DataType) -> SqlError {
    let name = ty.base_name();
    error(sqlstate::UNDEFINED_FUNCTION, format!("operator does not exist: {name} % {name}"))
}

fn integer_operand(v: &Value) -> Result<i64> {
    match v.cast(&DataType::Int8)? {
        Value::Int(i) => Ok(i),
        other => Err(SqlError::internal(format!("integer operand {other:?}"))),
    }
}

fn float_operand(v: &Value) -> Result<f64> {
    match v {
        Value::Int(i) => Ok(*i as f64),
        Value::Float(f) => Ok(*f),
        Value::Numeric(d) => Ok(numeric_to_f64(d)),
        other => Err(SqlError::internal(format!("float operand {other:?}"))),
    }
}

fn numeric_operand(v: &Value) -> Result<Decimal> {
    match v {
        Value::Int(i) => Ok(Decimal::from(*i)),
        Value::Numeric(d) => Ok(*d),
        Value::Float(f) => float_to_numeric(*f, false),
        other => Err(SqlError::internal(format!("numeric operand {other:?}"))),
    }
}

fn integer_arithmetic(op: ArithOp, a: i64, b: i64, ty: &DataType) -> Result<Value> {
    let (a, b) = (a as i128, b as i128);
    let r = match op {
        ArithOp::Add => a + b,
        ArithOp::Sub => a - b,
        ArithOp::Mul => a * b,
        ArithOp::Div => {
            if b == 0 {
                return Err(division_by_zero());
            }
            a / b
        }
        ArithOp::Mod => {
            if b == 0 {
                return Err(division_by_zero());
            }
            a % b
        }
    };
    check_int(r, ty)
}

/// PostgreSQL's `float8_pl`, `float8_mul`, `float8_div` checks.
fn check_float_result(op: ArithOp, a: f64, b: f64, r: f64) -> Result<f64> {
    let overflow = match op {
        ArithOp::Div => r.is_infinite() && !a.is_infinite(),
        _ => r.is_infinite() && !a.is_infinite() && !b.is_infinite(),
    };
    if overflow {
        return Err(float_overflow());
    }
    let underflow = match op {
        ArithOp::Mul => r == 0.0 && a != 0.0 && b != 0.0,
        ArithOp::Div => r == 0.0 && a != 0.0 && !b.is_infinite(),
        _ => false,
    };
    if underflow {
        return Err(float_underflow());
    }
    Ok(r)
}

fn numeric_arithmetic(op: ArithOp, a: Decimal, b: Decimal) -> Result<Decimal> {
    let r = match op {
        ArithOp::Add => {
            let mut r = a.checked_add(b).ok_or_else(numeric_overflow)?;
            r.rescale(a.scale().max(b.scale()));
            r
        }
        ArithOp::Sub => {
            let mut r = a.checked_sub(b).ok_or_else(numeric_overflow)?;
            r.rescale(a.scale().max(b.scale()));
            r
        }
        ArithOp::Mul => {
            let mut r = a.checked_mul(b).ok_or_else(numeric_overflow)?;
            r.rescale((a.scale() + b.scale()).min(MAX_NUMERIC_SCALE));
            r
        }
        ArithOp::Div => numeric_div(a, b)?,
        ArithOp::Mod => {
            if b.is_zero() {
                return Err(division_by_zero());
            }
            let mut r = a.checked_rem(b).ok_or_else(numeric_overflow)?;
            r.rescale(a.scale().max(b.scale()));
            r
        }
    };
    Ok(canonical_zero(r))
}

/// The weight and first digit of `d` in PostgreSQL's base-10000 numeric
/// representation: `d = first * 10000^weight + (smaller digits)`.
fn nbase_weight_and_first_digit(d: &Decimal) -> (i32, u128) {
    let m = d.mantissa().unsigned_abs();
    if m == 0 {
        return (0, 0);
    }
    let scale = d.scale() as i32;
    let leading_exponent = decimal_digits(m) as i32 - 1 - scale;
    let weight = leading_exponent.div_euclid(4);
    let shift = scale + 4 * weight;
    let first =
        if shift >= 0 { m / 10u128.pow(shift as u32) } else { m * 10u128.pow((-shift) as u32) };
    (weight, first)
}

/// PostgreSQL's `select_div_scale`: enough places for 16 significant digits
/// in the quotient, and at least either input's scale.
fn select_div_scale(a: &Decimal, b: &Decimal) -> u32 {
    const NUMERIC_MIN_SIG_DIGITS: i32 = 16;
    const DEC_DIGITS: i32 = 4;
    let (weight1, first1) = nbase_weight_and_first_digit(a);
    let (weight2, first2) = nbase_weight_and_first_digit(b);
    let mut quotient_weight = weight1 - weight2;
    if first1 <= first2 {
        quotient_weight -= 1;
    }
    let scale = (NUMERIC_MIN_SIG_DIGITS - quotient_weight * DEC_DIGITS)
        .max(a.scale() as i32)
        .max(b.scale() as i32)
        .clamp(0, 1000);
    scale as u32
}

/// Numeric division rounded half away from zero at `select_div_scale`
/// places (fewer if the quotient would not fit `rust_decimal`), computed
/// exactly by long division.
fn numeric_div(a: Decimal, b: Decimal) -> Result<Decimal> {
    if b.is_zero() {
        return Err(division_by_zero());
    }
    let negative = a.is_sign_negative() != b.is_sign_negative();
    let (big_a, big_b) = (a.mantissa().unsigned_abs(), b.mantissa().unsigned_abs());
    let mut scale = select_div_scale(&a, &b).min(MAX_NUMERIC_SCALE);
    loop {
        // a / b * 10^scale = (A / B) * 10^(scale + sb - sa)
        let k = scale as i64 + b.scale() as i64 - a.scale() as i64;
        let quotient = if k >= 0 {
            let mut q = big_a / big_b;
            let mut r = big_a % big_b;
            let mut fits = q <= MAX_MANTISSA;
            for _ in 0..k {
                if !fits {
                    break;
                }
                q = q * 10 + (r * 10) / big_b;
                r = (r * 10) % big_b;
                fits = q <= MAX_MANTISSA;
            }
            if fits && r >= big_b - r {
                q += 1;
            }
            fits.then_some(q)
        } else {
            match 10u128.checked_pow((-k) as u32).and_then(|p| big_b.checked_mul(p)) {
                Some(divisor) => {
                    let (q, r) = (big_a / divisor, big_a % divisor);
                    Some(if r >= divisor - r { q + 1 } else { q })
                }
                None => Some(0),
            }
        };
        match quotient {
            Some(q) if q <= MAX_MANTISSA => {
                let signed = if negative { -(q as i128) } else { q as i128 };
                return Ok(canonical_zero(Decimal::from_i128_with_scale(signed, scale)));
            }
            _ if scale > 0 => scale -= 1,
            _ => return Err(numeric_overflow()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;
    use std::hash::DefaultHasher;

    fn ast_type(sql: &str) -> ast::DataType {
        Parser::new(&PostgreSqlDialect {})
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_data_type())
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn num(s: &str) -> Value {
        Value::Numeric(dec(s))
    }

    fn text(s: &str) -> Value {
        Value::Text(s.to_string())
    }

    fn numeric(p: u32, s: u32) -> DataType {
        DataType::Numeric { precision: Some(p), scale: Some(s) }
    }

    const NUMERIC: DataType = DataType::Numeric { precision: None, scale: None };

    /// A wanted result: a value, or an error's SQLSTATE and message.
    type Expected = std::result::Result<Value, (&'static str, &'static str)>;

    /// Asserts a result: `Ok(value)` compares with `==` and, for numerics, also
    /// by scale and text; `Err` by SQLSTATE and message.
    #[track_caller]
    fn check(context: &str, got: Result<Value>, want: Expected) {
        match (got, want) {
            (Ok(got), Ok(want)) => {
                let same = match (&got, &want) {
                    (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
                    (Value::Numeric(a), Value::Numeric(b)) => a.to_string() == b.to_string(),
                    (a, b) => a == b,
                };
                assert!(same, "{context}: got {got:?}, want {want:?}");
            }
            (Err(got), Err((code, message))) => {
                assert_eq!((got.code, got.message.as_str()), (code, message), "{context}");
            }
            (got, want) => panic!("{context}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn from_ast_maps_postgres_type_names() {
        use DataType as T;
        let cases = [
            ("int", T::Int4),
            ("integer", T::Int4),
            ("int4", T::Int4),
            ("smallint", T::Int2),
            ("int2", T::Int2),
            ("bigint", T::Int8),
            ("int8", T::Int8),
            ("real", T::Float4),
            ("float4", T::Float4),
            ("double precision", T::Float8),
            ("float8", T::Float8),
            ("float", T::Float8),
            ("float(1)", T::Float4),
            ("float(24)", T::Float4),
            ("float(25)", T::Float8),
            ("float(53)", T::Float8),
            ("numeric", NUMERIC),
            ("numeric(10)", numeric(10, 0)),
            ("numeric(10,2)", numeric(10, 2)),
            ("decimal(5,2)", numeric(5, 2)),
            ("dec(3,1)", numeric(3, 1)),
            ("text", T::Text),
            ("varchar", T::Varchar(None)),
            ("varchar(10)", T::Varchar(Some(10))),
            ("character varying(3)", T::Varchar(Some(3))),
            ("char varying(3)", T::Varchar(Some(3))),
            ("char", T::Char(Some(1))),
            ("character", T::Char(Some(1))),
            ("char(5)", T::Char(Some(5))),
            ("character(5)", T::Char(Some(5))),
            ("bpchar", T::Char(None)),
            ("bytea", T::Bytea),
            ("date", T::Date),
            ("timestamp", T::Timestamp),
            ("timestamp without time zone", T::Timestamp),
            ("timestamp(6)", T::Timestamp),
            ("boolean", T::Bool),
            ("bool", T::Bool),
            ("pg_catalog.int4", T::Int4),
        ];
        for (sql, want) in cases {
            assert_eq!(DataType::from_ast(&ast_type(sql)), Ok(want), "{sql}");
        }
    }

    #[test]
    fn from_ast_rejects_unknown_and_unsupported_types() {
        let cases = [
            ("timestamp with time zone", "0A000", "type timestamp with time zone is not supported"),
            ("timestamptz", "0A000", "type timestamp with time zone is not supported"),
            ("json", "0A000", "type json is not supported"),
            ("uuid", "0A000", "type uuid is not supported"),
            ("interval", "0A000", "type interval is not supported"),
            ("money", "0A000", "type money is not supported"),
            ("timestamp(3)", "0A000", "type timestamp(3) is not supported"),
            ("foo", "42704", "type \"foo\" does not exist"),
            ("serial", "42704", "type \"serial\" does not exist"),
            ("tinyint", "42704", "type \"tinyint\" does not exist"),
            ("varchar(0)", "22023", "length for type varchar must be at least 1"),
            ("char(0)", "22023", "length for type char must be at least 1"),
            ("varchar(10485761)", "22023", "length for type varchar cannot exceed 10485760"),
            ("numeric(0)", "22023", "NUMERIC precision 0 must be between 1 and 1000"),
            ("numeric(1001,2)", "22023", "NUMERIC precision 1001 must be between 1 and 1000"),
            ("numeric(40,30)", "0A000", "NUMERIC scale above 28 is not supported"),
            ("float(0)", "22023", "precision for type float must be at least 1 bit"),
            ("float(54)", "22023", "precision for type float must be less than 54 bits"),
            ("int(11)", "42601", "syntax error at or near \"(\""),
            ("text(5)", "42601", "type modifier is not allowed for type \"text\""),
        ];
        for (sql, code, message) in cases {
            let err = DataType::from_ast(&ast_type(sql)).expect_err(sql);
            assert_eq!((err.code, err.message.as_str()), (code, message), "{sql}");
        }
    }

    #[test]
    fn names_and_oids_match_postgres() {
        use DataType as T;
        let cases = [
            (T::Bool, "boolean", 16),
            (T::Int2, "smallint", 21),
            (T::Int4, "integer", 23),
            (T::Int8, "bigint", 20),
            (T::Float4, "real", 700),
            (T::Float8, "double precision", 701),
            (numeric(10, 2), "numeric(10,2)", 1700),
            (DataType::Numeric { precision: Some(7), scale: None }, "numeric(7,0)", 1700),
            (NUMERIC, "numeric", 1700),
            (T::Text, "text", 25),
            (T::Varchar(Some(10)), "character varying(10)", 1043),
            (T::Varchar(None), "character varying", 1043),
            (T::Char(Some(1)), "character(1)", 1042),
            (T::Char(None), "bpchar", 1042),
            (T::Bytea, "bytea", 17),
            (T::Date, "date", 1082),
            (T::Timestamp, "timestamp without time zone", 1114),
        ];
        for (ty, name, oid) in cases {
            assert_eq!((ty.pg_name(), ty.oid()), (name.to_string(), oid), "{ty:?}");
        }
        assert!(T::Int2.is_integer() && !T::Float4.is_integer());
        assert!(T::Float4.is_numeric() && NUMERIC.is_numeric() && !T::Text.is_numeric());
        assert!(T::Char(None).is_string() && T::Varchar(None).is_string() && !T::Bytea.is_string());
    }

    #[test]
    fn explicit_casts_follow_postgres() {
        use DataType as T;
        use Value as V;
        let cases: Vec<(Value, DataType, Expected)> = vec![
            // integers
            (V::Int(32767), T::Int2, Ok(V::Int(32767))),
            (V::Int(32768), T::Int2, Err(("22003", "smallint out of range"))),
            (V::Int(-32769), T::Int2, Err(("22003", "smallint out of range"))),
            (V::Int(2147483648), T::Int4, Err(("22003", "integer out of range"))),
            (V::Int(-2147483648), T::Int4, Ok(V::Int(-2147483648))),
            (V::Int(i64::MAX), T::Int8, Ok(V::Int(i64::MAX))),
            (V::Int(3), T::Float4, Ok(V::Float(3.0))),
            (V::Int(16777217), T::Float4, Ok(V::Float(16777216.0))),
            (V::Int(7), numeric(5, 2), Ok(num("7.00"))),
            (V::Int(1000), numeric(5, 2), Err(("22003", "numeric field overflow"))),
            (V::Int(0), T::Bool, Ok(V::Bool(false))),
            (V::Int(-5), T::Bool, Ok(V::Bool(true))),
            (V::Int(1), T::Date, Err(("42846", "cannot cast type integer to date"))),
            (V::Int(1), T::Bytea, Err(("42846", "cannot cast type integer to bytea"))),
            // floats round half to even
            (V::Float(2.5), T::Int4, Ok(V::Int(2))),
            (V::Float(3.5), T::Int4, Ok(V::Int(4))),
            (V::Float(-2.5), T::Int4, Ok(V::Int(-2))),
            (V::Float(2.4999), T::Int2, Ok(V::Int(2))),
            (V::Float(32767.5), T::Int2, Err(("22003", "smallint out of range"))),
            (V::Float(2147483647.4), T::Int4, Ok(V::Int(2147483647))),
            (V::Float(2147483647.5), T::Int4, Err(("22003", "integer out of range"))),
            (V::Float(9.3e18), T::Int8, Err(("22003", "bigint out of range"))),
            (V::Float(f64::NAN), T::Int4, Err(("22003", "integer out of range"))),
            (V::Float(1e300), T::Float4, Err(("22003", "value out of range: overflow"))),
            (V::Float(1e-300), T::Float4, Err(("22003", "value out of range: underflow"))),
            (V::Float(0.1), T::Float4, Ok(V::Float(0.1f32 as f64))),
            (V::Float(f64::INFINITY), T::Float4, Ok(V::Float(f64::INFINITY))),
            (V::Float(0.1), NUMERIC, Ok(num("0.1"))),
            (V::Float(1.0 / 3.0), NUMERIC, Ok(num("0.333333333333333"))),
            (V::Float(1e20), NUMERIC, Ok(num("100000000000000000000"))),
            (V::Float(123.456), numeric(5, 1), Ok(num("123.5"))),
            (V::Float(f64::NAN), NUMERIC, Err(("0A000", "cannot convert NaN to numeric"))),
            (
                V::Float(f64::INFINITY),
                NUMERIC,
                Err(("0A000", "cannot convert infinity to numeric")),
            ),
            (
                V::Float(1.0),
                T::Bool,
                Err(("42846", "cannot cast type double precision to boolean")),
            ),
            // numeric rounds half away from zero
            (num("2.5"), T::Int4, Ok(V::Int(3))),
            (num("-2.5"), T::Int4, Ok(V::Int(-3))),
            (num("2.49"), T::Int4, Ok(V::Int(2))),
            (num("32767.5"), T::Int2, Err(("22003", "smallint out of range"))),
            (num("9223372036854775808"), T::Int8, Err(("22003", "bigint out of range"))),
            (num("1.5"), T::Float8, Ok(V::Float(1.5))),
            (num("0.1"), T::Float4, Ok(V::Float(0.1f32 as f64))),
            (num("1.005"), numeric(3, 2), Ok(num("1.01"))),
            (num("-1.005"), numeric(3, 2), Ok(num("-1.01"))),
            (num("9.995"), numeric(3, 2), Err(("22003", "numeric field overflow"))),
            (num("0.5"), numeric(2, 2), Ok(num("0.50"))),
            (num("1.5"), numeric(2, 2), Err(("22003", "numeric field overflow"))),
            (num("-0.001"), numeric(3, 2), Ok(num("0.00"))),
            (num("1.50"), NUMERIC, Ok(num("1.50"))),
            (num("1"), T::Bool, Err(("42846", "cannot cast type numeric to boolean"))),
            // booleans
            (V::Bool(true), T::Int4, Ok(V::Int(1))),
            (V::Bool(false), T::Int4, Ok(V::Int(0))),
            (V::Bool(true), T::Int8, Err(("42846", "cannot cast type boolean to bigint"))),
            (V::Bool(true), NUMERIC, Err(("42846", "cannot cast type boolean to numeric"))),
            (V::Bool(true), T::Text, Ok(text("true"))),
            (V::Bool(false), T::Varchar(Some(3)), Ok(text("fal"))),
            // to text
            (V::Int(-42), T::Text, Ok(text("-42"))),
            (V::Float(0.1), T::Text, Ok(text("0.1"))),
            (V::Float(1e20), T::Text, Ok(text("1e+20"))),
            (num("1.50"), T::Text, Ok(text("1.50"))),
            (V::Bytes(vec![0x0a, 0xff]), T::Text, Ok(text("\\x0aff"))),
            (V::Date(0), T::Text, Ok(text("2000-01-01"))),
            (V::Timestamp(1_500_000), T::Text, Ok(text("2000-01-01 00:00:01.5"))),
            (text("abcd"), T::Varchar(Some(3)), Ok(text("abc"))),
            (text("abcd"), T::Char(Some(3)), Ok(text("abc"))),
            (text("ab"), T::Char(Some(4)), Ok(text("ab  "))),
            (text("héllo"), T::Varchar(Some(2)), Ok(text("hé"))),
            (text("x"), T::Char(None), Ok(text("x"))),
            // from text: the input functions
            (text(" 42 "), T::Int4, Ok(V::Int(42))),
            (
                text("abc"),
                T::Int4,
                Err(("22P02", "invalid input syntax for type integer: \"abc\"")),
            ),
            (
                text("40000"),
                T::Int2,
                Err(("22003", "value \"40000\" is out of range for type smallint")),
            ),
            (text("1.50"), NUMERIC, Ok(num("1.50"))),
            (text("12.345"), numeric(4, 2), Ok(num("12.35"))),
            (text("yes"), T::Bool, Ok(V::Bool(true))),
            (text("2024-02-29"), T::Date, Ok(V::Date(8825))),
            (text("\\x0a"), T::Bytea, Ok(V::Bytes(vec![10]))),
            // dates and timestamps
            (V::Date(1), T::Timestamp, Ok(V::Timestamp(USECS_PER_DAY))),
            (V::Date(i32::MAX), T::Timestamp, Ok(V::Timestamp(i64::MAX))),
            (
                V::Date(DATE_END_DAYS as i32 - 1),
                T::Timestamp,
                Err(("22008", "date out of range for timestamp")),
            ),
            (V::Timestamp(-1), T::Date, Ok(V::Date(-1))),
            (V::Timestamp(USECS_PER_DAY + 5), T::Date, Ok(V::Date(1))),
            (V::Timestamp(i64::MIN), T::Date, Ok(V::Date(i32::MIN))),
            (V::Date(0), T::Int4, Err(("42846", "cannot cast type date to integer"))),
            (V::Bytes(vec![]), T::Int4, Err(("42846", "cannot cast type bytea to integer"))),
            // NULL
            (V::Null, T::Int4, Ok(V::Null)),
        ];
        for (value, to, want) in cases {
            check(&format!("{value:?}::{}", to.pg_name()), value.cast(&to), want);
        }
    }

    #[test]
    fn typed_casts_know_real_char_and_int_widths() {
        use DataType as T;
        use Value as V;
        let real = V::Float(0.1f32 as f64);
        check("real::text", real.cast_from(&T::Float4, &T::Text), Ok(text("0.1")));
        check("float8::text", real.cast(&T::Text), Ok(text("0.10000000149011612")));
        check("real::numeric", real.cast_from(&T::Float4, &NUMERIC), Ok(num("0.1")));
        check(
            "real::float8",
            real.cast_from(&T::Float4, &T::Float8),
            Ok(V::Float(0.10000000149011612)),
        );
        let million = V::Float(1e6);
        check("1e6::real::text", million.cast_from(&T::Float4, &T::Text), Ok(text("1e+06")));
        check("1e6::float8::text", million.cast(&T::Text), Ok(text("1000000")));
        let padded = text("ab  ");
        check("char::text", padded.cast_from(&T::Char(Some(4)), &T::Text), Ok(text("ab")));
        check(
            "char::varchar",
            padded.cast_from(&T::Char(Some(4)), &T::Varchar(None)),
            Ok(text("ab")),
        );
        check(
            "char::char",
            padded.cast_from(&T::Char(Some(4)), &T::Char(Some(6))),
            Ok(text("ab    ")),
        );
        check("text::text", padded.cast(&T::Text), Ok(text("ab  ")));
        check(
            "int8::bool",
            V::Int(1).cast_from(&T::Int8, &T::Bool),
            Err(("42846", "cannot cast type bigint to boolean")),
        );
        check(
            "int2::bool",
            V::Int(1).cast_from(&T::Int2, &T::Bool),
            Err(("42846", "cannot cast type smallint to boolean")),
        );
        // A mismatched source type is ignored.
        check("mismatch", V::Int(1).cast_from(&T::Text, &T::Int2), Ok(V::Int(1)));
    }

    #[test]
    fn assignment_casts_follow_postgres() {
        use DataType as T;
        use Value as V;
        let cases: Vec<(Value, DataType, Expected)> = vec![
            (text("abc"), T::Varchar(Some(3)), Ok(text("abc"))),
            (
                text("abcd"),
                T::Varchar(Some(3)),
                Err(("22001", "value too long for type character varying(3)")),
            ),
            (text("abc   "), T::Varchar(Some(3)), Ok(text("abc"))),
            (
                text("ab  x"),
                T::Varchar(Some(3)),
                Err(("22001", "value too long for type character varying(3)")),
            ),
            (
                text("abcd"),
                T::Char(Some(3)),
                Err(("22001", "value too long for type character(3)")),
            ),
            (text("ab"), T::Char(Some(3)), Ok(text("ab "))),
            (text("abc  "), T::Char(Some(3)), Ok(text("abc"))),
            (text("日本語"), T::Varchar(Some(3)), Ok(text("日本語"))),
            (V::Int(5), T::Text, Ok(text("5"))),
            (V::Bool(true), T::Text, Ok(text("true"))),
            (V::Int(70000), T::Int2, Err(("22003", "smallint out of range"))),
            (V::Float(2.5), T::Int4, Ok(V::Int(2))),
            (num("2.5"), T::Int8, Ok(V::Int(3))),
            (V::Int(1), T::Float8, Ok(V::Float(1.0))),
            (num("12.345"), numeric(5, 2), Ok(num("12.35"))),
            (V::Float(1.25), NUMERIC, Ok(num("1.25"))),
            (V::Date(0), T::Timestamp, Ok(V::Timestamp(0))),
            (V::Timestamp(0), T::Date, Ok(V::Date(0))),
            (V::Bool(true), T::Int4, Err(("42846", "cannot cast type boolean to integer"))),
            (V::Int(1), T::Bool, Err(("42846", "cannot cast type integer to boolean"))),
            (text("1"), T::Int4, Err(("42846", "cannot cast type text to integer"))),
            (text("2024-01-01"), T::Date, Err(("42846", "cannot cast type text to date"))),
            (V::Null, T::Bool, Ok(V::Null)),
        ];
        for (value, to, want) in cases {
            check(&format!("assign {value:?} to {}", to.pg_name()), value.assign(&to), want);
        }
        check(
            "assign char(5) to varchar(3)",
            text("ab   ").assign_from(&T::Char(Some(5)), &T::Varchar(Some(3))),
            Ok(text("ab")),
        );
    }

    #[test]
    fn parse_integers_and_booleans() {
        use DataType as T;
        use Value as V;
        let cases: Vec<(&str, DataType, Expected)> = vec![
            ("0", T::Int4, Ok(V::Int(0))),
            ("  -17\n", T::Int4, Ok(V::Int(-17))),
            ("+5", T::Int2, Ok(V::Int(5))),
            ("-32768", T::Int2, Ok(V::Int(-32768))),
            ("32768", T::Int2, Err(("22003", "value \"32768\" is out of range for type smallint"))),
            ("2147483647", T::Int4, Ok(V::Int(2147483647))),
            (
                "-2147483649",
                T::Int4,
                Err(("22003", "value \"-2147483649\" is out of range for type integer")),
            ),
            ("-9223372036854775808", T::Int8, Ok(V::Int(i64::MIN))),
            (
                "9223372036854775808",
                T::Int8,
                Err(("22003", "value \"9223372036854775808\" is out of range for type bigint")),
            ),
            (
                "99999999999999999999999999",
                T::Int8,
                Err((
                    "22003",
                    "value \"99999999999999999999999999\" is out of range for type bigint",
                )),
            ),
            ("", T::Int4, Err(("22P02", "invalid input syntax for type integer: \"\""))),
            ("-", T::Int4, Err(("22P02", "invalid input syntax for type integer: \"-\""))),
            ("1.5", T::Int4, Err(("22P02", "invalid input syntax for type integer: \"1.5\""))),
            ("1 2", T::Int8, Err(("22P02", "invalid input syntax for type bigint: \"1 2\""))),
            ("1_000", T::Int4, Err(("22P02", "invalid input syntax for type integer: \"1_000\""))),
            ("0x10", T::Int4, Err(("22P02", "invalid input syntax for type integer: \"0x10\""))),
            ("t", T::Bool, Ok(V::Bool(true))),
            ("TRUE", T::Bool, Ok(V::Bool(true))),
            ("tr", T::Bool, Ok(V::Bool(true))),
            (" yes ", T::Bool, Ok(V::Bool(true))),
            ("y", T::Bool, Ok(V::Bool(true))),
            ("on", T::Bool, Ok(V::Bool(true))),
            ("1", T::Bool, Ok(V::Bool(true))),
            ("f", T::Bool, Ok(V::Bool(false))),
            ("False", T::Bool, Ok(V::Bool(false))),
            ("no", T::Bool, Ok(V::Bool(false))),
            ("off", T::Bool, Ok(V::Bool(false))),
            ("of", T::Bool, Ok(V::Bool(false))),
            ("0", T::Bool, Ok(V::Bool(false))),
            ("o", T::Bool, Err(("22P02", "invalid input syntax for type boolean: \"o\""))),
            ("truex", T::Bool, Err(("22P02", "invalid input syntax for type boolean: \"truex\""))),
            ("2", T::Bool, Err(("22P02", "invalid input syntax for type boolean: \"2\""))),
            ("", T::Bool, Err(("22P02", "invalid input syntax for type boolean: \"\""))),
        ];
        for (input, ty, want) in cases {
            check(&format!("{input:?} as {}", ty.pg_name()), Value::parse(input, &ty), want);
        }
    }

    #[test]
    fn parse_floats_and_numerics() {
        use DataType as T;
        use Value as V;
        let cases: Vec<(&str, DataType, Expected)> = vec![
            ("1.5", T::Float8, Ok(V::Float(1.5))),
            (" -2e3 ", T::Float8, Ok(V::Float(-2000.0))),
            (".5", T::Float8, Ok(V::Float(0.5))),
            ("5.", T::Float8, Ok(V::Float(5.0))),
            ("NaN", T::Float8, Ok(V::Float(f64::NAN))),
            ("nan", T::Float4, Ok(V::Float(f64::NAN))),
            ("Infinity", T::Float8, Ok(V::Float(f64::INFINITY))),
            ("-Infinity", T::Float8, Ok(V::Float(f64::NEG_INFINITY))),
            ("-inf", T::Float4, Ok(V::Float(f64::NEG_INFINITY))),
            ("0.1", T::Float4, Ok(V::Float(0.1f32 as f64))),
            (
                "1e400",
                T::Float8,
                Err(("22003", "\"1e400\" is out of range for type double precision")),
            ),
            (
                "1e-400",
                T::Float8,
                Err(("22003", "\"1e-400\" is out of range for type double precision")),
            ),
            ("0e-400", T::Float8, Ok(V::Float(0.0))),
            ("1e39", T::Float4, Err(("22003", "\"1e39\" is out of range for type real"))),
            (
                "abc",
                T::Float8,
                Err(("22P02", "invalid input syntax for type double precision: \"abc\"")),
            ),
            ("1e", T::Float4, Err(("22P02", "invalid input syntax for type real: \"1e\""))),
            ("1.50", NUMERIC, Ok(num("1.50"))),
            ("  -0.000 ", NUMERIC, Ok(num("0.000"))),
            ("+12.5e2", NUMERIC, Ok(num("1250"))),
            ("1.2345e2", NUMERIC, Ok(num("123.45"))),
            ("1.5e-3", NUMERIC, Ok(num("0.0015"))),
            (".5", NUMERIC, Ok(num("0.5"))),
            ("007", NUMERIC, Ok(num("7"))),
            ("79228162514264337593543950335", NUMERIC, Ok(num("79228162514264337593543950335"))),
            (
                "79228162514264337593543950336",
                NUMERIC,
                Err(("22003", "value overflows numeric format")),
            ),
            ("1e29", NUMERIC, Err(("22003", "value overflows numeric format"))),
            // more places than rust_decimal holds: rounded
            ("0.12345678901234567890123456789", NUMERIC, Ok(num("0.1234567890123456789012345679"))),
            ("1.99999999999999999999999999999", NUMERIC, Ok(num("2.0000000000000000000000000000"))),
            ("NaN", NUMERIC, Err(("0A000", "numeric NaN is not supported"))),
            ("Infinity", NUMERIC, Err(("0A000", "numeric Infinity is not supported"))),
            ("1.2.3", NUMERIC, Err(("22P02", "invalid input syntax for type numeric: \"1.2.3\""))),
            ("", NUMERIC, Err(("22P02", "invalid input syntax for type numeric: \"\""))),
            ("1_000", NUMERIC, Err(("22P02", "invalid input syntax for type numeric: \"1_000\""))),
            ("123.456", numeric(5, 2), Ok(num("123.46"))),
            ("1234.5", numeric(5, 2), Err(("22003", "numeric field overflow"))),
            ("0.001", numeric(2, 3), Ok(num("0.001"))),
            ("0.099", numeric(2, 3), Ok(num("0.099"))),
            ("0.1", numeric(2, 3), Err(("22003", "numeric field overflow"))),
        ];
        for (input, ty, want) in cases {
            check(&format!("{input:?} as {}", ty.pg_name()), Value::parse(input, &ty), want);
        }
        let err = Value::parse("1234.5", &numeric(5, 2)).unwrap_err();
        assert_eq!(
            err.detail.as_deref(),
            Some(
                "A field with precision 5, scale 2 must round to an absolute value less than 10^3."
            )
        );
        let err = Value::parse("1", &numeric(2, 2)).unwrap_err();
        assert_eq!(
            err.detail.as_deref(),
            Some("A field with precision 2, scale 2 must round to an absolute value less than 1.")
        );
    }

    #[test]
    fn parse_strings_and_bytea() {
        use DataType as T;
        use Value as V;
        let cases: Vec<(&str, DataType, Expected)> = vec![
            ("  x ", T::Text, Ok(text("  x "))),
            ("abc", T::Varchar(Some(3)), Ok(text("abc"))),
            (
                "abcd",
                T::Varchar(Some(3)),
                Err(("22001", "value too long for type character varying(3)")),
            ),
            ("a", T::Char(Some(3)), Ok(text("a  "))),
            ("\\x0a0B", T::Bytea, Ok(V::Bytes(vec![0x0a, 0x0b]))),
            ("\\x", T::Bytea, Ok(V::Bytes(vec![]))),
            ("\\x 0a 0b ", T::Bytea, Ok(V::Bytes(vec![0x0a, 0x0b]))),
            ("\\x0", T::Bytea, Err(("22023", "invalid hexadecimal data: odd number of digits"))),
            ("\\x0g", T::Bytea, Err(("22023", "invalid hexadecimal digit: \"g\""))),
            ("abc", T::Bytea, Ok(V::Bytes(b"abc".to_vec()))),
            ("a\\\\b", T::Bytea, Ok(V::Bytes(b"a\\b".to_vec()))),
            ("\\001\\377", T::Bytea, Ok(V::Bytes(vec![1, 255]))),
            ("\\8", T::Bytea, Err(("22P02", "invalid input syntax for type bytea"))),
            ("\\", T::Bytea, Err(("22P02", "invalid input syntax for type bytea"))),
            ("\\00", T::Bytea, Err(("22P02", "invalid input syntax for type bytea"))),
        ];
        for (input, ty, want) in cases {
            check(&format!("{input:?} as {}", ty.pg_name()), Value::parse(input, &ty), want);
        }
    }

    #[test]
    fn dates_parse_and_format() {
        // (input, days since 2000-01-01, output)
        let cases = [
            ("2000-01-01", 0, "2000-01-01"),
            ("1999-12-31", -1, "1999-12-31"),
            ("2024-01-31", 8796, "2024-01-31"),
            ("2024-02-29", 8825, "2024-02-29"),
            ("2000-02-29", 59, "2000-02-29"),
            ("1970-01-01", -10957, "1970-01-01"),
            ("epoch", -10957, "1970-01-01"),
            ("0001-01-01", -730119, "0001-01-01"),
            ("9999-12-31", 2921939, "9999-12-31"),
            ("  2024-1-5  ", 8770, "2024-01-05"),
            ("2024-01-31 12:34:56", 8796, "2024-01-31"),
            ("2024-01-31T23:59:59.999", 8796, "2024-01-31"),
            ("0001-12-31 BC", -730120, "0001-12-31 BC"),
            ("0044-03-15 bc", -746117, "0044-03-15 BC"),
            ("4714-11-24 BC", -2451545, "4714-11-24 BC"),
            ("5874897-12-31", 2145031948, "5874897-12-31"),
            ("10000-01-01", 2921940, "10000-01-01"),
            ("infinity", i32::MAX, "infinity"),
            ("-infinity", i32::MIN, "-infinity"),
        ];
        for (input, days, output) in cases {
            assert_eq!(Value::parse(input, &DataType::Date), Ok(Value::Date(days)), "{input}");
            assert_eq!(Value::Date(days).to_pg_text(), output, "{input}");
            assert_eq!(Value::parse(output, &DataType::Date), Ok(Value::Date(days)), "{output}");
        }
        let errors = [
            ("2023-02-29", "22008", "date/time field value out of range: \"2023-02-29\""),
            ("1900-02-29", "22008", "date/time field value out of range: \"1900-02-29\""),
            ("2024-13-01", "22008", "date/time field value out of range: \"2024-13-01\""),
            ("2024-04-31", "22008", "date/time field value out of range: \"2024-04-31\""),
            ("2024-01-00", "22008", "date/time field value out of range: \"2024-01-00\""),
            ("0000-01-01", "22008", "date/time field value out of range: \"0000-01-01\""),
            (
                "2024-01-01 25:00:00",
                "22008",
                "date/time field value out of range: \"2024-01-01 25:00:00\"",
            ),
            ("4714-11-23 BC", "22008", "date out of range: \"4714-11-23 BC\""),
            ("5874898-01-01", "22008", "date out of range: \"5874898-01-01\""),
            ("abc", "22007", "invalid input syntax for type date: \"abc\""),
            ("", "22007", "invalid input syntax for type date: \"\""),
            ("2024/01/01", "22007", "invalid input syntax for type date: \"2024/01/01\""),
            ("24-01-01", "22007", "invalid input syntax for type date: \"24-01-01\""),
            ("2024-01-01x", "22007", "invalid input syntax for type date: \"2024-01-01x\""),
            ("now", "0A000", "date/time value \"now\" is not supported"),
        ];
        for (input, code, message) in errors {
            let err = Value::parse(input, &DataType::Date).expect_err(input);
            assert_eq!((err.code, err.message.as_str()), (code, message), "{input}");
        }
    }

    #[test]
    fn timestamps_parse_and_format() {
        const S: i64 = 1_000_000;
        let cases = [
            ("2000-01-01 00:00:00", 0, "2000-01-01 00:00:00"),
            ("2000-01-01", 0, "2000-01-01 00:00:00"),
            (
                "2024-01-31 12:34:56",
                8796 * USECS_PER_DAY + (12 * 3600 + 34 * 60 + 56) * S,
                "2024-01-31 12:34:56",
            ),
            (
                "2024-01-31T12:34:56.5",
                8796 * USECS_PER_DAY + (12 * 3600 + 34 * 60 + 56) * S + S / 2,
                "2024-01-31 12:34:56.5",
            ),
            ("2000-01-01 00:00:00.000001", 1, "2000-01-01 00:00:00.000001"),
            ("2000-01-01 00:00:00.1234565", 123457, "2000-01-01 00:00:00.123457"),
            ("2000-01-01 00:00:00.9999996", S, "2000-01-01 00:00:01"),
            ("1999-12-31 23:59:59.999999", -1, "1999-12-31 23:59:59.999999"),
            ("2000-01-01 12:00", 12 * 3600 * S, "2000-01-01 12:00:00"),
            ("2000-01-01 1:02:03", 3723 * S, "2000-01-01 01:02:03"),
            ("2000-01-01 24:00:00", USECS_PER_DAY, "2000-01-02 00:00:00"),
            ("2000-01-01 23:59:60", USECS_PER_DAY, "2000-01-02 00:00:00"),
            ("2000-01-01 12:00:00+02", 12 * 3600 * S, "2000-01-01 12:00:00"),
            ("2000-01-01 12:00:00-05:30", 12 * 3600 * S, "2000-01-01 12:00:00"),
            ("2000-01-01T12:00:00Z", 12 * 3600 * S, "2000-01-01 12:00:00"),
            ("2000-01-01 12:00:00 UTC", 12 * 3600 * S, "2000-01-01 12:00:00"),
            ("0001-01-01 00:00:00", -730119 * USECS_PER_DAY, "0001-01-01 00:00:00"),
            (
                "9999-12-31 23:59:59.999999",
                2921940 * USECS_PER_DAY - 1,
                "9999-12-31 23:59:59.999999",
            ),
            (
                "0001-12-31 23:00:00 BC",
                -730119 * USECS_PER_DAY - 3600 * S,
                "0001-12-31 23:00:00 BC",
            ),
            ("4714-11-24 00:00:00 BC", TIMESTAMP_MIN, "4714-11-24 00:00:00 BC"),
            ("294276-12-31 23:59:59.999999", TIMESTAMP_END - 1, "294276-12-31 23:59:59.999999"),
            ("epoch", -10957 * USECS_PER_DAY, "1970-01-01 00:00:00"),
            ("infinity", i64::MAX, "infinity"),
            ("-infinity", i64::MIN, "-infinity"),
        ];
        for (input, micros, output) in cases {
            assert_eq!(
                Value::parse(input, &DataType::Timestamp),
                Ok(Value::Timestamp(micros)),
                "{input}"
            );
            assert_eq!(Value::Timestamp(micros).to_pg_text(), output, "{input}");
            assert_eq!(
                Value::parse(output, &DataType::Timestamp),
                Ok(Value::Timestamp(micros)),
                "{output}"
            );
        }
        let errors = [
            (
                "2000-01-01 24:00:01",
                "22008",
                "date/time field value out of range: \"2000-01-01 24:00:01\"",
            ),
            (
                "2000-01-01 12:60:00",
                "22008",
                "date/time field value out of range: \"2000-01-01 12:60:00\"",
            ),
            (
                "2000-01-01 12:00:61",
                "22008",
                "date/time field value out of range: \"2000-01-01 12:00:61\"",
            ),
            ("294277-01-01", "22008", "timestamp out of range: \"294277-01-01\""),
            (
                "4714-11-23 23:59:59 BC",
                "22008",
                "timestamp out of range: \"4714-11-23 23:59:59 BC\"",
            ),
            (
                "2000-01-01 12",
                "22007",
                "invalid input syntax for type timestamp: \"2000-01-01 12\"",
            ),
            (
                "2000-01-01 12:00:00 junk",
                "22007",
                "invalid input syntax for type timestamp: \"2000-01-01 12:00:00 junk\"",
            ),
            ("12:00:00", "22007", "invalid input syntax for type timestamp: \"12:00:00\""),
        ];
        for (input, code, message) in errors {
            let err = Value::parse(input, &DataType::Timestamp).expect_err(input);
            assert_eq!((err.code, err.message.as_str()), (code, message), "{input}");
        }
    }

    #[test]
    fn civil_day_conversion_round_trips() {
        // Every day from 4714 BC to 10000 AD, and the ends of the date range.
        let mut expected = days_from_civil(-4713, 11, 24);
        let (mut y, mut m, mut d) = (-4713i64, 11u32, 24u32);
        while y <= 10_000 {
            assert_eq!(days_from_civil(y, m, d), expected, "{y}-{m}-{d}");
            assert_eq!(civil_from_days(expected), (y, m, d));
            expected += 1;
            d += 1;
            if d > days_in_month(y, m) {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
        assert_eq!(civil_from_days(DATE_END_DAYS - 1 + PG_EPOCH_UNIX_DAYS), (5_874_897, 12, 31));
        assert_eq!(DATE_MIN_DAYS, -2_451_545);
        assert_eq!(TIMESTAMP_MIN, -211_813_488_000_000_000);
        assert_eq!(TIMESTAMP_END, 9_223_371_331_200_000_000);
    }

    #[test]
    fn float_output_matches_postgres() {
        let f8 = [
            (0.1, "0.1"),
            (1.5, "1.5"),
            (-2.0, "-2"),
            (0.0, "0"),
            (-0.0, "-0"),
            (100.0, "100"),
            (1e14, "100000000000000"),
            (123456789012345.0, "123456789012345"),
            (1e15, "1e+15"),
            (1e20, "1e+20"),
            (123456789012345680000.0, "1.2345678901234568e+20"),
            (1e-4, "0.0001"),
            (1.5e-4, "0.00015"),
            (1e-5, "1e-05"),
            (-1.25e-7, "-1.25e-07"),
            (1.0 / 3.0, "0.3333333333333333"),
            (2.0 / 3.0, "0.6666666666666666"),
            (1e100, "1e+100"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (0.1 + 0.2, "0.30000000000000004"),
        ];
        for (f, want) in f8 {
            assert_eq!(Value::Float(f).to_pg_text(), want, "{f:e}");
            assert_eq!(Value::Float(f).to_pg_text_typed(&DataType::Float8), want, "{f:e}");
        }
        let f4 = [
            (0.1f32, "0.1"),
            (1.5, "1.5"),
            (123456.0, "123456"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (1e-4, "0.0001"),
            (1e-5, "1e-05"),
            (3.4028235e38, "3.4028235e+38"),
            (1.0 / 3.0, "0.33333334"),
            (f32::NAN, "NaN"),
            (f32::NEG_INFINITY, "-Infinity"),
        ];
        for (f, want) in f4 {
            assert_eq!(Value::Float(f as f64).to_pg_text_typed(&DataType::Float4), want, "{f:e}");
        }
    }

    #[test]
    fn other_output_formats() {
        assert_eq!(Value::Bool(true).to_pg_text(), "t");
        assert_eq!(Value::Bool(false).to_pg_text(), "f");
        assert_eq!(Value::Int(-7).to_pg_text(), "-7");
        assert_eq!(num("1.50").to_pg_text(), "1.50");
        assert_eq!(num("-0.00").to_pg_text(), "0.00");
        assert_eq!(num("0.00001").to_pg_text(), "0.00001");
        assert_eq!(Value::Bytes(vec![0x0a, 0x0b, 0xff]).to_pg_text(), "\\x0a0bff");
        assert_eq!(Value::Bytes(vec![]).to_pg_text(), "\\x");
        assert_eq!(text("ab  ").to_pg_text_typed(&DataType::Char(Some(4))), "ab  ");
    }

    #[test]
    fn integer_arithmetic_checks_the_result_width() {
        use ArithOp::*;
        use DataType as T;
        use Value as V;
        let cases: Vec<(ArithOp, Value, Value, DataType, Expected)> = vec![
            (Add, V::Int(1), V::Int(2), T::Int4, Ok(V::Int(3))),
            (Add, V::Int(32767), V::Int(1), T::Int2, Err(("22003", "smallint out of range"))),
            (Sub, V::Int(-32768), V::Int(1), T::Int2, Err(("22003", "smallint out of range"))),
            (Add, V::Int(32767), V::Int(1), T::Int4, Ok(V::Int(32768))),
            (Mul, V::Int(65536), V::Int(32768), T::Int4, Err(("22003", "integer out of range"))),
            (Add, V::Int(2147483647), V::Int(1), T::Int4, Err(("22003", "integer out of range"))),
            (Add, V::Int(2147483647), V::Int(1), T::Int8, Ok(V::Int(2147483648))),
            (Add, V::Int(i64::MAX), V::Int(1), T::Int8, Err(("22003", "bigint out of range"))),
            (Mul, V::Int(i64::MIN), V::Int(-1), T::Int8, Err(("22003", "bigint out of range"))),
            (Div, V::Int(7), V::Int(2), T::Int4, Ok(V::Int(3))),
            (Div, V::Int(-7), V::Int(2), T::Int4, Ok(V::Int(-3))),
            (Div, V::Int(1), V::Int(0), T::Int4, Err(("22012", "division by zero"))),
            (Div, V::Int(-2147483648), V::Int(-1), T::Int4, Err(("22003", "integer out of range"))),
            (Div, V::Int(-32768), V::Int(-1), T::Int2, Err(("22003", "smallint out of range"))),
            (Div, V::Int(i64::MIN), V::Int(-1), T::Int8, Err(("22003", "bigint out of range"))),
            (Mod, V::Int(7), V::Int(3), T::Int4, Ok(V::Int(1))),
            (Mod, V::Int(-7), V::Int(3), T::Int4, Ok(V::Int(-1))),
            (Mod, V::Int(7), V::Int(-3), T::Int4, Ok(V::Int(1))),
            (Mod, V::Int(i64::MIN), V::Int(-1), T::Int8, Ok(V::Int(0))),
            (Mod, V::Int(1), V::Int(0), T::Int2, Err(("22012", "division by zero"))),
            (Add, V::Null, V::Int(1), T::Int4, Ok(V::Null)),
            (Div, V::Int(1), V::Null, T::Int4, Ok(V::Null)),
        ];
        for (op, a, b, ty, want) in cases {
            check(
                &format!("{a:?} {op:?} {b:?} in {}", ty.pg_name()),
                arithmetic(op, &a, &b, &ty),
                want,
            );
        }
    }

    #[test]
    fn float_arithmetic_follows_postgres() {
        use ArithOp::*;
        use DataType as T;
        use Value as V;
        let cases: Vec<(ArithOp, Value, Value, DataType, Expected)> = vec![
            (Add, V::Float(0.1), V::Float(0.2), T::Float8, Ok(V::Float(0.1 + 0.2))),
            (Add, V::Int(1), V::Float(1.5), T::Float8, Ok(V::Float(2.5))),
            (Mul, num("0.5"), V::Float(3.0), T::Float8, Ok(V::Float(1.5))),
            (Div, V::Float(1.0), V::Float(0.0), T::Float8, Err(("22012", "division by zero"))),
            (Div, V::Float(0.0), V::Float(0.0), T::Float8, Err(("22012", "division by zero"))),
            (Div, V::Float(f64::NAN), V::Float(0.0), T::Float8, Ok(V::Float(f64::NAN))),
            (
                Mul,
                V::Float(1e300),
                V::Float(1e300),
                T::Float8,
                Err(("22003", "value out of range: overflow")),
            ),
            (
                Add,
                V::Float(f64::MAX),
                V::Float(f64::MAX),
                T::Float8,
                Err(("22003", "value out of range: overflow")),
            ),
            (
                Mul,
                V::Float(1e-300),
                V::Float(1e-300),
                T::Float8,
                Err(("22003", "value out of range: underflow")),
            ),
            (
                Div,
                V::Float(1e-300),
                V::Float(1e300),
                T::Float8,
                Err(("22003", "value out of range: underflow")),
            ),
            (Add, V::Float(f64::INFINITY), V::Float(1.0), T::Float8, Ok(V::Float(f64::INFINITY))),
            (Div, V::Float(1.0), V::Float(f64::INFINITY), T::Float8, Ok(V::Float(0.0))),
            (
                Add,
                V::Float(0.1f32 as f64),
                V::Float(0.2f32 as f64),
                T::Float4,
                Ok(V::Float((0.1f32 + 0.2f32) as f64)),
            ),
            (
                Mul,
                V::Float(1e30),
                V::Float(1e30),
                T::Float4,
                Err(("22003", "value out of range: overflow")),
            ),
            (Div, V::Float(1.0), V::Float(0.0), T::Float4, Err(("22012", "division by zero"))),
            (
                Mod,
                V::Float(5.0),
                V::Float(2.0),
                T::Float8,
                Err(("42883", "operator does not exist: double precision % double precision")),
            ),
            (
                Mod,
                V::Float(5.0),
                V::Float(2.0),
                T::Float4,
                Err(("42883", "operator does not exist: real % real")),
            ),
        ];
        for (op, a, b, ty, want) in cases {
            check(
                &format!("{a:?} {op:?} {b:?} in {}", ty.pg_name()),
                arithmetic(op, &a, &b, &ty),
                want,
            );
        }
    }

    #[test]
    fn numeric_arithmetic_keeps_postgres_scales() {
        use ArithOp::*;
        use Value as V;
        let cases: Vec<(ArithOp, Value, Value, Expected)> = vec![
            (Add, num("1.50"), V::Int(1), Ok(num("2.50"))),
            (Add, num("1.5"), num("2.25"), Ok(num("3.75"))),
            (Sub, num("1.50"), num("1.5"), Ok(num("0.00"))),
            (Sub, num("1"), num("1.001"), Ok(num("-0.001"))),
            (Mul, num("1.50"), num("2.0"), Ok(num("3.000"))),
            (Mul, num("1.5"), num("2.25"), Ok(num("3.375"))),
            (Mul, num("-0.5"), V::Int(0), Ok(num("0.0"))),
            (Div, V::Int(1), V::Int(3), Ok(num("0.33333333333333333333"))),
            (Div, V::Int(2), V::Int(3), Ok(num("0.66666666666666666667"))),
            (Div, V::Int(10), V::Int(4), Ok(num("2.5000000000000000"))),
            (Div, V::Int(2), num("3.00"), Ok(num("0.66666666666666666667"))),
            (Div, V::Int(-2), num("3.00"), Ok(num("-0.66666666666666666667"))),
            (Div, num("1.000000000000000000000"), V::Int(3), Ok(num("0.333333333333333333333"))),
            (Div, V::Int(100), V::Int(3), Ok(num("33.3333333333333333"))),
            (Div, V::Int(12345), V::Int(1), Ok(num("12345.0000000000000000"))),
            (Div, V::Int(99999), V::Int(3), Ok(num("33333.000000000000"))),
            (Div, V::Int(1), V::Int(10000), Ok(num("0.000100000000000000000000"))),
            (Div, V::Int(1), V::Int(8), Ok(num("0.12500000000000000000"))),
            (Div, V::Int(0), V::Int(5), Ok(num("0.00000000000000000000"))),
            (Div, num("100000000000000000000"), V::Int(3), Ok(num("33333333333333333333"))),
            (Div, V::Int(1), num("0.0000001"), Ok(num("10000000.000000000000"))),
            (Div, V::Int(2), V::Int(0), Err(("22012", "division by zero"))),
            (Div, num("1.5"), num("0.00"), Err(("22012", "division by zero"))),
            (Mod, num("5.5"), V::Int(2), Ok(num("1.5"))),
            (Mod, num("-7"), V::Int(3), Ok(num("-1"))),
            (Mod, num("7.25"), num("-2"), Ok(num("1.25"))),
            (Mod, num("6"), num("1.50"), Ok(num("0.00"))),
            (Mod, num("1"), num("0"), Err(("22012", "division by zero"))),
            (
                Add,
                num("79228162514264337593543950335"),
                V::Int(1),
                Err(("22003", "value overflows numeric format")),
            ),
            (
                Mul,
                num("79228162514264337593543950335"),
                V::Int(2),
                Err(("22003", "value overflows numeric format")),
            ),
            (Add, V::Null, num("1"), Ok(V::Null)),
        ];
        for (op, a, b, want) in cases {
            check(&format!("{a:?} {op:?} {b:?}"), arithmetic(op, &a, &b, &NUMERIC), want);
        }
    }

    #[test]
    fn numeric_division_scale_follows_select_div_scale() {
        // (dividend, divisor, PostgreSQL's result scale)
        let cases = [
            ("1", "3", 20),
            ("10", "4", 16),
            ("1", "1", 20),
            ("2", "1", 16),
            ("12345", "1", 16),
            ("1", "12345", 24),
            ("0.001", "7", 20),
            ("123456789", "0.5", 8),
            ("1.123456789012345678", "1", 20),
            ("99999", "3", 12),
            ("0", "5", 20),
            ("1", "0.0000001", 12),
            ("100000000000000000000", "3", 0),
        ];
        for (a, b, scale) in cases {
            assert_eq!(select_div_scale(&dec(a), &dec(b)), scale, "{a} / {b}");
        }
    }

    #[test]
    fn negation_checks_the_type_width() {
        use DataType as T;
        use Value as V;
        check(
            "-(-32768::int2)",
            negate(&V::Int(-32768), &T::Int2),
            Err(("22003", "smallint out of range")),
        );
        check("-(-32768::int4)", negate(&V::Int(-32768), &T::Int4), Ok(V::Int(32768)));
        check(
            "-(int4 min)",
            negate(&V::Int(i32::MIN as i64), &T::Int4),
            Err(("22003", "integer out of range")),
        );
        check(
            "-(int8 min)",
            negate(&V::Int(i64::MIN), &T::Int8),
            Err(("22003", "bigint out of range")),
        );
        check("-1.50", negate(&num("1.50"), &NUMERIC), Ok(num("-1.50")));
        check("-0.0", negate(&num("0.0"), &NUMERIC), Ok(num("0.0")));
        check("-float", negate(&V::Float(2.5), &T::Float8), Ok(V::Float(-2.5)));
        check("-null", negate(&V::Null, &T::Int4), Ok(V::Null));
    }

    #[test]
    fn result_types_follow_operator_resolution() {
        use DataType as T;
        let cases = [
            (T::Int2, T::Int2, Some(T::Int2)),
            (T::Int2, T::Int4, Some(T::Int4)),
            (T::Int4, T::Int2, Some(T::Int4)),
            (T::Int4, T::Int8, Some(T::Int8)),
            (T::Int2, T::Int8, Some(T::Int8)),
            (T::Int4, numeric(10, 2), Some(NUMERIC)),
            (numeric(5, 1), numeric(10, 2), Some(NUMERIC)),
            (T::Int4, T::Float4, Some(T::Float8)),
            (T::Float4, T::Float4, Some(T::Float4)),
            (T::Float4, NUMERIC, Some(T::Float8)),
            (T::Float4, T::Float8, Some(T::Float8)),
            (NUMERIC, T::Float8, Some(T::Float8)),
            (T::Int8, T::Float8, Some(T::Float8)),
            (T::Text, T::Int4, None),
            (T::Int4, T::Date, None),
            (T::Bool, T::Bool, None),
        ];
        for (a, b, want) in cases {
            assert_eq!(arithmetic_result_type(&a, &b), want, "{a:?} {b:?}");
        }
    }

    #[test]
    fn comparisons_across_numeric_kinds_are_exact() {
        use Ordering::*;
        use Value as V;
        let cases = [
            (V::Int(1), V::Float(1.0), Equal),
            (V::Int(1), num("1.00"), Equal),
            (V::Float(1.0), num("1.00"), Equal),
            (V::Float(0.5), num("0.50"), Equal),
            (V::Float(0.1), num("0.1"), Greater),
            (V::Float(-0.1), num("-0.1"), Less),
            (V::Int(9007199254740993), V::Float(9007199254740992.0), Greater),
            (V::Int(i64::MAX), V::Float(9223372036854775808.0), Less),
            (V::Int(i64::MIN), V::Float(-9223372036854775808.0), Equal),
            (V::Int(2), V::Float(1.5), Greater),
            (V::Int(-2), V::Float(-1.5), Less),
            (V::Float(f64::NAN), V::Float(f64::INFINITY), Greater),
            (V::Float(f64::NAN), V::Float(f64::NAN), Equal),
            (V::Float(f64::NAN), num("79228162514264337593543950335"), Greater),
            (V::Float(f64::NAN), V::Int(i64::MAX), Greater),
            (V::Float(-0.0), V::Float(0.0), Equal),
            (V::Float(-0.0), num("0"), Equal),
            (V::Float(1e-300), num("0"), Greater),
            (V::Float(1e-300), num("0.0000000000000000000000000001"), Less),
            (V::Float(1e30), num("79228162514264337593543950335"), Greater),
            (V::Float(f64::NEG_INFINITY), num("-79228162514264337593543950335"), Less),
            (num("2.5"), V::Int(2), Greater),
            (V::Text("a".into()), V::Text("b".into()), Less),
            (V::Text("B".into()), V::Text("a".into()), Less),
            (V::Text("a".into()), V::Text("a\0".into()), Less),
            (V::Bool(false), V::Bool(true), Less),
            (V::Bytes(vec![1]), V::Bytes(vec![1, 0]), Less),
            (V::Date(1), V::Timestamp(USECS_PER_DAY), Equal),
            (V::Date(1), V::Timestamp(USECS_PER_DAY + 1), Less),
            (V::Date(i32::MAX), V::Timestamp(i64::MAX), Equal),
            (V::Date(i32::MAX - 1), V::Timestamp(i64::MAX - 1), Greater),
        ];
        for (a, b, want) in cases {
            assert_eq!(a.sql_cmp(&b), Some(want), "{a:?} vs {b:?}");
            assert_eq!(b.sql_cmp(&a), Some(want.reverse()), "{b:?} vs {a:?}");
            assert_eq!(a.sort_cmp(&b), want, "{a:?} vs {b:?}");
        }
        assert_eq!(V::Null.sql_cmp(&V::Int(1)), None);
        assert_eq!(V::Int(1).sql_cmp(&V::Null), None);
        assert_eq!(V::Int(1).sql_cmp(&V::Text("1".into())), None);
        assert_eq!(V::Bool(true).sql_cmp(&V::Int(1)), None);
        assert_eq!(V::Null.sort_cmp(&V::Null), Equal);
        assert_eq!(V::Null.sort_cmp(&V::Float(f64::NAN)), Greater);
        assert_eq!(V::Int(1).sort_cmp(&V::Null), Less);
        assert!(V::Null.group_eq(&V::Null));
        assert!(V::Int(1).group_eq(&num("1.000")));
        assert!(!V::Int(1).group_eq(&V::Text("1".into())));
    }

    fn hash_of(v: &Value) -> u64 {
        let mut h = DefaultHasher::new();
        v.hash_key(&mut h);
        h.finish()
    }

    #[test]
    fn equal_values_hash_equally() {
        use Value as V;
        let groups = [
            vec![V::Int(1), V::Float(1.0), num("1"), num("1.000")],
            vec![V::Int(0), V::Float(0.0), V::Float(-0.0), num("0.00"), num("-0.0")],
            vec![V::Float(0.5), num("0.5"), num("0.50000")],
            vec![V::Float(-2.25), num("-2.2500")],
            vec![V::Float(1e20), num("100000000000000000000"), num("100000000000000000000.0")],
            vec![V::Float(f64::NAN), V::Float(-f64::NAN)],
            vec![V::Date(3), V::Timestamp(3 * USECS_PER_DAY)],
            vec![V::Date(i32::MAX), V::Timestamp(i64::MAX)],
        ];
        for group in &groups {
            for a in group {
                for b in group {
                    assert!(a.group_eq(b), "{a:?} = {b:?}");
                    assert_eq!(hash_of(a), hash_of(b), "{a:?} = {b:?}");
                }
            }
        }
        assert_ne!(hash_of(&V::Int(1)), hash_of(&V::Int(2)));
        assert_ne!(hash_of(&V::Float(0.1)), hash_of(&num("0.1")));
        assert_ne!(hash_of(&V::Text("a".into())), hash_of(&V::Bytes(b"a".to_vec())));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn number() -> impl Strategy<Value = Value> {
            prop_oneof![
                (-1000i64..1000).prop_map(Value::Int),
                any::<i64>().prop_map(Value::Int),
                (-1000i64..1000, 0u32..4).prop_map(|(m, s)| Value::Numeric(Decimal::new(m, s))),
                (any::<i64>(), 0u32..=28).prop_map(|(m, s)| Value::Numeric(Decimal::new(m, s))),
                (-1000i64..1000, 0u32..3)
                    .prop_map(|(m, e)| Value::Float(m as f64 / 2f64.powi(e as i32))),
                any::<f64>().prop_map(Value::Float),
                Just(Value::Float(f64::NAN)),
                Just(Value::Float(-0.0)),
                Just(Value::Float(f64::INFINITY)),
                Just(Value::Null),
            ]
        }

        proptest! {
            /// sort_cmp is a total order consistent with group_eq and hash_key.
            #[test]
            fn sort_cmp_is_a_total_order(a in number(), b in number(), c in number()) {
                prop_assert_eq!(a.sort_cmp(&b), b.sort_cmp(&a).reverse());
                prop_assert_eq!(a.sort_cmp(&a), Ordering::Equal);
                if a.sort_cmp(&b) != Ordering::Greater && b.sort_cmp(&c) != Ordering::Greater {
                    prop_assert_ne!(a.sort_cmp(&c), Ordering::Greater);
                }
                if a.group_eq(&b) {
                    prop_assert_eq!(hash_of(&a), hash_of(&b));
                }
            }

            /// A float equal to a decimal hashes like it, at any scale.
            #[test]
            fn floats_hash_like_equal_numerics(
                m in any::<i32>(),
                k in 0u32..=28,
                extra in 0u32..6,
            ) {
                let mantissa = m as i128 * 5i128.pow(k);
                prop_assume!(mantissa.unsigned_abs() <= MAX_MANTISSA);
                let f = m as f64 / 2f64.powi(k as i32);
                let mut d = Decimal::from_i128_with_scale(mantissa, k);
                d.rescale((k + extra).min(28));
                prop_assert!(Value::Float(f).group_eq(&Value::Numeric(d)), "{} {}", f, d);
                prop_assert_eq!(hash_of(&Value::Float(f)), hash_of(&Value::Numeric(d)));
                let next = Value::Float(f64::from_bits(f.to_bits() + 1));
                prop_assert!(!next.group_eq(&Value::Numeric(d)));
            }

            /// Text output reads back to the same value.
            #[test]
            fn float_text_round_trips(f in any::<f64>(), g in any::<f32>()) {
                let text = Value::Float(f).to_pg_text();
                let back = Value::parse(&text, &DataType::Float8).unwrap();
                prop_assert!(Value::Float(f).group_eq(&back), "{} -> {}", f, text);
                let text = Value::Float(g as f64).to_pg_text_typed(&DataType::Float4);
                let back = Value::parse(&text, &DataType::Float4).unwrap();
                prop_assert!(Value::Float(g as f64).group_eq(&back), "{} -> {}", g, text);
            }

            #[test]
            fn numeric_text_round_trips(m in any::<i64>(), s in 0u32..=28) {
                let d = Decimal::new(m, s);
                let text = Value::Numeric(d).to_pg_text();
                let Value::Numeric(back) = Value::parse(&text, &NUMERIC).unwrap() else {
                    panic!("not a numeric");
                };
                prop_assert_eq!(back, d);
                prop_assert_eq!(back.scale(), d.scale());
            }

            #[test]
            fn timestamp_text_round_trips(t in TIMESTAMP_MIN..TIMESTAMP_END) {
                let text = Value::Timestamp(t).to_pg_text();
                prop_assert_eq!(Value::parse(&text, &DataType::Timestamp), Ok(Value::Timestamp(t)));
            }

            #[test]
            fn date_text_round_trips(d in DATE_MIN_DAYS as i32..DATE_END_DAYS as i32) {
                let text = Value::Date(d).to_pg_text();
                prop_assert_eq!(Value::parse(&text, &DataType::Date), Ok(Value::Date(d)));
            }

            /// Exact division: the quotient times the divisor is within half a
            /// unit of the last place of the dividend.
            #[test]
            fn numeric_division_is_correctly_rounded(
                a in any::<i32>(),
                b in any::<i32>(),
                sa in 0u32..6,
                sb in 0u32..6,
            ) {
                prop_assume!(b != 0);
                let (x, y) = (Decimal::new(a as i64, sa), Decimal::new(b as i64, sb));
                let q = numeric_div(x, y).unwrap();
                prop_assert_eq!(q.scale(), select_div_scale(&x, &y).min(28));
                let ulp = Decimal::new(1, q.scale());
                let error = (q * y - x).abs();
                prop_assert!(error <= (ulp * y.abs()) / Decimal::TWO, "{} / {} = {}", x, y, q);
            }

            /// The input functions never panic.
            #[test]
            fn parse_never_panics(s in "\\PC{0,12}|[0-9 .eE+-]{0,12}|[0-9]{1,6}-[0-9]{1,2}-[0-9]{1,2}[ T0-9:.+-]{0,14}") {
                for ty in [DataType::Bool, DataType::Int2, DataType::Int8, DataType::Float4,
                           DataType::Float8, NUMERIC, numeric(5, 2), DataType::Varchar(Some(3)),
                           DataType::Char(Some(2)), DataType::Bytea, DataType::Date,
                           DataType::Timestamp] {
                    let _ = Value::parse(&s, &ty);
                    let _ = Value::parse(&format!("\\x{s}"), &ty);
                }
            }
        }
    }
}
