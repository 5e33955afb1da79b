//! The five TPC-C transactions (clauses 2.4 to 2.8): their inputs, drawn
//! before the first attempt so that a retry repeats the same business
//! transaction, and their profiles as SQL.
//!
//! Every transaction runs in one database transaction (snapshot isolation
//! on Strata, REPEATABLE READ on PostgreSQL, `BEGIN IMMEDIATE` for SQLite's
//! writers). Delivery handles all ten districts in one transaction, run
//! in-line rather than queued (clause 2.7.2 allows deferred execution; this
//! driver does not defer).
//!
//! Every target runs the same SQL text. Two statements lean on the planner
//! to stay cheap: Delivery's `ORDER BY no_o_id LIMIT 1` needs the sort over
//! the primary key elided (the scan stops at the first row), and
//! Stock-Level's join of ORDER_LINE with STOCK needs an index nested-loop
//! join (one stock lookup per order line, not a scan of the warehouse's
//! stock).

use rust_decimal::Decimal;

use super::Scale;
use super::random::{CConstants, decimal, last_name, nurand, uniform};
use super::schema::DISTRICTS;
use crate::sqldb::{Datum, DbError, Param, ResultRows, SqlConn};
use crate::workload::Rng;

/// The transaction types, in the order of their mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TxnType {
    NewOrder,
    Payment,
    OrderStatus,
    Delivery,
    StockLevel,
}

impl TxnType {
    pub const ALL: [TxnType; 5] = [
        TxnType::NewOrder,
        TxnType::Payment,
        TxnType::OrderStatus,
        TxnType::Delivery,
        TxnType::StockLevel,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TxnType::NewOrder => "new_order",
            TxnType::Payment => "payment",
            TxnType::OrderStatus => "order_status",
            TxnType::Delivery => "delivery",
            TxnType::StockLevel => "stock_level",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// The standard mix in percent: 45, 43, 4, 4, 4.
    pub fn weight(self) -> u64 {
        match self {
            TxnType::NewOrder => 45,
            TxnType::Payment => 43,
            TxnType::OrderStatus | TxnType::Delivery | TxnType::StockLevel => 4,
        }
    }

    /// Draws a type by the standard mix.
    pub fn choose(rng: &mut Rng) -> TxnType {
        let mut x = rng.below(100);
        for t in TxnType::ALL {
            if x < t.weight() {
                return t;
            }
            x -= t.weight();
        }
        unreachable!("the weights sum to 100")
    }

    /// Keying time and mean think time in seconds (clause 5.2.5.7).
    pub fn keying_and_think_secs(self) -> (f64, f64) {
        match self {
            TxnType::NewOrder => (18.0, 12.0),
            TxnType::Payment => (3.0, 12.0),
            TxnType::OrderStatus => (2.0, 10.0),
            TxnType::Delivery => (2.0, 5.0),
            TxnType::StockLevel => (2.0, 5.0),
        }
    }
}

/// How a transaction ended (a retryable failure is an error instead).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Committed,
    /// The 1% of New-Orders with an unused item, rolled back by design.
    RolledBack,
}

/// One customer: by id, or by last name (the middle one of those sorted by
/// first name, clause 2.5.2.2).
#[derive(Clone, Debug)]
pub enum CustomerKey {
    Id(u64),
    LastName(String),
}

#[derive(Clone, Debug)]
pub struct OrderLineInput {
    pub item: u64,
    pub supply_w: u64,
    pub quantity: u64,
}

#[derive(Clone, Debug)]
pub struct NewOrderInput {
    pub d_id: u64,
    pub c_id: u64,
    pub lines: Vec<OrderLineInput>,
}

#[derive(Clone, Debug)]
pub struct PaymentInput {
    pub d_id: u64,
    pub c_w_id: u64,
    pub c_d_id: u64,
    pub customer: CustomerKey,
    pub amount: Decimal,
}

