//! Strata as an embedded database: open a directory, create a table, insert
//! with parameters, move money in a transaction, read typed columns, and
//! handle errors by their SQLSTATE.
//!
//! Run with `cargo run -p strata-sql --example embedded`.

use rust_decimal::Decimal;
use strata_sql::{Database, SqlError, Value, sqlstate};

/// Moves `amount` between two accounts in one transaction. A serialization
/// failure (SQLSTATE 40001) makes `Database::transaction` run the closure
/// again; any other error rolls the transaction back and is returned.
fn transfer(db: &Database, from: i64, to: i64, amount: &str) -> Result<(), SqlError> {
    let amount = Value::Numeric(amount.parse().expect("a decimal amount"));
    db.transaction(|s| {
        let debit = "UPDATE accounts SET balance = balance - $2 WHERE id = $1";
        let credit = "UPDATE accounts SET balance = balance + $2 WHERE id = $1";
        s.execute(debit, &[Value::Int(from), amount.clone()])?;
        s.execute(credit, &[Value::Int(to), amount.clone()])?;
        Ok(())
    })
}

fn print_accounts(db: &Database) -> Result<(), SqlError> {
    let rows = db.query("SELECT id, owner, balance FROM accounts ORDER BY id", &[])?;
    for row in 0..rows.len() {
        let id: i64 = rows.get(row, "id")?;
        let owner: String = rows.get(row, "owner")?;
        let balance: Decimal = rows.get(row, "balance")?;
        println!("  {id}  {owner:<6} {balance:>8}");
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    println!("database in {}", dir.path().display());
    let db = Database::open(dir.path())?;

    db.execute(
        "CREATE TABLE accounts (
            id INT PRIMARY KEY,
            owner TEXT NOT NULL,
            balance NUMERIC(12,2) NOT NULL CHECK (balance >= 0)
        )",
        &[],
    )?;
    for (id, owner, balance) in [(1, "ann", "100.00"), (2, "bob", "50.00"), (3, "cid", "0.00")] {
        let params = [Value::Int(id), Value::Text(owner.into()), Value::Numeric(balance.parse()?)];
        db.execute("INSERT INTO accounts VALUES ($1, $2, $3)", &params)?;
    }
    println!("opened with:");
    print_accounts(&db)?;

    transfer(&db, 1, 2, "30.25")?;
    println!("after ann pays bob 30.25:");
    print_accounts(&db)?;

    // Errors carry PostgreSQL's SQLSTATE, to branch on.
    match transfer(&db, 3, 1, "10.00") {
        Err(e) if e.code == sqlstate::CHECK_VIOLATION => {
            println!("cid cannot pay 10.00: SQLSTATE {} ({})", e.code, e.message);
        }
        other => panic!("expected a check violation, got {other:?}"),
    }
    let duplicate = [Value::Int(1), Value::Text("eve".into()), Value::Numeric(Decimal::ZERO)];
    match db.execute("INSERT INTO accounts VALUES ($1, $2, $3)", &duplicate) {
        Err(e) if e.code == sqlstate::UNIQUE_VIOLATION => {
            println!("a second account 1: SQLSTATE {} ({})", e.code, e.message);
        }
        other => panic!("expected a unique violation, got {other:?}"),
    }
    match db.query("SELECT balance FROM acounts", &[]) {
        Err(e) => {
            println!("a typo: SQLSTATE {} ({}); retryable: {}", e.code, e.message, e.is_retryable())
        }
        Ok(_) => panic!("the table is misspelt"),
    }

    // A session is a connection: it keeps settings and an open transaction.
    let mut session = db.session();
    session.execute("BEGIN", &[])?;
    session.execute(
        "UPDATE accounts SET balance = 0 WHERE owner = $1",
        &[Value::Text("bob".into())],
    )?;
    session.execute("ROLLBACK", &[])?;

    // Committed data survives closing and reopening the directory. Sessions
    // share the store: it closes when the last of them and the `Database` go.
    drop(session);
    drop(db);
    let db = Database::open(dir.path())?;
    let total = db.query("SELECT sum(balance) AS total, count(*) AS n FROM accounts", &[])?;
    let (sum, n): (Decimal, i64) = (total.get(0, "total")?, total.get(0, "n")?);
    println!("reopened: {n} accounts holding {sum} in total");
    assert_eq!(sum, "150.00".parse::<Decimal>()?);
    Ok(())
}
