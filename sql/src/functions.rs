//! Scalar functions: name resolution with result types, and evaluation.
//!
//! Functions are strict (a NULL argument gives NULL) except `concat` (skips
//! NULLs), `coalesce`, `greatest`/`least` (ignore NULLs) and `nullif`, as in
//! PostgreSQL.

use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;

use crate::error::{Result, SqlError, sqlstate};
use crate::exec::Cx;
use crate::expr::{Func, text_of};
use crate::types::{ArithOp, DataType, Value, arithmetic, arithmetic_result_type};

/// What `version()` reports.
const VERSION: &str = concat!("PostgreSQL 15.0 (Strata ", env!("CARGO_PKG_VERSION"), ")");
/// PostgreSQL's number for the UTF8 encoding, the only one Strata speaks.
const UTF8_ENCODING: i64 = 6;

const NUMERIC: DataType = DataType::Numeric { precision: None, scale: None };

fn undefined(name: &str, args: &[DataType]) -> SqlError {
    let list: Vec<String> = args.iter().map(DataType::pg_name).collect();
    SqlError::new(
        sqlstate::UNDEFINED_FUNCTION,
        format!("function {name}({}) does not exist", list.join(", ")),
    )
}

/// The common type of `types` for COALESCE, CASE, GREATEST and the like:
/// numeric types widen, strings become text, otherwise all must agree.
pub fn common_type(types: &[DataType]) -> Option<DataType> {
    let mut it =
        types.iter().filter(|t| **t != DataType::Text || types.iter().all(|u| u.is_string()));
    let first = it.next().cloned().unwrap_or(DataType::Text);
    types.iter().try_fold(first, |acc, t| {
        if acc == *t {
            Some(acc)
        } else if acc.is_numeric() && t.is_numeric() {
            arithmetic_result_type(&acc, t)
        } else if acc.is_string() && t.is_string() {
            Some(DataType::Text)
        } else if *t == DataType::Text {
            Some(acc) // an untyped string literal adapts
        } else if acc == DataType::Text {
            Some(t.clone())
        } else if matches!(
            (&acc, t),
            (DataType::Date, DataType::Timestamp) | (DataType::Timestamp, DataType::Date)
        ) {
            Some(DataType::Timestamp)
        } else {
            None
        }
    })
}