#[derive(Clone, Debug)]
pub struct OrderStatusInput {
    pub d_id: u64,
    pub customer: CustomerKey,
}

/// The inputs of one transaction.
#[derive(Clone, Debug)]
pub enum Input {
    NewOrder(NewOrderInput),
    Payment(PaymentInput),
    OrderStatus(OrderStatusInput),
    Delivery { carrier: u64 },
    StockLevel { threshold: u64 },
}

/// A terminal's fixed identity and its random source for inputs.
#[derive(Debug)]
pub struct Terminal {
    pub w_id: u64,
    /// The district of its Stock-Level transactions (clause 2.8.1.2).
    pub d_id: u64,
    pub scale: Scale,
    pub c: CConstants,
    pub rng: Rng,
}

impl Terminal {
    fn customer_id(&mut self) -> u64 {
        nurand(&mut self.rng, 1023, 1, self.scale.customers, self.c.c_id)
    }

    /// 60% by last name, 40% by id (clauses 2.5.1.2 and 2.6.1.2).
    fn customer_key(&mut self) -> CustomerKey {
        if uniform(&mut self.rng, 1, 100) <= 60 {
            let max = self.scale.last_names() - 1;
            CustomerKey::LastName(last_name(nurand(&mut self.rng, 255, 0, max, self.c.c_last)))
        } else {
            CustomerKey::Id(self.customer_id())
        }
    }

    /// A warehouse other than the terminal's own (there must be two).
    fn other_warehouse(&mut self) -> u64 {
        let w = uniform(&mut self.rng, 1, self.scale.warehouses - 1);
        if w >= self.w_id { w + 1 } else { w }
    }

    /// Draws the inputs of a transaction of type `t`.
    pub fn input(&mut self, t: TxnType) -> Input {
        let rng = &mut self.rng;
        match t {
            TxnType::NewOrder => {
                let d_id = uniform(rng, 1, DISTRICTS);
                let c_id = self.customer_id();
                let count = uniform(&mut self.rng, 5, 15);
                let rollback = uniform(&mut self.rng, 1, 100) == 1;
                let lines = (0..count)
                    .map(|i| {
                        let item = if rollback && i == count - 1 {
                            self.scale.items + 1 // unused: the order rolls back
                        } else {
                            nurand(&mut self.rng, 8191, 1, self.scale.items, self.c.ol_i_id)
                        };
                        let remote =
                            self.scale.warehouses > 1 && uniform(&mut self.rng, 1, 100) == 1;
                        let supply_w = if remote { self.other_warehouse() } else { self.w_id };
                        OrderLineInput { item, supply_w, quantity: uniform(&mut self.rng, 1, 10) }
                    })
                    .collect();
                Input::NewOrder(NewOrderInput { d_id, c_id, lines })
            }
            TxnType::Payment => {
                let d_id = uniform(rng, 1, DISTRICTS);
                let home = self.scale.warehouses == 1 || uniform(&mut self.rng, 1, 100) <= 85;
                let (c_w_id, c_d_id) = if home {
                    (self.w_id, d_id)
                } else {
                    (self.other_warehouse(), uniform(&mut self.rng, 1, DISTRICTS))
                };
                let customer = self.customer_key();
                let amount = decimal(&mut self.rng, 100, 500_000, 2);
                Input::Payment(PaymentInput { d_id, c_w_id, c_d_id, customer, amount })
            }
            TxnType::OrderStatus => {
                let d_id = uniform(rng, 1, DISTRICTS);
                Input::OrderStatus(OrderStatusInput { d_id, customer: self.customer_key() })
            }
            TxnType::Delivery => Input::Delivery { carrier: uniform(rng, 1, 10) },
            TxnType::StockLevel => Input::StockLevel { threshold: uniform(rng, 10, 20) },
        }
    }
}

fn int(v: u64) -> Param {
    Param::Int(v as i64)
}

