//! `strata sql`: a psql-like shell on an embedded database.
//!
//! Statements end with `;` (outside quotes and comments) and may span lines.
//! Backslash commands: `\q`, `\?`, `\dt`, `\d [TABLE]`, `\di`, `\x`,
//! `\timing`, `\i FILE`, `\conninfo`. The prompt shows the transaction state
//! as psql does: `strata=>` idle, `strata*>` in a transaction, `strata!>` in a
//! failed one. In scripts (`-f`, standard input) the first error stops the run
//! with exit status 3, and a failing `-c` exits with 1, as psql does with
//! `ON_ERROR_STOP=1`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use strata_sql::catalog::{self, Table};
use strata_sql::{
    DataType, Database, OutputColumn, Session, SqlError, StatementResult, TxnStatus, Value,
};

use crate::format::{self, Format, Style};

/// Command-line options of `strata sql`.
#[derive(Debug)]
pub struct Options {
    pub data: PathBuf,
    pub commands: Vec<String>,
    pub file: Option<PathBuf>,
    pub format: Format,
}

/// Whether `buf` holds at least one complete statement: a `;` outside
/// quotes, identifiers, dollar quotes and comments, with only blanks and
/// comments after it.
pub fn statement_complete(buf: &str) -> bool {
    let b = buf.as_bytes();
    let mut i = 0;
    let mut last_end = None;
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' => {
                let q = b[i];
                i += 1;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b'$' => {
                // $tag$ ... $tag$
                let tag_end = b[i + 1..].iter().position(|&c| c == b'$').map(|p| i + 1 + p);
                if let Some(end) = tag_end.filter(|&e| {
                    b[i + 1..e].iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
                }) {
                    let tag = &buf[i..=end];
                    match buf[end + 1..].find(tag) {
                        Some(close) => i = end + 1 + close + tag.len() - 1,
                        None => return false,
                    }
                }
            }
            b';' => last_end = Some(i),
            c if !c.is_ascii_whitespace() => last_end = None,
            _ => {}
        }
        i += 1;
    }
    last_end.is_some()
}

struct Shell {
    db: Database,
    session: Session,
    data: PathBuf,
    format: Format,
    timing: bool,
}

/// How the shell reports an error: stop (scripts) or carry on (terminal).
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnError {
    Stop,
    Continue,
}

fn print_error(e: &SqlError, sql: &str) {
    eprintln!("ERROR:  {}: {}", e.code, e.message);
    if let Some(pos) = e.position {
        // psql shows the offending line and a caret under the position.
        let mut start = 0;
        for (i, line) in sql.split_inclusive('\n').enumerate() {
            let n = line.chars().count();
            if pos <= start + n {
                let prefix = format!("LINE {}: ", i + 1);
                eprintln!("{prefix}{}", line.trim_end());
                eprintln!("{}^", " ".repeat(prefix.len() + pos.saturating_sub(start + 1)));
                break;
            }
            start += n;
        }
    }
    if let Some(d) = &e.detail {
        eprintln!("DETAIL:  {d}");
    }
}

impl Shell {
    fn prompt(&self, continuation: bool) -> String {
        let state = match self.session.status() {
            TxnStatus::Idle => '=',
            TxnStatus::InTransaction => '*',
            TxnStatus::Failed => '!',
        };
        let state = if continuation && state == '=' { '-' } else { state };
        format!("strata{state}> ")
    }

    /// Runs SQL text; returns false if it failed.
    fn run_sql(&mut self, sql: &str, out: &mut impl Write) -> anyhow::Result<bool> {
        let started = Instant::now();
        match self.session.execute(sql, &[]) {
            Ok(results) => {
                for r in &results {
                    for n in &r.notices {
                        eprintln!("NOTICE:  {n}");
                    }
                    out.write_all(format::render(r, self.format).as_bytes())?;
                }
                if self.timing {
                    writeln!(out, "Time: {:.3} ms", started.elapsed().as_secs_f64() * 1000.0)?;
                }
                Ok(true)
            }
            Err(e) => {
                print_error(&e, sql);
                Ok(false)
            }
        }
    }

    fn tables(&self) -> anyhow::Result<Vec<std::sync::Arc<Table>>> {
        let mut txn = self.db.store().begin_read_only();
        Ok(catalog::list_tables(&mut txn)?)
    }

    fn table(&self, name: &str) -> anyhow::Result<Option<std::sync::Arc<Table>>> {
        let mut txn = self.db.store().begin_read_only();
        Ok(catalog::get_table(&mut txn, name)?)
    }

