//! Values on the wire: Strata's [`Value`]s in PostgreSQL's text and binary
//! formats, both ways.
//!
//! Text is what `Value::to_pg_text_typed` prints (the same text psql shows).
//! Binary follows PostgreSQL's `*send`/`*recv` functions: big-endian integers
//! and floats, dates as days and timestamps as microseconds since 2000-01-01,
//! NUMERIC as base-10000 digits with a weight, sign and display scale.

use bytes::{BufMut, BytesMut};
use pgwire::api::Type;
use pgwire::api::portal::Format;
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::messages::data::DataRow;
use rust_decimal::Decimal;
use strata_sql::{DataType, OutputColumn, SqlError, Value};

/// SQLSTATE for a malformed binary parameter.
const INVALID_BINARY_REPRESENTATION: &str = "22P03";

/// The PostgreSQL type for a Strata type.
pub fn pg_type(ty: &DataType) -> Type {
    Type::from_oid(ty.oid()).unwrap_or(Type::TEXT)
}

/// `pg_attribute.atttypmod` for a type: length + 4 for `varchar(n)`/`char(n)`,
/// `(precision << 16 | scale) + 4` for `numeric(p,s)`, else -1.
fn type_modifier(ty: &DataType) -> i32 {
    match ty {
        DataType::Varchar(Some(n)) | DataType::Char(Some(n)) => *n as i32 + 4,
        DataType::Numeric { precision: Some(p), scale } => {
            ((*p as i32) << 16 | scale.unwrap_or(0) as i32) + 4
        }
        _ => -1,
    }
}

/// `pg_type.typlen`: the fixed width, or -1 for variable-width types.
fn type_size(ty: &DataType) -> i16 {
    match ty {
        DataType::Bool => 1,
        DataType::Int2 => 2,
        DataType::Int4 | DataType::Float4 | DataType::Date => 4,
        DataType::Int8 | DataType::Float8 | DataType::Timestamp => 8,
        _ => -1,
    }
}

/// The RowDescription fields for result columns, in `format`.
pub fn fields(columns: &[OutputColumn], format: &Format) -> Vec<FieldInfo> {
    columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            FieldInfo::new(c.name.clone(), None, None, pg_type(&c.ty), format.format_for(i))
                .with_type_modifier(type_modifier(&c.ty))
                .with_type_size(type_size(&c.ty))
        })
        .collect()
}

/// One result row as a DataRow, each value in its field's format.
pub fn data_row(row: &[Value], columns: &[OutputColumn], fields: &[FieldInfo]) -> DataRow {
    let mut buf = BytesMut::with_capacity(16 * row.len());
    for ((value, column), field) in row.iter().zip(columns).zip(fields) {
        if value.is_null() {
            buf.put_i32(-1);
            continue;
        }
        let at = buf.len();
        buf.put_i32(0);
        match field.format() {
            FieldFormat::Text => buf.put_slice(value.to_pg_text_typed(&column.ty).as_bytes()),
            FieldFormat::Binary => encode_binary(value, &column.ty, &mut buf),
        }
        let len = (buf.len() - at - 4) as i32;
        buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }
    DataRow::new(buf, row.len() as i16)
}

/// `value` in PostgreSQL's binary format for `ty`. A value whose
/// representation differs from the column type's is cast first; one that
/// cannot be is sent as text (PostgreSQL's text `recv` of the type name).
fn encode_binary(value: &Value, ty: &DataType, buf: &mut BytesMut) {
    let cast;
    let value = match (value, ty) {
        (Value::Bool(_), DataType::Bool)
        | (Value::Int(_), DataType::Int2 | DataType::Int4 | DataType::Int8)
        | (Value::Float(_), DataType::Float4 | DataType::Float8)
        | (Value::Numeric(_), DataType::Numeric { .. })
        | (Value::Bytes(_), DataType::Bytea)
        | (Value::Date(_), DataType::Date)
        | (Value::Timestamp(_), DataType::Timestamp) => value,
        _ => match value.cast(ty) {
            Ok(v) => {
                cast = v;
                &cast
            }
            Err(_) => {
                buf.put_slice(value.to_pg_text().as_bytes());
                return;
            }
        },
    };
    match (value, ty) {
        (Value::Bool(b), _) => buf.put_u8(u8::from(*b)),
        (Value::Int(i), DataType::Int2) => buf.put_i16(*i as i16),
        (Value::Int(i), DataType::Int4) => buf.put_i32(*i as i32),
        (Value::Int(i), _) => buf.put_i64(*i),
        (Value::Float(f), DataType::Float4) => buf.put_f32(*f as f32),
        (Value::Float(f), _) => buf.put_f64(*f),
        (Value::Numeric(d), _) => encode_numeric(*d, buf),
        (Value::Bytes(b), _) => buf.put_slice(b),
        (Value::Date(d), _) => buf.put_i32(*d),
        (Value::Timestamp(t), _) => buf.put_i64(*t),
        (Value::Text(_), DataType::Char(_)) => buf.put_slice(value.to_pg_text_typed(ty).as_bytes()),
        (Value::Text(s), _) => buf.put_slice(s.as_bytes()),
        (Value::Null, _) => unreachable!("NULL is written as length -1"),
    }
}

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;