/// The single row a query must return.
fn one(rows: ResultRows, what: &str) -> Result<Vec<Datum>, DbError> {
    let n = rows.len();
    let mut rows = rows.into_iter();
    match (rows.next(), n) {
        (Some(row), 1) => Ok(row),
        _ => Err(DbError::fatal(format!("{what}: expected one row, got {n}"))),
    }
}

/// Runs `input` on `conn` as one transaction: the caller retries retryable
/// errors. On any error the transaction is rolled back.
pub fn execute(
    conn: &mut dyn SqlConn,
    terminal: &Terminal,
    input: &Input,
) -> Result<Outcome, DbError> {
    let read_only = matches!(input, Input::OrderStatus(_) | Input::StockLevel { .. });
    conn.begin(read_only)?;
    let w = terminal.w_id;
    let result = match input {
        Input::NewOrder(i) => new_order(conn, w, i),
        Input::Payment(i) => payment(conn, w, i),
        Input::OrderStatus(i) => order_status(conn, w, i),
        Input::Delivery { carrier } => delivery(conn, w, *carrier),
        Input::StockLevel { threshold } => stock_level(conn, w, terminal.d_id, *threshold),
    };
    match result {
        Ok(Outcome::Committed) => match conn.commit() {
            Ok(()) => Ok(Outcome::Committed),
            Err(e) => {
                let _ = conn.rollback();
                Err(e)
            }
        },
        Ok(Outcome::RolledBack) => conn.rollback().map(|()| Outcome::RolledBack),
        Err(e) => {
            // The first error is the one to report; the transaction may
            // already be over on the server.
            let _ = conn.rollback();
            Err(e)
        }
    }
}

const STOCK_BY_DISTRICT: [&str; 10] = [
    "SELECT s_quantity, s_data, s_dist_01 FROM stock WHERE s_w_id = $1 AND s_i_id = $2",
    "SELECT s_quantity, s_data, s_dist_02 FROM stock WHERE s_w_id = $1 AND s_i_id = $2",
    "SELECT s_quantity, s_data, s_dist_03 FROM stock WHERE s_w_id = $1 AND s_i_id = $2",
    "SELECT s_quantity, s_data, s_dist_04 FROM stock WHERE s_w_id = $1 AND s_i_id = $2",
    "SELECT s_quantity, s_data, s_dist_05 FROM stock WHERE s_w_id = $1 AND s_i_id = $2",
    "SELECT s_quantity, s_data, s_dist_06 FROM stock WHERE s_w_id = $1 AND s_i_id = $2",
    "SELECT s_quantity, s_data, s_dist_07 FROM stock WHERE s_w_id = $1 AND s_i_id = $2",
    "SELECT s_quantity, s_data, s_dist_08 FROM stock WHERE s_w_id = $1 AND s_i_id = $2",
    "SELECT s_quantity, s_data, s_dist_09 FROM stock WHERE s_w_id = $1 AND s_i_id = $2",
    "SELECT s_quantity, s_data, s_dist_10 FROM stock WHERE s_w_id = $1 AND s_i_id = $2",
];