/// Resolves a function name and argument types to a function and its result type.
pub fn resolve(name: &str, args: &[DataType]) -> Result<(Func, DataType)> {
    use DataType as T;
    let n = args.len();
    let arity = |ok: bool| if ok { Ok(()) } else { Err(undefined(name, args)) };
    let f = match name {
        "lower" => (Func::Lower, T::Text, arity(n == 1)),
        "upper" => (Func::Upper, T::Text, arity(n == 1)),
        "length" | "char_length" | "character_length" => (Func::Length, T::Int4, arity(n == 1)),
        "substr" | "substring" => (Func::Substr, T::Text, arity(n == 2 || n == 3)),
        "btrim" | "trim" => (Func::Trim, T::Text, arity(n == 1 || n == 2)),
        "ltrim" => (Func::Ltrim, T::Text, arity(n == 1 || n == 2)),
        "rtrim" => (Func::Rtrim, T::Text, arity(n == 1 || n == 2)),
        "replace" => (Func::Replace, T::Text, arity(n == 3)),
        "concat" => (Func::Concat, T::Text, Ok(())),
        "left" => (Func::Left, T::Text, arity(n == 2)),
        "right" => (Func::Right, T::Text, arity(n == 2)),
        "repeat" => (Func::Repeat, T::Text, arity(n == 2)),
        "reverse" => (Func::Reverse, T::Text, arity(n == 1)),
        "lpad" => (Func::Lpad, T::Text, arity(n == 2 || n == 3)),
        "rpad" => (Func::Rpad, T::Text, arity(n == 2 || n == 3)),
        "strpos" => (Func::Strpos, T::Int4, arity(n == 2)),
        "abs" => (
            Func::Abs,
            args.first().cloned().unwrap_or(T::Float8),
            arity(n == 1 && args[0].is_numeric()),
        ),
        "round" => {
            (Func::Round, numeric_or_float(args), arity((n == 1 || n == 2) && args[0].is_numeric()))
        }
        "ceil" | "ceiling" => {
            (Func::Ceil, numeric_or_float(args), arity(n == 1 && args[0].is_numeric()))
        }
        "floor" => (Func::Floor, numeric_or_float(args), arity(n == 1 && args[0].is_numeric())),
        "trunc" => {
            (Func::Trunc, numeric_or_float(args), arity((n == 1 || n == 2) && args[0].is_numeric()))
        }
        "sqrt" => (Func::Sqrt, numeric_or_float(args), arity(n == 1 && args[0].is_numeric())),
        "power" | "pow" => {
            (Func::Power, numeric_or_float(args), arity(n == 2 && args.iter().all(T::is_numeric)))
        }
        "sign" => (Func::Sign, numeric_or_float(args), arity(n == 1 && args[0].is_numeric())),
        "mod" => {
            let ty = if n == 2 { arithmetic_result_type(&args[0], &args[1]) } else { None };
            match ty {
                Some(ty) => (Func::Mod, ty, Ok(())),
                None => return Err(undefined(name, args)),
            }
        }
        "coalesce" | "greatest" | "least" => {
            let ty = common_type(args).ok_or_else(|| {
                SqlError::new(
                    sqlstate::DATATYPE_MISMATCH,
                    format!("{} types cannot be matched", name.to_uppercase()),
                )
            })?;
            let f = match name {
                "coalesce" => Func::Coalesce,
                "greatest" => Func::Greatest,
                _ => Func::Least,
            };
            (f, ty, arity(n >= 1))
        }
        "nullif" => (Func::Nullif, args.first().cloned().unwrap_or(T::Text), arity(n == 2)),
        "now" | "current_timestamp" | "transaction_timestamp" | "localtimestamp" => {
            (Func::Now, T::Timestamp, arity(n == 0))
        }
        "current_date" => (Func::CurrentDate, T::Date, arity(n == 0)),
        "date_part" => (Func::DatePart, T::Float8, arity(n == 2)),
        "date_trunc" => (Func::DateTrunc, T::Timestamp, arity(n == 2)),
        "current_database" | "current_catalog" => (Func::CurrentDatabase, T::Text, arity(n == 0)),
        "current_schema" => (Func::CurrentSchema, T::Text, arity(n == 0)),
        "version" => (Func::Version, T::Text, arity(n == 0)),
        "pg_get_userbyid" => (Func::UserById, T::Text, arity(n == 1 && args[0].is_integer())),
        "pg_table_is_visible" | "pg_type_is_visible" => {
            (Func::IsVisible, T::Bool, arity(n == 1 && args[0].is_integer()))
        }
        "pg_encoding_to_char" => {
            (Func::EncodingName, T::Text, arity(n == 1 && args[0].is_integer()))
        }
        "format_type" => (
            Func::FormatType,
            T::Text,
            arity(n == 2 && args.iter().all(|a| a.is_integer() || *a == T::Text)),
        ),
        "pg_get_expr" => (Func::ExprText, T::Text, arity(n == 2 || n == 3)),
        "obj_description"
        | "col_description"
        | "shobj_description"
        | "pg_get_statisticsobjdef_columns" => {
            (Func::Description, T::Text, arity(n == 1 || n == 2))
        }
        "array_to_string" => (Func::ArrayToString, T::Text, arity(n == 2 || n == 3)),
        "array_upper" | "array_length" => {
            (Func::ArrayUpper, T::Int4, arity(n == 2 && args[1].is_integer()))
        }
        "cardinality" => (Func::Cardinality, T::Int4, arity(n == 1)),
        "pg_relation_is_publishable" => (Func::IsPublishable, T::Bool, arity(n == 1)),
        _ => return Err(undefined(name, args)),
    };
    f.2?;
    Ok((f.0, f.1))
}

