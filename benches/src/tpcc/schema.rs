//! The TPC-C schema (clause 1.3) and the loader that populates it by the
//! rules of clause 4.3.3.1.
//!
//! The DDL is written once for Strata, PostgreSQL and SQLite: `INT`,
//! `NUMERIC(p,s)` for the spec's signed numerics (exact in Strata and
//! PostgreSQL; SQLite stores them as floating point), `VARCHAR`/`CHAR` for
//! text and `TIMESTAMP` for date-times. Primary keys are the spec's; two
//! secondary indexes serve the transactions: customers by last name (Payment
//! and Order-Status) and orders by customer (Order-Status's latest order).
//! HISTORY has no primary key, as in the spec.
//!
//! The loader writes multi-row `INSERT`s of [`ROWS_PER_STATEMENT`] rows and
//! commits every [`ROWS_PER_TXN`] rows. Date-times are `CURRENT_TIMESTAMP`.

use rust_decimal::Decimal;

use super::Scale;
use super::random::{
    CConstants, a_string, data_maybe_original, decimal, last_name, n_string, nurand, uniform, zip,
};
use crate::sqldb::{DbError, Param, SqlConn};
use crate::workload::Rng;

/// The tables, in an order that drops cleanly.
pub const TABLES: [&str; 9] = [
    "order_line",
    "new_order",
    "orders",
    "history",
    "customer",
    "district",
    "stock",
    "item",
    "warehouse",
];

/// Districts per warehouse (fixed by the spec).
pub const DISTRICTS: u64 = 10;

pub const DDL: &[&str] = &[
    "CREATE TABLE warehouse (
        w_id INT NOT NULL, w_name VARCHAR(10), w_street_1 VARCHAR(20), w_street_2 VARCHAR(20),
        w_city VARCHAR(20), w_state CHAR(2), w_zip CHAR(9), w_tax NUMERIC(4,4),
        w_ytd NUMERIC(12,2), PRIMARY KEY (w_id))",
    "CREATE TABLE district (
        d_id INT NOT NULL, d_w_id INT NOT NULL, d_name VARCHAR(10), d_street_1 VARCHAR(20),
        d_street_2 VARCHAR(20), d_city VARCHAR(20), d_state CHAR(2), d_zip CHAR(9),
        d_tax NUMERIC(4,4), d_ytd NUMERIC(12,2), d_next_o_id INT, PRIMARY KEY (d_w_id, d_id))",
    "CREATE TABLE customer (
        c_id INT NOT NULL, c_d_id INT NOT NULL, c_w_id INT NOT NULL, c_first VARCHAR(16),
        c_middle CHAR(2), c_last VARCHAR(16), c_street_1 VARCHAR(20), c_street_2 VARCHAR(20),
        c_city VARCHAR(20), c_state CHAR(2), c_zip CHAR(9), c_phone CHAR(16), c_since TIMESTAMP,
        c_credit CHAR(2), c_credit_lim NUMERIC(12,2), c_discount NUMERIC(4,4),
        c_balance NUMERIC(12,2), c_ytd_payment NUMERIC(12,2), c_payment_cnt INT,
        c_delivery_cnt INT, c_data VARCHAR(500), PRIMARY KEY (c_w_id, c_d_id, c_id))",
    "CREATE INDEX customer_last_name ON customer (c_w_id, c_d_id, c_last, c_first)",
    "CREATE TABLE history (
        h_c_id INT, h_c_d_id INT, h_c_w_id INT, h_d_id INT, h_w_id INT, h_date TIMESTAMP,
        h_amount NUMERIC(6,2), h_data VARCHAR(24))",
    "CREATE TABLE new_order (
        no_o_id INT NOT NULL, no_d_id INT NOT NULL, no_w_id INT NOT NULL,
        PRIMARY KEY (no_w_id, no_d_id, no_o_id))",
    "CREATE TABLE orders (
        o_id INT NOT NULL, o_d_id INT NOT NULL, o_w_id INT NOT NULL, o_c_id INT,
        o_entry_d TIMESTAMP, o_carrier_id INT, o_ol_cnt INT, o_all_local INT,
        PRIMARY KEY (o_w_id, o_d_id, o_id))",
    "CREATE INDEX orders_customer ON orders (o_w_id, o_d_id, o_c_id, o_id)",
    "CREATE TABLE order_line (
        ol_o_id INT NOT NULL, ol_d_id INT NOT NULL, ol_w_id INT NOT NULL, ol_number INT NOT NULL,
        ol_i_id INT, ol_supply_w_id INT, ol_delivery_d TIMESTAMP, ol_quantity INT,
        ol_amount NUMERIC(6,2), ol_dist_info CHAR(24),
        PRIMARY KEY (ol_w_id, ol_d_id, ol_o_id, ol_number))",
    "CREATE TABLE item (
        i_id INT NOT NULL, i_im_id INT, i_name VARCHAR(24), i_price NUMERIC(5,2),
        i_data VARCHAR(50), PRIMARY KEY (i_id))",
    "CREATE TABLE stock (
        s_i_id INT NOT NULL, s_w_id INT NOT NULL, s_quantity INT, s_dist_01 CHAR(24),
        s_dist_02 CHAR(24), s_dist_03 CHAR(24), s_dist_04 CHAR(24), s_dist_05 CHAR(24),
        s_dist_06 CHAR(24), s_dist_07 CHAR(24), s_dist_08 CHAR(24), s_dist_09 CHAR(24),
        s_dist_10 CHAR(24), s_ytd INT, s_order_cnt INT, s_remote_cnt INT, s_data VARCHAR(50),
        PRIMARY KEY (s_w_id, s_i_id))",
];