/// New-Order (clause 2.4.2).
fn new_order(conn: &mut dyn SqlConn, w: u64, i: &NewOrderInput) -> Result<Outcome, DbError> {
    let (d, c) = (int(i.d_id), int(i.c_id));
    let rows = conn.query("SELECT w_tax FROM warehouse WHERE w_id = $1", &[int(w)])?;
    let w_tax = one(rows, "warehouse")?[0].as_decimal()?;
    let rows = conn.query(
        "SELECT d_tax, d_next_o_id FROM district WHERE d_w_id = $1 AND d_id = $2",
        &[int(w), d.clone()],
    )?;
    let row = one(rows, "district")?;
    let (d_tax, o_id) = (row[0].as_decimal()?, row[1].as_i64()?);
    conn.execute(
        "UPDATE district SET d_next_o_id = $3 WHERE d_w_id = $1 AND d_id = $2",
        &[int(w), d.clone(), Param::Int(o_id + 1)],
    )?;
    let rows = conn.query(
        "SELECT c_discount, c_last, c_credit FROM customer \
         WHERE c_w_id = $1 AND c_d_id = $2 AND c_id = $3",
        &[int(w), d.clone(), c.clone()],
    )?;
    let c_discount = one(rows, "customer")?[0].as_decimal()?;
    let all_local = i.lines.iter().all(|l| l.supply_w == w);
    conn.execute(
        "INSERT INTO orders (o_id, o_d_id, o_w_id, o_c_id, o_entry_d, o_carrier_id, o_ol_cnt, \
         o_all_local) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP, NULL, $5, $6)",
        &[
            Param::Int(o_id),
            d.clone(),
            int(w),
            c,
            int(i.lines.len() as u64),
            int(u64::from(all_local)),
        ],
    )?;
    conn.execute(
        "INSERT INTO new_order (no_o_id, no_d_id, no_w_id) VALUES ($1, $2, $3)",
        &[Param::Int(o_id), d.clone(), int(w)],
    )?;
    let mut total = Decimal::ZERO;
    for (n, line) in i.lines.iter().enumerate() {
        let rows = conn
            .query("SELECT i_price, i_name, i_data FROM item WHERE i_id = $1", &[int(line.item)])?;
        let Some(item) = rows.into_iter().next() else {
            // "Item number is not valid": the designed 1% rollback.
            return Ok(Outcome::RolledBack);
        };
        let price = item[0].as_decimal()?;
        let rows = conn
            .query(STOCK_BY_DISTRICT[i.d_id as usize - 1], &[int(line.supply_w), int(line.item)])?;
        let stock = one(rows, "stock")?;
        let s_quantity = stock[0].as_i64()?;
        let q = line.quantity as i64;
        let new_quantity = if s_quantity >= q + 10 { s_quantity - q } else { s_quantity - q + 91 };
        let remote = i64::from(line.supply_w != w);
        conn.execute(
            "UPDATE stock SET s_quantity = $3, s_ytd = s_ytd + $4, s_order_cnt = s_order_cnt + 1, \
             s_remote_cnt = s_remote_cnt + $5 WHERE s_w_id = $1 AND s_i_id = $2",
            &[
                int(line.supply_w),
                int(line.item),
                Param::Int(new_quantity),
                Param::Int(q),
                Param::Int(remote),
            ],
        )?;
        let amount = Decimal::from(q) * price;
        total += amount;
        let dist_info = stock[2].as_str()?.to_string();
        conn.execute(
            "INSERT INTO order_line (ol_o_id, ol_d_id, ol_w_id, ol_number, ol_i_id, \
             ol_supply_w_id, ol_delivery_d, ol_quantity, ol_amount, ol_dist_info) \
             VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $8, $9)",
            &[
                Param::Int(o_id),
                d.clone(),
                int(w),
                int(n as u64 + 1),
                int(line.item),
                int(line.supply_w),
                Param::Int(q),
                Param::Num(amount),
                Param::Text(dist_info),
            ],
        )?;
    }
    // The terminal would display this total (clause 2.4.3.3).
    let _total = total * (Decimal::ONE - c_discount) * (Decimal::ONE + w_tax + d_tax);
    Ok(Outcome::Committed)
}

/// The customer's id, looked up by name if need be.
fn find_customer(
    conn: &mut dyn SqlConn,
    w: u64,
    d: u64,
    key: &CustomerKey,
) -> Result<u64, DbError> {
    match key {
        CustomerKey::Id(id) => Ok(*id),
        CustomerKey::LastName(name) => {
            let rows = conn.query(
                "SELECT c_id FROM customer WHERE c_w_id = $1 AND c_d_id = $2 AND c_last = $3 \
                 ORDER BY c_first",
                &[int(w), int(d), Param::Text(name.clone())],
            )?;
            if rows.is_empty() {
                return Err(DbError::fatal(format!("no customer named {name} in {w}/{d}")));
            }
            // Position ceil(n / 2), counting from 1.
            rows[(rows.len() - 1) / 2][0].as_i64().map(|id| id as u64)
        }
    }
}