fn numeric_or_float(args: &[DataType]) -> DataType {
    match args.first() {
        Some(DataType::Float4 | DataType::Float8) => DataType::Float8,
        _ => NUMERIC,
    }
}

fn int_arg(v: &Value) -> Result<i64> {
    match v {
        Value::Int(i) => Ok(*i),
        other => other.cast(&DataType::Int8).and_then(|v| match v {
            Value::Int(i) => Ok(i),
            _ => Err(SqlError::internal("integer cast did not give an integer")),
        }),
    }
}

fn to_f64(v: &Value) -> Result<f64> {
    match v.cast(&DataType::Float8)? {
        Value::Float(f) => Ok(f),
        _ => Err(SqlError::internal("float cast did not give a float")),
    }
}

fn to_decimal(v: &Value) -> Result<Decimal> {
    match v.cast(&NUMERIC)? {
        Value::Numeric(d) => Ok(d),
        _ => Err(SqlError::internal("numeric cast did not give a numeric")),
    }
}

fn pad(s: &str, len: i64, fill: &str, left: bool) -> String {
    let len = len.max(0) as usize;
    let chars: Vec<char> = s.chars().collect();
    if chars.len() >= len || fill.is_empty() {
        return chars.into_iter().take(len).collect();
    }
    let padding: String = fill.chars().cycle().take(len - chars.len()).collect();
    if left { format!("{padding}{s}") } else { format!("{s}{padding}") }
}