/// NUMERIC's binary form: ndigits, weight, sign, dscale, then base-10000
/// digits, the first of which is multiplied by 10000^weight.
fn encode_numeric(d: Decimal, buf: &mut BytesMut) {
    let scale = d.scale() as usize;
    let digits = d.abs().mantissa().to_string();
    // Split into integer and fraction digits, padded to whole groups of four.
    let (int_part, frac_part) = if digits.len() > scale {
        digits.split_at(digits.len() - scale)
    } else {
        ("", digits.as_str())
    };
    let frac = format!("{frac_part:0>scale$}");
    let int_pad = (4 - int_part.len() % 4) % 4;
    let frac_pad = (4 - frac.len() % 4) % 4;
    let all = format!("{}{int_part}{frac}{}", "0".repeat(int_pad), "0".repeat(frac_pad));
    let mut groups: Vec<i16> = all
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap().parse().unwrap())
        .collect();
    let mut weight = ((int_part.len() + int_pad) / 4) as i16 - 1;
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    buf.put_i16(groups.len() as i16);
    buf.put_i16(weight);
    buf.put_u16(if d.is_sign_negative() && !d.is_zero() { NUMERIC_NEG } else { NUMERIC_POS });
    buf.put_u16(scale as u16);
    for g in groups {
        buf.put_i16(g);
    }
}

fn bad_binary(ty: &Type) -> SqlError {
    SqlError::new(
        INVALID_BINARY_REPRESENTATION,
        format!("incorrect binary data format in bind parameter of type {}", ty.name()),
    )
}

/// Decodes NUMERIC's binary form (see [`encode_numeric`]).
fn decode_numeric(b: &[u8], ty: &Type) -> Result<Decimal, SqlError> {
    let field = |i: usize| -> Result<u16, SqlError> {
        b.get(i..i + 2).map(|s| u16::from_be_bytes([s[0], s[1]])).ok_or_else(|| bad_binary(ty))
    };
    let (ndigits, weight, sign, dscale) =
        (field(0)? as usize, field(2)? as i16, field(4)?, field(6)?);
    if b.len() != 8 + 2 * ndigits || !(sign == NUMERIC_POS || sign == NUMERIC_NEG) {
        return Err(if sign == NUMERIC_POS || sign == NUMERIC_NEG {
            bad_binary(ty)
        } else {
            SqlError::new(
                strata_sql::sqlstate::FEATURE_NOT_SUPPORTED,
                "NaN and infinite NUMERIC values are not supported",
            )
        });
    }
    let mut mantissa: i128 = 0;
    for i in 0..ndigits {
        let digit = field(8 + 2 * i)?;
        if digit >= 10_000 {
            return Err(bad_binary(ty));
        }
        mantissa = mantissa
            .checked_mul(10_000)
            .and_then(|m| m.checked_add(i128::from(digit)))
            .ok_or_else(out_of_range)?;
    }
    // The last digit is worth 10000^(weight - ndigits + 1).
    let exponent = 4 * (i32::from(weight) - ndigits as i32 + 1);
    let mut value = if exponent >= 0 {
        let factor = 10i128.checked_pow(exponent as u32).ok_or_else(out_of_range)?;
        Decimal::try_from_i128_with_scale(mantissa.checked_mul(factor).ok_or_else(out_of_range)?, 0)
            .map_err(|_| out_of_range())?
    } else {
        Decimal::try_from_i128_with_scale(mantissa, (-exponent) as u32)
            .map_err(|_| out_of_range())?
    };
    if sign == NUMERIC_NEG {
        value.set_sign_negative(true);
    }
    value.rescale(u32::from(dscale).min(28));
    Ok(value)
}

fn out_of_range() -> SqlError {
    SqlError::new(
        strata_sql::sqlstate::NUMERIC_VALUE_OUT_OF_RANGE,
        "numeric parameter out of the supported range",
    )
}