/// Payment (clause 2.5.2).
fn payment(conn: &mut dyn SqlConn, w: u64, i: &PaymentInput) -> Result<Outcome, DbError> {
    let amount = Param::Num(i.amount);
    conn.execute(
        "UPDATE warehouse SET w_ytd = w_ytd + $2 WHERE w_id = $1",
        &[int(w), amount.clone()],
    )?;
    let rows = conn.query(
        "SELECT w_name, w_street_1, w_street_2, w_city, w_state, w_zip FROM warehouse \
         WHERE w_id = $1",
        &[int(w)],
    )?;
    let w_name = one(rows, "warehouse")?[0].as_str()?.to_string();
    conn.execute(
        "UPDATE district SET d_ytd = d_ytd + $3 WHERE d_w_id = $1 AND d_id = $2",
        &[int(w), int(i.d_id), amount.clone()],
    )?;
    let rows = conn.query(
        "SELECT d_name, d_street_1, d_street_2, d_city, d_state, d_zip FROM district \
         WHERE d_w_id = $1 AND d_id = $2",
        &[int(w), int(i.d_id)],
    )?;
    let d_name = one(rows, "district")?[0].as_str()?.to_string();
    let c_id = find_customer(conn, i.c_w_id, i.c_d_id, &i.customer)?;
    let key = [int(i.c_w_id), int(i.c_d_id), int(c_id)];
    let rows = conn.query(
        "SELECT c_first, c_middle, c_last, c_street_1, c_street_2, c_city, c_state, c_zip, \
         c_phone, c_since, c_credit, c_credit_lim, c_discount, c_balance FROM customer \
         WHERE c_w_id = $1 AND c_d_id = $2 AND c_id = $3",
        &key,
    )?;
    let credit = one(rows, "customer")?[10].as_str()?.trim().to_string();
    if credit == "BC" {
        let rows = conn.query(
            "SELECT c_data FROM customer WHERE c_w_id = $1 AND c_d_id = $2 AND c_id = $3",
            &key,
        )?;
        let old = one(rows, "customer data")?[0].as_str()?.to_string();
        let mut data =
            format!("{c_id} {} {} {} {w} {:.2} {old}", i.c_d_id, i.c_w_id, i.d_id, i.amount);
        truncate_chars(&mut data, 500);
        conn.execute(
            "UPDATE customer SET c_balance = c_balance - $4, c_ytd_payment = c_ytd_payment + $4, \
             c_payment_cnt = c_payment_cnt + 1, c_data = $5 \
             WHERE c_w_id = $1 AND c_d_id = $2 AND c_id = $3",
            &[key[0].clone(), key[1].clone(), key[2].clone(), amount.clone(), Param::Text(data)],
        )?;
    } else {
        conn.execute(
            "UPDATE customer SET c_balance = c_balance - $4, c_ytd_payment = c_ytd_payment + $4, \
             c_payment_cnt = c_payment_cnt + 1 WHERE c_w_id = $1 AND c_d_id = $2 AND c_id = $3",
            &[key[0].clone(), key[1].clone(), key[2].clone(), amount.clone()],
        )?;
    }
    let mut h_data = format!("{w_name}    {d_name}");
    truncate_chars(&mut h_data, 24);
    conn.execute(
        "INSERT INTO history (h_c_id, h_c_d_id, h_c_w_id, h_d_id, h_w_id, h_date, h_amount, \
         h_data) VALUES ($1, $2, $3, $4, $5, CURRENT_TIMESTAMP, $6, $7)",
        &[
            int(c_id),
            int(i.c_d_id),
            int(i.c_w_id),
            int(i.d_id),
            int(w),
            amount,
            Param::Text(h_data),
        ],
    )?;
    Ok(Outcome::Committed)
}