/// Evaluates a function on already evaluated arguments.
pub fn call(f: Func, args: Vec<Value>, ty: &DataType, cx: &mut Cx<'_>) -> Result<Value> {
    let nullable = matches!(
        f,
        Func::Concat
            | Func::Coalesce
            | Func::Greatest
            | Func::Least
            | Func::Nullif
            | Func::FormatType
    );
    if !nullable && args.iter().any(Value::is_null) {
        return Ok(Value::Null);
    }
    let s = |i: usize| text_of(&args[i]);
    Ok(match f {
        Func::Lower => Value::Text(s(0).to_lowercase()),
        Func::Upper => Value::Text(s(0).to_uppercase()),
        Func::Length => Value::Int(s(0).chars().count() as i64),
        Func::Substr => {
            // substr(s, start [, count]) with 1-based start, as PostgreSQL.
            let chars: Vec<char> = s(0).chars().collect();
            let start = int_arg(&args[1])?;
            let end = match args.get(2) {
                Some(c) => {
                    let c = int_arg(c)?;
                    if c < 0 {
                        return Err(SqlError::new(
                            sqlstate::INVALID_PARAMETER_VALUE,
                            "negative substring length not allowed",
                        ));
                    }
                    start.saturating_add(c)
                }
                None => i64::MAX,
            };
            let from = (start.max(1) - 1) as usize;
            let to = (end.max(1) - 1).min(chars.len() as i64) as usize;
            Value::Text(if from < to { chars[from..to].iter().collect() } else { String::new() })
        }
        Func::Trim | Func::Ltrim | Func::Rtrim => {
            let set: Vec<char> = if args.len() > 1 { s(1).chars().collect() } else { vec![' '] };
            let text = s(0);
            let t = match f {
                Func::Trim => text.trim_matches(|c| set.contains(&c)),
                Func::Ltrim => text.trim_start_matches(|c| set.contains(&c)),
                _ => text.trim_end_matches(|c| set.contains(&c)),
            };
            Value::Text(t.to_string())
        }
        Func::Replace => {
            let from = s(1);
            Value::Text(if from.is_empty() { s(0) } else { s(0).replace(&from, &s(2)) })
        }
        Func::Concat => Value::Text(args.iter().filter(|v| !v.is_null()).map(text_of).collect()),
        Func::Left | Func::Right => {
            let chars: Vec<char> = s(0).chars().collect();
            let n = int_arg(&args[1])?;
            let len = chars.len() as i64;
            let keep = if n >= 0 { n.min(len) } else { (len + n).max(0) } as usize;
            Value::Text(if f == Func::Left {
                chars[..keep].iter().collect()
            } else {
                chars[chars.len() - keep..].iter().collect()
            })
        }
        Func::Repeat => {
            let n = int_arg(&args[1])?.max(0) as usize;
            if s(0).len().saturating_mul(n) > MAX_RESULT_CHARS as usize {
                return Err(SqlError::new(
                    sqlstate::PROGRAM_LIMIT_EXCEEDED,
                    "requested length too large",
                ));
            }
            Value::Text(s(0).repeat(n))
        }
        Func::Reverse => Value::Text(s(0).chars().rev().collect()),
        Func::Lpad | Func::Rpad => {
            let fill = if args.len() > 2 { s(2) } else { " ".to_string() };
            if int_arg(&args[1])? > MAX_RESULT_CHARS {
                return Err(SqlError::new(
                    sqlstate::PROGRAM_LIMIT_EXCEEDED,
                    "requested length too large",
                ));
            }
            Value::Text(pad(&s(0), int_arg(&args[1])?, &fill, f == Func::Lpad))
        }
        Func::Strpos => Value::Int(match s(0).find(&s(1)) {
            Some(byte) => s(0)[..byte].chars().count() as i64 + 1,
            None => 0,
        }),
        Func::Abs => match &args[0] {
            Value::Int(i) => {
                let out_of_range = || {
                    SqlError::new(
                        sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
                        format!("{} out of range", int_name(ty)),
                    )
                };
                Value::Int(i.checked_abs().ok_or_else(out_of_range)?).cast(ty)?
            }
            Value::Float(x) => Value::Float(x.abs()),
            Value::Numeric(d) => Value::Numeric(d.abs()),
            other => return Err(SqlError::internal(format!("abs of {other:?}"))),
        },
        Func::Round | Func::Trunc | Func::Ceil | Func::Floor => {
            let places = match args.get(1) {
                Some(p) => int_arg(p)?,
                None => 0,
            };
            if *ty == DataType::Float8 {
                let x = to_f64(&args[0])?;
                Value::Float(match f {
                    Func::Round => x.round(),
                    Func::Trunc => x.trunc(),
                    Func::Ceil => x.ceil(),
                    _ => x.floor(),
                })
            } else {
                let d = to_decimal(&args[0])?;
                let dp = places.clamp(0, 28) as u32;
                Value::Numeric(match f {
                    Func::Round => d.round_dp_with_strategy(
                        dp,
                        rust_decimal::RoundingStrategy::MidpointAwayFromZero,
                    ),
                    Func::Trunc => d.trunc_with_scale(dp),
                    Func::Ceil => d.ceil(),
                    _ => d.floor(),
                })
            }
        }
        Func::Sqrt => {
            let x = to_f64(&args[0])?;
            if x < 0.0 {
                return Err(SqlError::new("2201F", "cannot take square root of a negative number"));
            }
            let r = Value::Float(x.sqrt());
            if *ty == DataType::Float8 {
                r
            } else {
                Value::Numeric(Decimal::from_f64(x.sqrt()).unwrap_or_default())
            }
        }
        Func::Power => {
            let r = to_f64(&args[0])?.powf(to_f64(&args[1])?);
            if !r.is_finite() {
                return Err(SqlError::new(
                    sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
                    "value out of range: overflow",
                ));
            }
            if *ty == DataType::Float8 {
                Value::Float(r)
            } else {
                Value::Numeric(Decimal::from_f64(r).ok_or_else(|| {
                    SqlError::new(
                        sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
                        "value overflows numeric format",
                    )
                })?)
            }
        }
        Func::Sign => {
            let x = to_f64(&args[0])?;
            let sign = if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            };
            if *ty == DataType::Float8 {
                Value::Float(sign)
            } else {
                Value::Numeric(Decimal::from_f64(sign).unwrap_or_default())
            }
        }
        Func::Mod => arithmetic(ArithOp::Mod, &args[0], &args[1], ty)?,
        Func::Coalesce => args.into_iter().find(|v| !v.is_null()).unwrap_or(Value::Null),
        Func::Nullif => {
            if args[0].sql_cmp(&args[1]) == Some(std::cmp::Ordering::Equal) {
                Value::Null
            } else {
                args.into_iter().next().expect("two arguments")
            }
        }
        Func::Greatest | Func::Least => {
            let mut best: Option<Value> = None;
            for v in args.into_iter().filter(|v| !v.is_null()) {
                let v = v.cast(ty)?;
                let better = best.as_ref().is_none_or(|b| {
                    let ord = v.sort_cmp(b);
                    if f == Func::Greatest { ord.is_gt() } else { ord.is_lt() }
                });
                if better {
                    best = Some(v);
                }
            }
            best.unwrap_or(Value::Null)
        }
        Func::Now => Value::Timestamp(cx.statement_timestamp_micros()),
        Func::CurrentDate => {
            Value::Date(cx.statement_timestamp_micros().div_euclid(86_400_000_000) as i32)
        }
        Func::DatePart => date_part(&s(0), &args[1])?,
        Func::DateTrunc => date_trunc(&s(0), &args[1])?,
        Func::CurrentDatabase => Value::Text(crate::system::DATABASE_NAME.to_string()),
        Func::CurrentSchema => Value::Text("public".to_string()),
        Func::Version => Value::Text(VERSION.to_string()),
        Func::UserById => {
            let oid = int_arg(&args[0])?;
            Value::Text(if oid == crate::system::OWNER {
                crate::system::OWNER_NAME.to_string()
            } else {
                format!("unknown (OID={oid})")
            })
        }
        Func::IsVisible => Value::Bool(true),
        Func::EncodingName => {
            Value::Text(if int_arg(&args[0])? == UTF8_ENCODING { "UTF8" } else { "" }.to_string())
        }
        Func::FormatType => {
            if args[0].is_null() {
                return Ok(Value::Null);
            }
            let typmod = if args[1].is_null() { None } else { Some(int_arg(&args[1])?) };
            let oid = int_arg(&args[0])?;
            Value::Text(
                crate::system::format_type(oid, typmod).unwrap_or_else(|| "???".to_string()),
            )
        }
        Func::ExprText => Value::Text(s(0)),
        Func::Description => Value::Null,
        Func::ArrayUpper => {
            let len = parse_array(&s(0))?.len() as i64;
            if int_arg(&args[1])? != 1 || len == 0 { Value::Null } else { Value::Int(len) }
        }
        Func::Cardinality => Value::Int(parse_array(&s(0))?.len() as i64),
        Func::ArrayElement => {
            let items = parse_array(&s(0))?;
            let index = int_arg(&args[1])?;
            match usize::try_from(index - 1).ok().and_then(|i| items.into_iter().nth(i)).flatten() {
                Some(text) => Value::parse(&text, ty)?,
                None => Value::Null,
            }
        }
        Func::IsPublishable => Value::Bool(false),
        Func::ArrayToString => {
            let items: Vec<String> = parse_array(&s(0))?.into_iter().flatten().collect();
            Value::Text(items.join(&s(1)))
        }
    })
}