/// Drops any TPC-C tables (`drop_first`) and creates them.
pub fn create(conn: &mut dyn SqlConn, drop_first: bool) -> Result<(), DbError> {
    if drop_first {
        for t in TABLES {
            conn.batch(&format!("DROP TABLE IF EXISTS {t}"))?;
        }
    }
    for ddl in DDL {
        conn.batch(ddl)?;
    }
    Ok(())
}

/// Rows per multi-row INSERT of the loader.
pub const ROWS_PER_STATEMENT: usize = 50;
/// Rows per loading transaction.
pub const ROWS_PER_TXN: usize = 1_000;

/// A value of a bulk-inserted row: a parameter, or SQL text that is the same
/// for every row (`CURRENT_TIMESTAMP`, `NULL`).
#[derive(Clone, Copy, Debug)]
enum Col {
    Param,
    Sql(&'static str),
}

/// Multi-row inserts into one table, committed every [`ROWS_PER_TXN`] rows.
struct Bulk<'a> {
    conn: &'a mut dyn SqlConn,
    head: String,
    template: Vec<Col>,
    params: Vec<Param>,
    rows: usize,
    rows_in_txn: usize,
    /// The statement text for a full batch, built once.
    full: Option<String>,
}

impl<'a> Bulk<'a> {
    fn new(conn: &'a mut dyn SqlConn, table: &str, columns: &[(&str, Col)]) -> Bulk<'a> {
        let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
        Bulk {
            conn,
            head: format!("INSERT INTO {table} ({}) VALUES ", names.join(", ")),
            template: columns.iter().map(|(_, c)| *c).collect(),
            params: Vec::new(),
            rows: 0,
            rows_in_txn: 0,
            full: None,
        }
    }

    fn statement(&self, rows: usize) -> String {
        let mut sql = self.head.clone();
        let mut n = 0;
        for r in 0..rows {
            if r > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for (i, c) in self.template.iter().enumerate() {
                if i > 0 {
                    sql.push_str(", ");
                }
                match c {
                    Col::Param => {
                        n += 1;
                        sql.push_str(&format!("${n}"));
                    }
                    Col::Sql(text) => sql.push_str(text),
                }
            }
            sql.push(')');
        }
        sql
    }

    /// Adds a row: one parameter per `Col::Param` column, in order.
    fn push(&mut self, row: Vec<Param>) -> Result<(), DbError> {
        if self.rows_in_txn == 0 && self.rows == 0 {
            self.conn.begin(false)?;
        }
        self.params.extend(row);
        self.rows += 1;
        if self.rows == ROWS_PER_STATEMENT {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DbError> {
        if self.rows == 0 {
            return Ok(());
        }
        let sql = if self.rows == ROWS_PER_STATEMENT {
            if self.full.is_none() {
                self.full = Some(self.statement(ROWS_PER_STATEMENT));
            }
            self.full.clone().expect("built above")
        } else {
            self.statement(self.rows)
        };
        let n = self.conn.execute(&sql, &self.params)?;
        if n != self.rows as u64 {
            return Err(DbError::fatal(format!("inserted {n} rows of {}", self.rows)));
        }
        self.rows_in_txn += self.rows;
        self.rows = 0;
        self.params.clear();
        if self.rows_in_txn >= ROWS_PER_TXN {
            self.conn.commit()?;
            self.rows_in_txn = 0;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<(), DbError> {
        self.flush()?;
        if self.rows_in_txn > 0 {
            self.conn.commit()?;
        }
        Ok(())
    }
}

fn int(v: u64) -> Param {
    Param::Int(v as i64)
}

fn text(s: impl Into<String>) -> Param {
    Param::Text(s.into())
}

fn num(d: Decimal) -> Param {
    Param::Num(d)
}

use Col::{Param as P, Sql as S};

/// ITEM: `scale.items` rows (clause 4.3.3.1).
pub fn load_items(conn: &mut dyn SqlConn, scale: &Scale, rng: &mut Rng) -> Result<(), DbError> {
    let mut bulk = Bulk::new(
        conn,
        "item",
        &[("i_id", P), ("i_im_id", P), ("i_name", P), ("i_price", P), ("i_data", P)],
    );
    for i in 1..=scale.items {
        bulk.push(vec![
            int(i),
            int(uniform(rng, 1, 10_000)),
            text(a_string(rng, 14, 24)),
            num(decimal(rng, 100, 10_000, 2)),
            text(data_maybe_original(rng)),
        ])?;
    }
    bulk.finish()
}

/// One warehouse and everything under it: STOCK, DISTRICT, CUSTOMER,
/// HISTORY, ORDERS, ORDER_LINE and NEW_ORDER.
pub fn load_warehouse(
    conn: &mut dyn SqlConn,
    scale: &Scale,
    w: u64,
    c_load: &CConstants,
    rng: &mut Rng,
) -> Result<(), DbError> {
    let mut bulk = Bulk::new(
        conn,
        "warehouse",
        &[
            ("w_id", P),
            ("w_name", P),
            ("w_street_1", P),
            ("w_street_2", P),
            ("w_city", P),
            ("w_state", P),
            ("w_zip", P),
            ("w_tax", P),
            ("w_ytd", S("300000.00")),
        ],
    );
    bulk.push(vec![
        int(w),
        text(a_string(rng, 6, 10)),
        text(a_string(rng, 10, 20)),
        text(a_string(rng, 10, 20)),
        text(a_string(rng, 10, 20)),
        text(a_string(rng, 2, 2)),
        text(zip(rng)),
        num(decimal(rng, 0, 2000, 4)),
    ])?;
    bulk.finish()?;

    let mut stock_columns: Vec<(&str, Col)> = vec![("s_i_id", P), ("s_w_id", P), ("s_quantity", P)];
    const DIST: [&str; 10] = [
        "s_dist_01",
        "s_dist_02",
        "s_dist_03",
        "s_dist_04",
        "s_dist_05",
        "s_dist_06",
        "s_dist_07",
        "s_dist_08",
        "s_dist_09",
        "s_dist_10",
    ];
    stock_columns.extend(DIST.iter().map(|d| (*d, P)));
    stock_columns.extend([
        ("s_ytd", S("0")),
        ("s_order_cnt", S("0")),
        ("s_remote_cnt", S("0")),
        ("s_data", P),
    ]);
    let mut bulk = Bulk::new(conn, "stock", &stock_columns);
    for i in 1..=scale.items {
        let mut row = vec![int(i), int(w), int(uniform(rng, 10, 100))];
        row.extend((0..10).map(|_| text(a_string(rng, 24, 24))));
        row.push(text(data_maybe_original(rng)));
        bulk.push(row)?;
    }
    bulk.finish()?;

    let mut bulk = Bulk::new(
        conn,
        "district",
        &[
            ("d_id", P),
            ("d_w_id", P),
            ("d_name", P),
            ("d_street_1", P),
            ("d_street_2", P),
            ("d_city", P),
            ("d_state", P),
            ("d_zip", P),
            ("d_tax", P),
            ("d_ytd", S("30000.00")),
            ("d_next_o_id", P),
        ],
    );
    for d in 1..=DISTRICTS {
        bulk.push(vec![
            int(d),
            int(w),
            text(a_string(rng, 6, 10)),
            text(a_string(rng, 10, 20)),
            text(a_string(rng, 10, 20)),
            text(a_string(rng, 10, 20)),
            text(a_string(rng, 2, 2)),
            text(zip(rng)),
            num(decimal(rng, 0, 2000, 4)),
            int(scale.customers + 1),
        ])?;
    }
    bulk.finish()?;

    for d in 1..=DISTRICTS {
        load_customers(conn, scale, w, d, c_load, rng)?;
        load_orders(conn, scale, w, d, rng)?;
    }
    Ok(())
}

fn load_customers(
    conn: &mut dyn SqlConn,
    scale: &Scale,
    w: u64,
    d: u64,
    c_load: &CConstants,
    rng: &mut Rng,
) -> Result<(), DbError> {
    let mut bulk = Bulk::new(
        conn,
        "customer",
        &[
            ("c_id", P),
            ("c_d_id", P),
            ("c_w_id", P),
            ("c_first", P),
            ("c_middle", S("'OE'")),
            ("c_last", P),
            ("c_street_1", P),
            ("c_street_2", P),
            ("c_city", P),
            ("c_state", P),
            ("c_zip", P),
            ("c_phone", P),
            ("c_since", S("CURRENT_TIMESTAMP")),
            ("c_credit", P),
            ("c_credit_lim", S("50000.00")),
            ("c_discount", P),
            ("c_balance", S("-10.00")),
            ("c_ytd_payment", S("10.00")),
            ("c_payment_cnt", S("1")),
            ("c_delivery_cnt", S("0")),
            ("c_data", P),
        ],
    );
    for c in 1..=scale.customers {
        // The first 1,000 customers take the 1,000 names in turn, so every
        // name exists in every district; the rest are drawn by NURand.
        let name = if c <= 1000 { c - 1 } else { nurand(rng, 255, 0, 999, c_load.c_last) };
        let credit = if rng.below(10) == 0 { "BC" } else { "GC" };
        bulk.push(vec![
            int(c),
            int(d),
            int(w),
            text(a_string(rng, 8, 16)),
            text(last_name(name)),
            text(a_string(rng, 10, 20)),
            text(a_string(rng, 10, 20)),
            text(a_string(rng, 10, 20)),
            text(a_string(rng, 2, 2)),
            text(zip(rng)),
            text(n_string(rng, 16, 16)),
            text(credit),
            num(decimal(rng, 0, 5000, 4)),
            text(a_string(rng, 300, 500)),
        ])?;
    }
    bulk.finish()?;

    let mut bulk = Bulk::new(
        conn,
        "history",
        &[
            ("h_c_id", P),
            ("h_c_d_id", P),
            ("h_c_w_id", P),
            ("h_d_id", P),
            ("h_w_id", P),
            ("h_date", S("CURRENT_TIMESTAMP")),
            ("h_amount", S("10.00")),
            ("h_data", P),
        ],
    );
    for c in 1..=scale.customers {
        bulk.push(vec![int(c), int(d), int(w), int(d), int(w), text(a_string(rng, 12, 24))])?;
    }
    bulk.finish()
}

fn load_orders(
    conn: &mut dyn SqlConn,
    scale: &Scale,
    w: u64,
    d: u64,
    rng: &mut Rng,
) -> Result<(), DbError> {
    // O_C_ID is a random permutation of the customers.
    let mut customers: Vec<u64> = (1..=scale.customers).collect();
    rng.shuffle(&mut customers);
    let first_new = scale.first_new_order();
    let line_counts: Vec<u64> = (0..scale.customers).map(|_| uniform(rng, 5, 15)).collect();

    let mut bulk = Bulk::new(
        conn,
        "orders",
        &[
            ("o_id", P),
            ("o_d_id", P),
            ("o_w_id", P),
            ("o_c_id", P),
            ("o_entry_d", S("CURRENT_TIMESTAMP")),
            ("o_carrier_id", P),
            ("o_ol_cnt", P),
            ("o_all_local", S("1")),
        ],
    );
    for o in 1..=scale.customers {
        let carrier = if o < first_new { int(uniform(rng, 1, 10)) } else { Param::Null };
        bulk.push(vec![
            int(o),
            int(d),
            int(w),
            int(customers[o as usize - 1]),
            carrier,
            int(line_counts[o as usize - 1]),
        ])?;
    }
    bulk.finish()?;

    // Delivered orders' lines have a delivery date and no amount; the
    // undelivered ones the reverse.
    for delivered in [true, false] {
        let (delivery, orders) = if delivered {
            (S("CURRENT_TIMESTAMP"), 1..first_new)
        } else {
            (S("NULL"), first_new..scale.customers + 1)
        };
        let mut bulk = Bulk::new(
            conn,
            "order_line",
            &[
                ("ol_o_id", P),
                ("ol_d_id", P),
                ("ol_w_id", P),
                ("ol_number", P),
                ("ol_i_id", P),
                ("ol_supply_w_id", P),
                ("ol_delivery_d", delivery),
                ("ol_quantity", S("5")),
                ("ol_amount", P),
                ("ol_dist_info", P),
            ],
        );
        for o in orders {
            for n in 1..=line_counts[o as usize - 1] {
                let amount = if delivered { Decimal::ZERO } else { decimal(rng, 1, 999_999, 2) };
                bulk.push(vec![
                    int(o),
                    int(d),
                    int(w),
                    int(n),
                    int(uniform(rng, 1, scale.items)),
                    int(w),
                    num(amount),
                    text(a_string(rng, 24, 24)),
                ])?;
            }
        }
        bulk.finish()?;
    }

    let mut bulk = Bulk::new(conn, "new_order", &[("no_o_id", P), ("no_d_id", P), ("no_w_id", P)]);
    for o in first_new..=scale.customers {
        bulk.push(vec![int(o), int(d), int(w)])?;
    }
    bulk.finish()
}