fn truncate_chars(s: &mut String, max: usize) {
    if let Some((at, _)) = s.char_indices().nth(max) {
        s.truncate(at);
    }
}

/// Order-Status (clause 2.6.2).
fn order_status(conn: &mut dyn SqlConn, w: u64, i: &OrderStatusInput) -> Result<Outcome, DbError> {
    let c_id = find_customer(conn, w, i.d_id, &i.customer)?;
    let rows = conn.query(
        "SELECT c_balance, c_first, c_middle, c_last FROM customer \
         WHERE c_w_id = $1 AND c_d_id = $2 AND c_id = $3",
        &[int(w), int(i.d_id), int(c_id)],
    )?;
    one(rows, "customer")?;
    let rows = conn.query(
        "SELECT o_id, o_entry_d, o_carrier_id FROM orders \
         WHERE o_w_id = $1 AND o_d_id = $2 AND o_c_id = $3 ORDER BY o_id DESC LIMIT 1",
        &[int(w), int(i.d_id), int(c_id)],
    )?;
    let o_id = one(rows, "customer's last order")?[0].as_i64()?;
    let lines = conn.query(
        "SELECT ol_i_id, ol_supply_w_id, ol_quantity, ol_amount, ol_delivery_d FROM order_line \
         WHERE ol_w_id = $1 AND ol_d_id = $2 AND ol_o_id = $3",
        &[int(w), int(i.d_id), Param::Int(o_id)],
    )?;
    if lines.is_empty() {
        return Err(DbError::fatal(format!("order {w}/{}/{o_id} has no lines", i.d_id)));
    }
    Ok(Outcome::Committed)
}

/// Delivery (clause 2.7.4): the oldest undelivered order of each district.
fn delivery(conn: &mut dyn SqlConn, w: u64, carrier: u64) -> Result<Outcome, DbError> {
    let oldest = "SELECT no_o_id FROM new_order WHERE no_w_id = $1 AND no_d_id = $2 \
                  ORDER BY no_o_id LIMIT 1";
    for d in 1..=DISTRICTS {
        let rows = conn.query(oldest, &[int(w), int(d)])?;
        let Some(row) = rows.into_iter().next() else {
            continue; // no undelivered order in this district: skipped (clause 2.7.4.2)
        };
        let o_id = Param::Int(row[0].as_i64()?);
        let key = [int(w), int(d), o_id];
        let deleted = conn.execute(
            "DELETE FROM new_order WHERE no_w_id = $1 AND no_d_id = $2 AND no_o_id = $3",
            &key,
        )?;
        if deleted != 1 {
            return Err(DbError::fatal(format!("deleted {deleted} new orders, not 1")));
        }
        let rows = conn.query(
            "SELECT o_c_id FROM orders WHERE o_w_id = $1 AND o_d_id = $2 AND o_id = $3",
            &key,
        )?;
        let c_id = one(rows, "delivered order")?[0].as_i64()?;
        conn.execute(
            "UPDATE orders SET o_carrier_id = $4 WHERE o_w_id = $1 AND o_d_id = $2 AND o_id = $3",
            &[key[0].clone(), key[1].clone(), key[2].clone(), int(carrier)],
        )?;
        conn.execute(
            "UPDATE order_line SET ol_delivery_d = CURRENT_TIMESTAMP \
             WHERE ol_w_id = $1 AND ol_d_id = $2 AND ol_o_id = $3",
            &key,
        )?;
        let rows = conn.query(
            "SELECT SUM(ol_amount) FROM order_line \
             WHERE ol_w_id = $1 AND ol_d_id = $2 AND ol_o_id = $3",
            &key,
        )?;
        let total = one(rows, "order total")?[0].as_decimal()?;
        conn.execute(
            "UPDATE customer SET c_balance = c_balance + $4, c_delivery_cnt = c_delivery_cnt + 1 \
             WHERE c_w_id = $1 AND c_d_id = $2 AND c_id = $3",
            &[int(w), int(d), Param::Int(c_id), Param::Num(total.round_dp(2))],
        )?;
    }
    Ok(Outcome::Committed)
}