fn int_name(ty: &DataType) -> &'static str {
    match ty {
        DataType::Int2 => "smallint",
        DataType::Int8 => "bigint",
        _ => "integer",
    }
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The longest string a function may build (PostgreSQL's limit is 1 GB; ours
/// is lower so that one statement cannot take the process's memory).
const MAX_RESULT_CHARS: i64 = 1 << 28;

/// (year, month, day) of a day number counted from 2000-01-01 (Howard
/// Hinnant's civil_from_days, shifted to PostgreSQL's epoch).
fn civil(days_since_2000: i64) -> (i64, i64, i64) {
    let z = days_since_2000 + 10_957 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Day number from 2000-01-01 of a civil date (Hinnant's days_from_civil).
fn days(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468 - 10_957
}

fn micros_of(v: &Value) -> Result<i64> {
    match v {
        Value::Timestamp(t) => Ok(*t),
        Value::Date(d) => crate::types::date_to_timestamp(*d),
        other => match other.cast(&DataType::Timestamp)? {
            Value::Timestamp(t) => Ok(t),
            _ => Err(SqlError::internal("timestamp cast")),
        },
    }
}

fn date_part(field: &str, v: &Value) -> Result<Value> {
    let t = micros_of(v)?;
    // PostgreSQL: the parts of an infinite timestamp are infinite.
    if t == crate::types::TIMESTAMP_POS_INFINITY {
        return Ok(Value::Float(f64::INFINITY));
    }
    if t == crate::types::TIMESTAMP_NEG_INFINITY {
        return Ok(Value::Float(f64::NEG_INFINITY));
    }
    let day = t.div_euclid(MICROS_PER_DAY);
    let tod = t.rem_euclid(MICROS_PER_DAY);
    let (y, m, d) = civil(day);
    let x = match field.to_lowercase().as_str() {
        "year" => y as f64,
        "month" => m as f64,
        "day" => d as f64,
        "hour" => (tod / 3_600_000_000) as f64,
        "minute" => (tod / 60_000_000 % 60) as f64,
        "second" => (tod % 60_000_000) as f64 / 1e6,
        "dow" => (day + 6).rem_euclid(7) as f64, // 2000-01-01 was a Saturday
        "doy" => (day - days(y, 1, 1) + 1) as f64,
        "quarter" => ((m - 1) / 3 + 1) as f64,
        "epoch" => (t as f64 / 1e6) + 946_684_800.0,
        other => {
            return Err(SqlError::new(
                sqlstate::FEATURE_NOT_SUPPORTED,
                format!("unit \"{other}\" not supported for type timestamp"),
            ));
        }
    };
    Ok(Value::Float(x))
}

fn date_trunc(field: &str, v: &Value) -> Result<Value> {
    let t = micros_of(v)?;
    if t == crate::types::TIMESTAMP_POS_INFINITY || t == crate::types::TIMESTAMP_NEG_INFINITY {
        return Ok(Value::Timestamp(t));
    }
    let day = t.div_euclid(MICROS_PER_DAY);
    let tod = t.rem_euclid(MICROS_PER_DAY);
    let (y, m, _) = civil(day);
    let out = match field.to_lowercase().as_str() {
        "year" => days(y, 1, 1) * MICROS_PER_DAY,
        "quarter" => days(y, (m - 1) / 3 * 3 + 1, 1) * MICROS_PER_DAY,
        "month" => days(y, m, 1) * MICROS_PER_DAY,
        "day" => day * MICROS_PER_DAY,
        "hour" => day * MICROS_PER_DAY + tod / 3_600_000_000 * 3_600_000_000,
        "minute" => day * MICROS_PER_DAY + tod / 60_000_000 * 60_000_000,
        "second" => day * MICROS_PER_DAY + tod / 1_000_000 * 1_000_000,
        other => {
            return Err(SqlError::new(
                sqlstate::FEATURE_NOT_SUPPORTED,
                format!("unit \"{other}\" not supported for type timestamp"),
            ));
        }
    };
    Ok(Value::Timestamp(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        for (y, m, d) in
            [(2000, 1, 1), (1999, 12, 31), (2024, 2, 29), (1, 1, 1), (9999, 12, 31), (1970, 1, 1)]
        {
            assert_eq!(civil(days(y, m, d)), (y, m, d));
        }
        assert_eq!(days(2000, 1, 1), 0);
        assert_eq!(days(1970, 1, 1), -10_957);
    }

    #[test]
    fn common_types_widen() {
        use DataType as T;
        assert_eq!(common_type(&[T::Int4, T::Int8]), Some(T::Int8));
        assert_eq!(common_type(&[T::Varchar(Some(3)), T::Text]), Some(T::Text));
        assert_eq!(common_type(&[T::Int4, T::Text]), Some(T::Int4), "an untyped literal adapts");
        assert_eq!(common_type(&[T::Int4, T::Bool]), None);
    }

    #[test]
    fn padding_and_truncation() {
        assert_eq!(pad("hi", 5, "xy", true), "xyxhi");
        assert_eq!(pad("hello", 3, " ", false), "hel");
        assert_eq!(pad("hi", 4, "", true), "hi");
    }
}

/// Formats values as PostgreSQL's array text: `{a,"b c",NULL}`.
pub fn format_array<'a>(values: impl Iterator<Item = &'a Value>) -> String {
    let items: Vec<String> = values
        .map(|v| match v {
            Value::Null => "NULL".to_string(),
            v => {
                let text = text_of(v);
                let plain = !text.is_empty()
                    && !text.eq_ignore_ascii_case("null")
                    && !text.chars().any(|c| "{},\"\\".contains(c) || c.is_whitespace());
                if plain {
                    text
                } else {
                    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
                }
            }
        })
        .collect();
    format!("{{{}}}", items.join(","))
}

/// Parses a one-dimensional array's text (`{a,"b c",NULL}`) into its
/// elements, `None` for NULL; fails with 22P02 on anything else.
pub fn parse_array(text: &str) -> Result<Vec<Option<String>>> {
    let malformed = || {
        SqlError::new(
            sqlstate::INVALID_TEXT_REPRESENTATION,
            format!("malformed array literal: \"{text}\""),
        )
    };
    let inner =
        text.trim().strip_prefix('{').and_then(|t| t.strip_suffix('}')).ok_or_else(malformed)?;
    let mut items = Vec::new();
    if inner.trim().is_empty() {
        return Ok(items);
    }
    let mut chars = inner.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let item = if chars.next_if_eq(&'"').is_some() {
            let mut item = String::new();
            loop {
                match chars.next().ok_or_else(malformed)? {
                    '"' => break,
                    '\\' => item.push(chars.next().ok_or_else(malformed)?),
                    c => item.push(c),
                }
            }
            Some(item)
        } else {
            let mut item = String::new();
            while let Some(c) = chars.next_if(|&c| c != ',') {
                if "{}\"".contains(c) {
                    return Err(malformed());
                }
                item.push(c);
            }
            let item = item.trim_end().to_string();
            if item.is_empty() {
                return Err(malformed());
            }
            if item.eq_ignore_ascii_case("null") { None } else { Some(item) }
        };
        items.push(item);
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        match chars.next() {
            Some(',') => {}
            None => return Ok(items),
            Some(_) => return Err(malformed()),
        }
    }
}

#[cfg(test)]
mod array_tests {
    use super::*;

    #[test]
    fn array_text_round_trips() {
        let values =
            [Value::Text("a".into()), Value::Null, Value::Text("b c,\"d\"".into()), Value::Int(7)];
        let text = format_array(values.iter());
        assert_eq!(text, r#"{a,NULL,"b c,\"d\"",7}"#);
        assert_eq!(
            parse_array(&text).unwrap(),
            vec![Some("a".into()), None, Some("b c,\"d\"".into()), Some("7".into())]
        );
        assert_eq!(parse_array("{}").unwrap(), Vec::<Option<String>>::new());
        assert_eq!(parse_array(" { 1 , 2 } ").unwrap(), vec![Some("1".into()), Some("2".into())]);
        for bad in ["", "1,2", "{1,,2}", "{\"a}", "{a\"b}", "{1} x"] {
            assert!(parse_array(bad).is_err(), "{bad}");
        }
    }
}
