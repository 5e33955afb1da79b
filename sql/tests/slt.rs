//! Runs every sqllogictest file under `tests/slt/` against a fresh database.
//!
//! Results are formatted as PostgreSQL's text output; NULL prints as `NULL`
//! and the empty string as `(empty)`. Error messages end with
//! `(SQLSTATE xxxxx)`, so `statement error 23505` checks the code.

use sqllogictest::{DBOutput, DefaultColumnType};
use strata_sql::{DataType, Database, Session, SqlError, Value};

struct Slt {
    session: Session,
    _db: Database,
}

impl sqllogictest::DB for Slt {
    type Error = SqlError;
    type ColumnType = DefaultColumnType;

    fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SqlError> {
        let last = self.session.execute(sql, &[])?.pop().unwrap_or_default();
        if last.columns.is_empty() {
            return Ok(DBOutput::StatementComplete(last.count));
        }
        let types = last
            .columns
            .iter()
            .map(|c| match c.ty {
                DataType::Int2 | DataType::Int4 | DataType::Int8 => DefaultColumnType::Integer,
                DataType::Float4 | DataType::Float8 | DataType::Numeric { .. } => {
                    DefaultColumnType::FloatingPoint
                }
                _ => DefaultColumnType::Text,
            })
            .collect();
        let rows = last
            .rows
            .iter()
            .map(|r| {
                r.iter()
                    .zip(&last.columns)
                    .map(|(v, c)| match v {
                        Value::Null => "NULL".to_string(),
                        Value::Text(s) if s.is_empty() => "(empty)".to_string(),
                        v => v.to_pg_text_typed(&c.ty),
                    })
                    .collect()
            })
            .collect();
        Ok(DBOutput::Rows { types, rows })
    }
}

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/slt exists")
        .map(|e| e.expect("readable").path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .filter(|p| filter.as_ref().is_none_or(|f| p.to_string_lossy().contains(f.as_str())))
        .collect();
    files.sort();
    let (mut passed, mut failed) = (0, 0);
    for file in &files {
        let mut runner = sqllogictest::Runner::new(|| async {
            let db = Database::open_temporary()?;
            Ok(Slt { session: db.session(), _db: db })
        });
        match runner.run_file(file) {
            Ok(()) => {
                passed += 1;
                println!("ok      {}", file.file_name().unwrap().to_string_lossy());
            }
            Err(e) => {
                failed += 1;
                println!(
                    "FAILED  {}\n{}",
                    file.file_name().unwrap().to_string_lossy(),
                    e.display(true)
                );
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 || files.is_empty() {
        std::process::exit(1);
    }
}
