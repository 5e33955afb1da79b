//! TPC-C consistency conditions 1 to 4 (clause 3.3.2), checked in one
//! read-only transaction after a run:
//!
//! 1. For each warehouse, `W_YTD` = sum of its districts' `D_YTD`.
//! 2. For each district, `D_NEXT_O_ID - 1` = max(`O_ID`) of its orders =
//!    max(`NO_O_ID`) of its new-orders.
//! 3. For each district, max(`NO_O_ID`) - min(`NO_O_ID`) + 1 = the number of
//!    its new-order rows.
//! 4. For each district, sum of its orders' `O_OL_CNT` = the number of its
//!    order-line rows.
//!
//! Money is exact in Strata and PostgreSQL (`NUMERIC`); SQLite keeps it as
//! floating point, so condition 1 allows it an error of half a cent.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::sqldb::{DbError, ResultRows, SqlConn};

/// (warehouse, district).
type District = (i64, i64);

fn by_district(
    rows: &ResultRows,
    values: usize,
) -> Result<BTreeMap<District, Vec<Decimal>>, DbError> {
    let mut out = BTreeMap::new();
    for r in rows {
        let key = (r[0].as_i64()?, r[1].as_i64()?);
        let v = (0..values).map(|i| r[2 + i].as_decimal()).collect::<Result<_, _>>()?;
        out.insert(key, v);
    }
    Ok(out)
}

/// Checks conditions 1 to 4; returns the violations found (empty if none).
pub fn consistency(conn: &mut dyn SqlConn) -> Result<Vec<String>, DbError> {
    conn.begin(true)?;
    let result = check(conn);
    let _ = conn.rollback();
    result
}

fn check(conn: &mut dyn SqlConn) -> Result<Vec<String>, DbError> {
    let mut violations = Vec::new();
    let tolerance = Decimal::new(5, 3);

    // 1
    let warehouses = conn.query("SELECT w_id, w_ytd FROM warehouse ORDER BY w_id", &[])?;
    let district_ytd =
        conn.query("SELECT d_w_id, SUM(d_ytd) FROM district GROUP BY d_w_id", &[])?;
    let mut sums = BTreeMap::new();
    for r in &district_ytd {
        sums.insert(r[0].as_i64()?, r[1].as_decimal()?);
    }
    for r in &warehouses {
        let (w, ytd) = (r[0].as_i64()?, r[1].as_decimal()?);
        let sum = sums.get(&w).copied().unwrap_or_default();
        if (ytd - sum).abs() > tolerance {
            violations.push(format!("condition 1: warehouse {w} W_YTD {ytd} != sum(D_YTD) {sum}"));
        }
    }

    // 2 and 3
    let districts = conn.query("SELECT d_w_id, d_id, d_next_o_id FROM district", &[])?;
    let max_order = by_district(
        &conn.query("SELECT o_w_id, o_d_id, MAX(o_id) FROM orders GROUP BY o_w_id, o_d_id", &[])?,
        1,
    )?;
    let new_orders = by_district(
        &conn.query(
            "SELECT no_w_id, no_d_id, MAX(no_o_id), MIN(no_o_id), COUNT(*) FROM new_order \
             GROUP BY no_w_id, no_d_id",
            &[],
        )?,
        3,
    )?;
    for r in &districts {
        let key = (r[0].as_i64()?, r[1].as_i64()?);
        let next = Decimal::from(r[2].as_i64()?);
        let last = next - Decimal::ONE;
        match max_order.get(&key) {
            Some(v) if v[0] == last => {}
            other => violations.push(format!(
                "condition 2: district {key:?} D_NEXT_O_ID - 1 = {last} but max(O_ID) = {:?}",
                other.map(|v| v[0])
            )),
        }
        if let Some(no) = new_orders.get(&key) {
            if no[0] != last {
                violations.push(format!(
                    "condition 2: district {key:?} D_NEXT_O_ID - 1 = {last} but max(NO_O_ID) = {}",
                    no[0]
                ));
            }
            if no[0] - no[1] + Decimal::ONE != no[2] {
                violations.push(format!(
                    "condition 3: district {key:?} max(NO_O_ID) {} - min(NO_O_ID) {} + 1 != {} \
                     new orders",
                    no[0], no[1], no[2]
                ));
            }
        }
    }

    // 4
    let line_counts = by_district(
        &conn.query(
            "SELECT o_w_id, o_d_id, SUM(o_ol_cnt) FROM orders GROUP BY o_w_id, o_d_id",
            &[],
        )?,
        1,
    )?;
    let lines = by_district(
        &conn.query(
            "SELECT ol_w_id, ol_d_id, COUNT(*) FROM order_line GROUP BY ol_w_id, ol_d_id",
            &[],
        )?,
        1,
    )?;
    for (key, expected) in &line_counts {
        let actual = lines.get(key).map_or(Decimal::ZERO, |v| v[0]);
        if actual != expected[0] {
            violations.push(format!(
                "condition 4: district {key:?} sum(O_OL_CNT) {} != {actual} order lines",
                expected[0]
            ));
        }
    }
    if districts.is_empty() || warehouses.is_empty() {
        violations.push("no warehouses or districts: nothing was loaded".into());
    }
    Ok(violations)
}