/// Stock-Level (clause 2.8.2): distinct items of the district's last 20
/// orders whose stock is below the threshold.
fn stock_level(conn: &mut dyn SqlConn, w: u64, d: u64, threshold: u64) -> Result<Outcome, DbError> {
    let rows = conn.query(
        "SELECT d_next_o_id FROM district WHERE d_w_id = $1 AND d_id = $2",
        &[int(w), int(d)],
    )?;
    let next = one(rows, "district")?[0].as_i64()?;
    let rows = conn.query(
        "SELECT COUNT(DISTINCT s_i_id) FROM order_line, stock \
         WHERE ol_w_id = $1 AND ol_d_id = $2 AND ol_o_id < $3 AND ol_o_id >= $4 \
         AND s_w_id = $1 AND s_i_id = ol_i_id AND s_quantity < $5",
        &[int(w), int(d), Param::Int(next), Param::Int(next - 20), int(threshold)],
    )?;
    let _low_stock = one(rows, "stock count")?[0].as_i64()?;
    Ok(Outcome::Committed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_has_the_standard_proportions() {
        let mut rng = Rng::new(4);
        let mut counts = [0u32; 5];
        for _ in 0..100_000 {
            counts[TxnType::choose(&mut rng).index()] += 1;
        }
        for t in TxnType::ALL {
            let share = counts[t.index()] as f64 / 1_000.0;
            assert!((share - t.weight() as f64).abs() < 0.6, "{}: {share}%", t.name());
        }
    }

    fn terminal(warehouses: u64) -> Terminal {
        let scale = Scale { warehouses, items: 100_000, customers: 3_000 };
        let mut rng = Rng::new(8);
        let c = CConstants::for_load(&mut rng);
        Terminal { w_id: 1, d_id: 1, scale, c, rng }
    }

    #[test]
    fn new_orders_roll_back_one_percent_and_go_remote_one_percent_of_lines() {
        let mut t = terminal(4);
        let (mut orders, mut rolled_back, mut lines, mut remote) = (0, 0, 0, 0);
        for _ in 0..20_000 {
            let Input::NewOrder(o) = t.input(TxnType::NewOrder) else { unreachable!() };
            orders += 1;
            assert!((5..=15).contains(&o.lines.len()));
            rolled_back += usize::from(o.lines.last().unwrap().item == 100_001);
            assert!(o.lines[..o.lines.len() - 1].iter().all(|l| l.item <= 100_000));
            lines += o.lines.len();
            remote += o.lines.iter().filter(|l| l.supply_w != 1).count();
            assert!(o.lines.iter().all(|l| (1..=4).contains(&l.supply_w)));
        }
        let rb = rolled_back as f64 / orders as f64;
        assert!((0.007..0.013).contains(&rb), "rollbacks {rb}");
        let r = remote as f64 / lines as f64;
        assert!((0.007..0.013).contains(&r), "remote lines {r}");
    }

    #[test]
    fn payments_are_15_percent_remote_and_60_percent_by_name() {
        let mut t = terminal(3);
        let (mut remote, mut by_name) = (0, 0);
        for _ in 0..20_000 {
            let Input::Payment(p) = t.input(TxnType::Payment) else { unreachable!() };
            remote += usize::from(p.c_w_id != 1);
            by_name += usize::from(matches!(p.customer, CustomerKey::LastName(_)));
            assert!(p.amount >= Decimal::ONE && p.amount <= Decimal::from(5000));
        }
        assert!((2_700..3_300).contains(&remote), "remote {remote}");
        assert!((11_600..12_400).contains(&by_name), "by name {by_name}");
        let mut single = terminal(1);
        for _ in 0..1_000 {
            let Input::Payment(p) = single.input(TxnType::Payment) else { unreachable!() };
            assert_eq!(p.c_w_id, 1, "one warehouse: every payment is local");
        }
    }
}