/// A bound parameter as a [`Value`]: text parameters stay text (the binder
/// casts them to the type the statement needs, as PostgreSQL's input
/// functions would); binary ones are decoded by their type.
pub fn decode_param(bytes: Option<&[u8]>, ty: &Type, binary: bool) -> Result<Value, SqlError> {
    let Some(b) = bytes else { return Ok(Value::Null) };
    if !binary {
        return std::str::from_utf8(b).map(|s| Value::Text(s.to_string())).map_err(|_| {
            SqlError::new("22021", "invalid byte sequence for encoding \"UTF8\" in parameter")
        });
    }
    let fixed = |n: usize| -> Result<&[u8], SqlError> {
        (b.len() == n).then_some(b).ok_or_else(|| bad_binary(ty))
    };
    Ok(match *ty {
        Type::BOOL => Value::Bool(fixed(1)?[0] != 0),
        Type::INT2 => Value::Int(i64::from(i16::from_be_bytes(fixed(2)?.try_into().unwrap()))),
        Type::INT4 => Value::Int(i64::from(i32::from_be_bytes(fixed(4)?.try_into().unwrap()))),
        Type::INT8 => Value::Int(i64::from_be_bytes(fixed(8)?.try_into().unwrap())),
        Type::FLOAT4 => Value::Float(f64::from(f32::from_be_bytes(fixed(4)?.try_into().unwrap()))),
        Type::FLOAT8 => Value::Float(f64::from_be_bytes(fixed(8)?.try_into().unwrap())),
        Type::NUMERIC => Value::Numeric(decode_numeric(b, ty)?),
        Type::DATE => Value::Date(i32::from_be_bytes(fixed(4)?.try_into().unwrap())),
        Type::TIMESTAMP => Value::Timestamp(i64::from_be_bytes(fixed(8)?.try_into().unwrap())),
        Type::BYTEA => Value::Bytes(b.to_vec()),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            Value::Text(String::from_utf8(b.to_vec()).map_err(|_| bad_binary(ty))?)
        }
        _ => {
            return Err(SqlError::new(
                strata_sql::sqlstate::FEATURE_NOT_SUPPORTED,
                format!("binary parameters of type {} are not supported", ty.name()),
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_round_trip(text: &str) {
        let d: Decimal = text.parse().unwrap();
        let mut buf = BytesMut::new();
        encode_numeric(d, &mut buf);
        let back = decode_numeric(&buf, &Type::NUMERIC).unwrap();
        assert_eq!(back.to_string(), d.to_string(), "{text}");
    }

    #[test]
    fn numerics_survive_the_binary_form() {
        for t in [
            "0",
            "0.00",
            "1",
            "-1",
            "12345.678",
            "-0.0001",
            "10000",
            "99990000",
            "0.12345",
            "123456789012345678.90",
            "-7.5",
            "1e-10",
        ] {
            let t = if t.contains('e') { "0.0000000001" } else { t };
            numeric_round_trip(t);
        }
    }

    #[test]
    fn numeric_binary_form_matches_postgres() {
        // SELECT numeric_send(12345.678) in PostgreSQL: 3 digits, weight 1,
        // positive, dscale 3, digits 1 2345 6780.
        let mut buf = BytesMut::new();
        encode_numeric("12345.678".parse().unwrap(), &mut buf);
        assert_eq!(&buf[..], &[0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c]);
        // -0.0001: 1 digit, weight -1, negative, dscale 4, digit 1.
        let mut buf = BytesMut::new();
        encode_numeric("-0.0001".parse().unwrap(), &mut buf);
        assert_eq!(&buf[..], &[0, 1, 0xff, 0xff, 0x40, 0, 0, 4, 0, 1]);
    }

    #[test]
    fn malformed_binary_parameters_are_errors_not_panics() {
        for (ty, bytes) in [
            (Type::INT4, &b"\x00\x01"[..]),
            (Type::INT8, b"\x00"),
            (Type::NUMERIC, b"\x00\x05\x00\x00"),
            (Type::NUMERIC, b"\x00\x01\x00\x00\x00\x00\x00\x00\xff\xff"),
            (Type::TEXT, b"\xff\xfe"),
            (Type::BOOL, b""),
        ] {
            let err = decode_param(Some(bytes), &ty, true).expect_err("malformed");
            assert_eq!(err.code, INVALID_BINARY_REPRESENTATION, "{ty}");
        }
        assert_eq!(decode_param(None, &Type::INT4, true).unwrap(), Value::Null);
        assert_eq!(
            decode_param(Some(b"42"), &Type::INT4, false).unwrap(),
            Value::Text("42".into())
        );
    }
}