    fn titled(
        &self,
        title: &str,
        columns: &[&str],
        rows: Vec<Vec<String>>,
        footer: bool,
        out: &mut impl Write,
    ) -> anyhow::Result<()> {
        let result = StatementResult {
            columns: columns
                .iter()
                .map(|c| OutputColumn { name: c.to_string(), ty: DataType::Text })
                .collect(),
            count: rows.len() as u64,
            rows: rows.into_iter().map(|r| r.into_iter().map(Value::Text).collect()).collect(),
            tag: String::new(),
            notices: Vec::new(),
        };
        let mut rendered = format::render(&result, self.format);
        if !footer {
            // psql's \d shows no row count: drop the "(N rows)" line.
            if let Some(at) = rendered.rfind("\n(") {
                rendered.truncate(at + 1);
            }
        }
        let width = rendered.lines().nth(1).map_or(0, |l| l.chars().count());
        if self.format.style == Style::Aligned && !self.format.tuples_only {
            writeln!(out, "{}", format!("{title:^width$}").trim_end())?;
        }
        out.write_all(rendered.as_bytes())?;
        Ok(())
    }

    /// Runs a backslash command; returns false to quit.
    fn meta(&mut self, line: &str, out: &mut impl Write) -> anyhow::Result<bool> {
        let mut words = line.split_whitespace();
        let cmd = words.next().unwrap_or("");
        let arg = words.next();
        match cmd {
            "\\q" => return Ok(false),
            "\\?" => writeln!(
                out,
                "General\n  \\q                quit\n  \\i FILE           run commands from FILE\n  \\timing           toggle timing of statements\n  \\x                toggle expanded output\n  \\conninfo         show where the session is connected\nInformational\n  \\d [TABLE]        describe a table (or list tables)\n  \\dt               list tables\n  \\di               list indexes"
            )?,
            "\\x" => {
                self.format.expanded = !self.format.expanded;
                writeln!(
                    out,
                    "Expanded display is {}.",
                    if self.format.expanded { "on" } else { "off" }
                )?;
            }
            "\\timing" => {
                self.timing = !self.timing;
                writeln!(out, "Timing is {}.", if self.timing { "on" } else { "off" })?;
            }
            "\\conninfo" => writeln!(
                out,
                "You are connected to the embedded database \"strata\" in \"{}\".",
                self.data.display()
            )?,
            "\\dt" | "\\d" if arg.is_none() => {
                let rows: Vec<Vec<String>> = self
                    .tables()?
                    .iter()
                    .map(|t| vec!["public".into(), t.name.clone(), "table".into(), "strata".into()])
                    .collect();
                if rows.is_empty() {
                    writeln!(out, "Did not find any relations.")?;
                } else {
                    self.titled(
                        "List of relations",
                        &["Schema", "Name", "Type", "Owner"],
                        rows,
                        true,
                        out,
                    )?;
                }
            }
            "\\di" => {
                let mut rows = Vec::new();
                for t in self.tables()? {
                    rows.push(vec![
                        "public".into(),
                        format!("{}_pkey", t.name),
                        "index".into(),
                        "strata".into(),
                        t.name.clone(),
                    ]);
                    for i in &t.indexes {
                        rows.push(vec![
                            "public".into(),
                            i.name.clone(),
                            "index".into(),
                            "strata".into(),
                            t.name.clone(),
                        ]);
                    }
                }
                self.titled(
                    "List of relations",
                    &["Schema", "Name", "Type", "Owner", "Table"],
                    rows,
                    true,
                    out,
                )?;
            }
            "\\d" => {
                let name = arg.expect("checked").trim_matches('"');
                let Some(t) = self.table(name)? else {
                    eprintln!("Did not find any relation named \"{name}\".");
                    return Ok(true);
                };
                let rows = t
                    .visible_columns()
                    .map(|(_, c)| {
                        vec![
                            c.name.clone(),
                            c.ty.pg_name(),
                            String::new(),
                            if c.nullable { String::new() } else { "not null".into() },
                            c.default.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                self.titled(
                    &format!("Table \"public.{}\"", t.name),
                    &["Column", "Type", "Collation", "Nullable", "Default"],
                    rows,
                    false,
                    out,
                )?;
                let col_list = |cols: &[usize]| {
                    cols.iter().map(|&c| t.columns[c].name.clone()).collect::<Vec<_>>().join(", ")
                };
                let mut index_lines = Vec::new();
                if !t.columns[t.primary_key[0]].hidden {
                    index_lines.push(format!(
                        "    \"{}_pkey\" PRIMARY KEY, btree ({})",
                        t.name,
                        col_list(&t.primary_key)
                    ));
                }
                for i in &t.indexes {
                    let kind = if i.unique { "UNIQUE, " } else { "" };
                    index_lines.push(format!(
                        "    \"{}\" {kind}btree ({})",
                        i.name,
                        col_list(&i.columns)
                    ));
                }
                if !index_lines.is_empty() {
                    writeln!(out, "Indexes:\n{}", index_lines.join("\n"))?;
                }
                if !t.checks.is_empty() {
                    writeln!(out, "Check constraints:")?;
                    for c in &t.checks {
                        writeln!(out, "    \"{}\" CHECK ({})", c.name, c.expr)?;
                    }
                }
                writeln!(out)?;
            }
            "\\i" => {
                let Some(path) = arg else {
                    eprintln!("\\i: missing required argument");
                    return Ok(true);
                };
                let text =
                    std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
                self.run_script(text.as_bytes(), out, OnError::Continue)?;
            }
            other => eprintln!("invalid command {other}\nTry \\? for help."),
        }
        Ok(true)
    }

    /// Runs statements and backslash commands read from `input`. Returns
    /// false if a statement failed.
    fn run_script(
        &mut self,
        input: impl BufRead,
        out: &mut impl Write,
        on_error: OnError,
    ) -> anyhow::Result<bool> {
        let mut buf = String::new();
        let mut ok = true;
        for line in input.lines() {
            let line = line?;
            if buf.trim().is_empty() && line.trim_start().starts_with('\\') {
                if !self.meta(line.trim(), out)? {
                    return Ok(ok);
                }
                continue;
            }
            buf.push_str(&line);
            buf.push('\n');
            if statement_complete(&buf) {
                let sql = std::mem::take(&mut buf);
                if !self.run_sql(&sql, out)? {
                    ok = false;
                    if on_error == OnError::Stop {
                        return Ok(false);
                    }
                }
            }
        }
        if !buf.trim().is_empty() && !self.run_sql(&buf, out)? {
            ok = false;
        }
        Ok(ok)
    }

    fn interactive(&mut self) -> anyhow::Result<()> {
        let stdin = std::io::stdin();
        let mut out = std::io::stdout();
        writeln!(out, "strata sql on {} (type \\? for help, \\q to quit)", self.data.display())?;
        let mut buf = String::new();
        loop {
            write!(out, "{}", self.prompt(!buf.is_empty()))?;
            out.flush()?;
            let mut line = String::new();
            if stdin.lock().read_line(&mut line)? == 0 {
                writeln!(out)?;
                return Ok(());
            }
            if buf.trim().is_empty() && line.trim_start().starts_with('\\') {
                if !self.meta(line.trim(), &mut out)? {
                    return Ok(());
                }
                continue;
            }
            buf.push_str(&line);
            if statement_complete(&buf) {
                let sql = std::mem::take(&mut buf);
                self.run_sql(&sql, &mut out)?;
            }
        }
    }
}

/// Runs `strata sql`; returns the process exit status.
pub fn run(opts: Options) -> anyhow::Result<i32> {
    let db = Database::open(&opts.data)
        .with_context(|| format!("opening database in {}", opts.data.display()))?;
    let session = db.session();
    let mut shell =
        Shell { db, session, data: opts.data.clone(), format: opts.format, timing: false };
    let mut out = std::io::stdout().lock();
    if !opts.commands.is_empty() {
        for c in &opts.commands {
            if c.trim_start().starts_with('\\') {
                shell.meta(c.trim(), &mut out)?;
            } else if !shell.run_sql(c, &mut out)? {
                return Ok(1);
            }
        }
        return Ok(0);
    }
    if let Some(file) = &opts.file {
        let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
        return Ok(if shell.run_script(std::io::BufReader::new(f), &mut out, OnError::Stop)? {
            0
        } else {
            3
        });
    }
    drop(out);
    if std::io::stdin().is_terminal() {
        shell.interactive()?;
        return Ok(0);
    }
    let mut out = std::io::stdout().lock();
    Ok(if shell.run_script(std::io::stdin().lock(), &mut out, OnError::Stop)? { 0 } else { 3 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_end_at_semicolons_outside_quotes_and_comments() {
        assert!(statement_complete("SELECT 1;"));
        assert!(statement_complete("SELECT 1;  -- done\n"));
        assert!(!statement_complete("SELECT ';'"));
        assert!(!statement_complete("SELECT 1 -- ;\n"));
        assert!(!statement_complete("SELECT /* ; */ 1"));
        assert!(statement_complete("SELECT \"a;b\" FROM t;"));
        assert!(!statement_complete("SELECT $$ ; $$"));
        assert!(statement_complete("SELECT $x$ ; $x$;"));
        assert!(!statement_complete("SELECT 1; SELECT 2"));
    }
}
