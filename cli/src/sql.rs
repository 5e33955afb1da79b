//! `strata sql`: a psql-like shell, on an embedded database or connected to
//! a PostgreSQL-protocol server (Strata's or PostgreSQL).
//!
//! Statements end with `;` (outside quotes and comments) and may span lines.
//! Backslash commands: `\q`, `\?`, `\dt`, `\d [TABLE]`, `\di`, `\x`,
//! `\timing`, `\i FILE`, `\o [FILE]`, `\copy`, `\set`, `\conninfo`. The
//! prompt shows the database and the transaction state as psql does:
//! `strata=>` idle, `strata*>` in a transaction, `strata!>` in a failed one.
//! In scripts (`-f`, standard input) the first error stops the run with exit
//! status 3, and a failing `-c` exits with 1, as psql does with
//! `ON_ERROR_STOP=1`.
//!
//! At a terminal, lines are edited with rustyline and kept in
//! `~/.strata_history`. Ctrl-C while a statement runs cancels that statement
//! (an interrupt for the embedded session, a CancelRequest for a server);
//! at the prompt it clears the line; Ctrl-D quits.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use strata_sql::{
    DataType, Database, OutputColumn, Session, SqlError, StatementResult, TxnStatus, Value,
};

use crate::format::{self, Format, Style};
use crate::pgclient;

/// Where `strata sql` runs its statements.
#[derive(Debug)]
pub enum Connect {
    /// An embedded database in this directory.
    Embedded(PathBuf),
    /// A server, Strata's or PostgreSQL.
    Server(pgclient::Target),
}

/// Command-line options of `strata sql`.
#[derive(Debug)]
pub struct Options {
    pub connect: Connect,
    pub commands: Vec<String>,
    pub file: Option<PathBuf>,
    pub format: Format,
}

/// Raised by SIGINT; the canceller thread turns it into a cancel.
static SIGINT: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    SIGINT.store(true, Ordering::SeqCst);
}

/// How to cancel the statement running now, if one is.
type RunningCancel = Arc<Mutex<Option<Box<dyn Fn() + Send>>>>;

/// Installs the SIGINT handler and a thread that cancels the running
/// statement when it fires. With no statement running, SIGINT ends a
/// non-interactive run (exit status 130, as a shell reports it).
fn install_cancel_on_sigint(running: RunningCancel, interactive: bool) {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe;
    // `on_sigint` has the signature signal(2) expects.
    unsafe {
        libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
    }
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(20));
            if !SIGINT.swap(false, Ordering::SeqCst) {
                continue;
            }
            match running.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
                Some(cancel) => cancel(),
                None if !interactive => std::process::exit(130),
                None => {}
            }
        }
    });
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

/// The database behind the shell.
enum Backend {
    /// `_db` stays open as long as the shell: the session runs on its store.
    Embedded {
        _db: Database,
        session: Session,
        data: PathBuf,
    },
    Server(pgclient::Client),
}

struct Shell {
    backend: Backend,
    format: Format,
    timing: bool,
    /// `\o FILE`: query output goes here instead of standard output.
    output: Option<std::fs::File>,
    /// `\set` variables, substituted for `:name`, `:'name'` and `:"name"`.
    vars: BTreeMap<String, String>,
    running: RunningCancel,
}

// The catalog queries behind \\dt, \\di and \\d: the forms psql sends,
// trimmed to what the output shows. `$1` is the relation's oid.
const LIST_TABLES: &str = "SELECT n.nspname, c.relname, 'table', \
    pg_catalog.pg_get_userbyid(c.relowner) \
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
    WHERE c.relkind = 'r' AND n.nspname = 'public' ORDER BY 1, 2";
const LIST_INDEXES: &str = "SELECT n.nspname, c.relname, 'index', \
    pg_catalog.pg_get_userbyid(c.relowner), c2.relname \
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
    JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid \
    JOIN pg_catalog.pg_class c2 ON i.indrelid = c2.oid \
    WHERE c.relkind = 'i' AND n.nspname = 'public' ORDER BY 1, 2";
const DESCRIBE_COLUMNS: &str = "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), \
    '', CASE WHEN a.attnotnull THEN 'not null' ELSE '' END, \
    (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true) FROM pg_catalog.pg_attrdef d \
     WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.atthasdef) \
    FROM pg_catalog.pg_attribute a \
    WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum";
const DESCRIBE_INDEXES: &str = "SELECT c2.relname, i.indisprimary, i.indisunique, \
    pg_catalog.pg_get_indexdef(i.indexrelid, 0, true) \
    FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c2 ON i.indexrelid = c2.oid \
    WHERE i.indrelid = $1 ORDER BY i.indisprimary DESC, c2.relname";
const DESCRIBE_CHECKS: &str = "SELECT r.conname, pg_catalog.pg_get_constraintdef(r.oid, true) \
    FROM pg_catalog.pg_constraint r WHERE r.conrelid = $1 AND r.contype = 'c' ORDER BY 1";
const INDEX_TABLE: &str = "SELECT c.relname, am.amname FROM pg_catalog.pg_index i \
    JOIN pg_catalog.pg_class c ON c.oid = i.indrelid \
    JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid \
    JOIN pg_catalog.pg_am am ON am.oid = ic.relam WHERE i.indexrelid = $1";

/// What running some SQL produced, from either backend.
#[derive(Default)]
struct Outcome {
    results: Vec<StatementResult>,
    notices: Vec<String>,
    error: Option<SqlError>,
}

/// Replaces `:name`, `:'name'` (a quoted literal) and `:"name"` (a quoted
/// identifier) by `\set` variables, outside quotes and comments; unknown
/// names and `::` casts are left alone, as psql does.
fn substitute(sql: &str, vars: &BTreeMap<String, String>) -> String {
    if vars.is_empty() || !sql.contains(':') {
        return sql.to_string();
    }
    let mut out = String::with_capacity(sql.len());
    let chars: Vec<char> = sql.chars().collect();
    let mut i = 0;
    let mut quote: Option<char> = None;
    while i < chars.len() {
        let c = chars[i];
        if let Some(q) = quote {
            out.push(c);
            if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        if c == '\'' || c == '"' {
            quote = Some(c);
            out.push(c);
            i += 1;
            continue;
        }
        if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push_str("::");
            i += 2;
            continue;
        }
        if c == ':' {
            let (style, start) = match chars.get(i + 1) {
                Some('\'') => (Some('\''), i + 2),
                Some('"') => (Some('"'), i + 2),
                _ => (None, i + 1),
            };
            let mut end = start;
            while end < chars.len() && (chars[end].is_alphanumeric() || chars[end] == '_') {
                end += 1;
            }
            let name: String = chars[start..end].iter().collect();
            let closed = style.is_none_or(|q| chars.get(end) == Some(&q));
            if let (Some(value), true, false) = (vars.get(&name), closed, name.is_empty()) {
                match style {
                    None => out.push_str(value),
                    Some('\'') => out.push_str(&format!("'{}'", value.replace('\'', "''"))),
                    Some(_) => out.push_str(&format!("\"{}\"", value.replace('"', "\"\""))),
                }
                i = end + usize::from(style.is_some());
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// `\copy TABLE [(cols)] FROM|TO 'file' [options]` as a COPY statement on
/// STDIN/STDOUT: (the statement, the file, whether data flows from the file).
fn parse_backslash_copy(args: &str) -> anyhow::Result<(String, String, bool)> {
    let lower = args.to_lowercase();
    let at = [" from ", " to "]
        .iter()
        .filter_map(|k| lower.find(k).map(|p| (p, *k)))
        .min()
        .context("\\copy: expected FROM or TO")?;
    let (pos, keyword) = at;
    let source = args[..pos].trim();
    let rest = args[pos + keyword.len()..].trim_start();
    let (file, options) = if let Some(quoted) = rest.strip_prefix('\'') {
        let end = quoted.find('\'').context("\\copy: unterminated file name")?;
        (quoted[..end].to_string(), &quoted[end + 1..])
    } else {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        (rest[..end].to_string(), &rest[end..])
    };
    let from_file = keyword == " from ";
    let direction = if from_file { "FROM STDIN" } else { "TO STDOUT" };
    Ok((format!("COPY {source} {direction} {}", options.trim()), file, from_file))
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
    fn status(&self) -> TxnStatus {
        match &self.backend {
            Backend::Embedded { session, .. } => session.status(),
            Backend::Server(client) => client.status(),
        }
    }

    fn database_name(&self) -> &str {
        match &self.backend {
            Backend::Embedded { .. } => "strata",
            Backend::Server(client) => &client.target.database,
        }
    }

    /// Makes Ctrl-C cancel what runs until the returned guard is dropped.
    fn cancellable(&self) -> CancelGuard {
        let cancel: Box<dyn Fn() + Send> = match &self.backend {
            Backend::Embedded { session, .. } => {
                let interrupt = session.interrupt();
                Box::new(move || interrupt.cancel())
            }
            Backend::Server(client) => match client.canceller() {
                Some(c) => Box::new(move || {
                    let _ = c.cancel();
                }),
                None => Box::new(|| {}),
            },
        };
        *self.running.lock().unwrap_or_else(PoisonError::into_inner) = Some(cancel);
        CancelGuard(self.running.clone())
    }

    /// Runs SQL text on the backend. COPY FROM STDIN reads `copy_data`;
    /// COPY TO STDOUT writes its lines to `copy_out`.
    fn execute(
        &mut self,
        sql: &str,
        copy_data: Option<Vec<u8>>,
        copy_out: &mut dyn Write,
    ) -> anyhow::Result<Outcome> {
        let _guard = self.cancellable();
        match &mut self.backend {
            Backend::Embedded { session, .. } => {
                let script = session.execute_script(sql);
                let mut outcome =
                    Outcome { results: script.results, notices: Vec::new(), error: script.error };
                if let Some(copy) = script.copy {
                    let done = if copy.from_client {
                        match copy_data {
                            Some(data) => session.copy_in(&copy, &data),
                            None => Err(SqlError::new(
                                strata_sql::sqlstate::FEATURE_NOT_SUPPORTED,
                                "COPY FROM STDIN in strata sql: use \\copy ... FROM 'file'",
                            )),
                        }
                    } else {
                        session.copy_out(&copy).and_then(|(lines, done)| {
                            for l in lines {
                                copy_out.write_all(l.as_bytes()).map_err(|e| {
                                    SqlError::new(strata_sql::sqlstate::IO_ERROR, e.to_string())
                                })?;
                            }
                            Ok(done)
                        })
                    };
                    match done {
                        Ok(r) => outcome.results.push(r),
                        Err(e) => outcome.error = Some(e),
                    }
                }
                Ok(outcome)
            }
            Backend::Server(client) => {
                let mut data = copy_data;
                let mut supply = move || {
                    data.take().context("COPY FROM STDIN in strata sql: use \\copy ... FROM 'file'")
                };
                let mut sink = |bytes: &[u8]| -> anyhow::Result<()> {
                    copy_out.write_all(bytes)?;
                    Ok(())
                };
                let o = client.query(sql, &mut supply, &mut sink)?;
                Ok(Outcome { results: o.results, notices: o.notices, error: o.error })
            }
        }
    }

    fn prompt(&self, continuation: bool) -> String {
        let state = match self.status() {
            TxnStatus::Idle => '=',
            TxnStatus::InTransaction => '*',
            TxnStatus::Failed => '!',
        };
        let state = if continuation && state == '=' { '-' } else { state };
        format!("{}{state}> ", self.database_name())
    }

    /// Runs SQL text; returns false if it failed.
    fn run_sql(&mut self, sql: &str, out: &mut dyn Write) -> anyhow::Result<bool> {
        let sql = substitute(sql, &self.vars);
        let started = Instant::now();
        let mut file = self.output.take();
        let target: &mut dyn Write = match file.as_mut() {
            Some(f) => f,
            None => out,
        };
        let outcome = self.execute(&sql, None, target);
        let printed = outcome.and_then(|outcome| {
            for n in &outcome.notices {
                eprintln!("NOTICE:  {n}");
            }
            for r in &outcome.results {
                for n in &r.notices {
                    eprintln!("NOTICE:  {n}");
                }
                target.write_all(format::render(r, self.format).as_bytes())?;
            }
            if self.timing {
                writeln!(target, "Time: {:.3} ms", started.elapsed().as_secs_f64() * 1000.0)?;
            }
            Ok(match &outcome.error {
                Some(e) => {
                    print_error(e, &sql);
                    false
                }
                None => true,
            })
        });
        self.output = file;
        printed
    }

    /// `\copy`: a COPY whose data comes from or goes to a client-side file.
    fn backslash_copy(&mut self, args: &str, out: &mut dyn Write) -> anyhow::Result<bool> {
        let (sql, file, from_file) = match parse_backslash_copy(args) {
            Ok(parsed) => parsed,
            Err(e) => {
                eprintln!("{e}");
                return Ok(false);
            }
        };
        let outcome = if from_file {
            let data = match file.as_str() {
                "stdin" | "pstdin" => {
                    let mut data = Vec::new();
                    std::io::Read::read_to_end(&mut std::io::stdin(), &mut data)?;
                    data
                }
                path => match std::fs::read(path) {
                    Ok(d) => d,
                    Err(e) => {
                        eprintln!("{path}: {e}");
                        return Ok(false);
                    }
                },
            };
            self.execute(&sql, Some(data), &mut std::io::sink())?
        } else if file == "stdout" || file == "pstdout" {
            self.execute(&sql, None, out)?
        } else {
            let mut f = match std::fs::File::create(&file) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("{file}: {e}");
                    return Ok(false);
                }
            };
            self.execute(&sql, None, &mut f)?
        };
        if let Some(e) = &outcome.error {
            print_error(e, &sql);
            return Ok(false);
        }
        for r in &outcome.results {
            writeln!(out, "{}", r.tag)?;
        }
        Ok(true)
    }

    /// Runs a catalog query (the same SQL on an embedded database and on a
    /// server, Strata's or PostgreSQL's) and returns its rows as text, NULL
    /// as empty; prints the error and returns `None` if it fails.
    fn catalog_rows(&mut self, sql: &str) -> anyhow::Result<Option<Vec<Vec<String>>>> {
        let outcome = self.execute(sql, None, &mut std::io::sink())?;
        if let Some(e) = &outcome.error {
            print_error(e, sql);
            return Ok(None);
        }
        let rows = outcome.results.into_iter().last().map_or(Vec::new(), |r| r.rows);
        Ok(Some(
            rows.into_iter()
                .map(|row| {
                    row.into_iter()
                        .map(|v| if v.is_null() { String::new() } else { v.to_pg_text() })
                        .collect()
                })
                .collect(),
        ))
    }

    fn titled(
        &self,
        title: &str,
        columns: &[&str],
        rows: Vec<Vec<String>>,
        footer: bool,
        out: &mut dyn Write,
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
    fn meta(&mut self, line: &str, out: &mut dyn Write) -> anyhow::Result<bool> {
        let mut words = line.split_whitespace();
        let cmd = words.next().unwrap_or("");
        let arg = words.next();
        match cmd {
            "\\q" => return Ok(false),
            "\\?" => writeln!(
                out,
                "General\n  \\q                quit\n  \\i FILE           run commands from FILE\n  \\o [FILE]         send query results to FILE (or back to standard output)\n  \\timing           toggle timing of statements\n  \\x                toggle expanded output\n  \\conninfo         show where the session is connected\nVariables\n  \\set [NAME [VALUE]] set a variable (:NAME, :'NAME' and :\"NAME\" in SQL), or list them\n  \\unset NAME        delete a variable\nInput/Output\n  \\copy TABLE FROM|TO 'FILE' [WITH (...)]  COPY with a client-side file\nInformational\n  \\d [TABLE]        describe a table (or list tables)\n  \\dt               list tables\n  \\di               list indexes"
            )?,
            "\\copy" => {
                let args = line.trim_start().strip_prefix("\\copy").unwrap_or("").trim();
                self.backslash_copy(args, out)?;
            }
            "\\o" => {
                self.output = match arg {
                    None => None,
                    Some(path) => match std::fs::File::create(path) {
                        Ok(f) => Some(f),
                        Err(e) => {
                            eprintln!("{path}: {e}");
                            None
                        }
                    },
                };
            }
            "\\set" => match arg {
                None => {
                    for (k, v) in &self.vars {
                        writeln!(out, "{k} = '{v}'")?;
                    }
                }
                Some(name) => {
                    let value: Vec<&str> = words.collect();
                    self.vars.insert(name.to_string(), value.join(""));
                }
            },
            "\\unset" => {
                if let Some(name) = arg {
                    self.vars.remove(name);
                }
            }
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
            "\\conninfo" => match &self.backend {
                Backend::Embedded { data, .. } => writeln!(
                    out,
                    "You are connected to the embedded database \"strata\" in \"{}\".",
                    data.display()
                )?,
                Backend::Server(c) => writeln!(
                    out,
                    "You are connected to database \"{}\" as user \"{}\" on host \"{}\" at port \"{}\" (server {}).",
                    c.target.database,
                    c.target.user,
                    c.target.host,
                    c.target.port,
                    c.server_version
                )?,
            },
            "\\dt" | "\\d" if arg.is_none() => {
                let Some(rows) = self.catalog_rows(LIST_TABLES)? else { return Ok(true) };
                if rows.is_empty() {
                    writeln!(out, "Did not find any relations.")?;
                } else {
                    let columns = ["Schema", "Name", "Type", "Owner"];
                    self.titled("List of relations", &columns, rows, true, out)?;
                }
            }
            "\\di" => {
                let Some(rows) = self.catalog_rows(LIST_INDEXES)? else { return Ok(true) };
                let columns = ["Schema", "Name", "Type", "Owner", "Table"];
                self.titled("List of relations", &columns, rows, true, out)?;
            }
            "\\d" => {
                let name = arg.expect("checked").trim_matches('"');
                let literal = format!("'{}'", name.replace('\'', "''"));
                let find = format!(
                    "SELECT c.oid, c.relkind FROM pg_catalog.pg_class c \
                     WHERE c.relname = {literal} AND c.relnamespace = 2200"
                );
                let Some(found) = self.catalog_rows(&find)? else { return Ok(true) };
                let Some([oid, kind]) = found.first().map(|r| [r[0].clone(), r[1].clone()]) else {
                    eprintln!("Did not find any relation named \"{name}\".");
                    return Ok(true);
                };
                let Some(columns) = self.catalog_rows(&DESCRIBE_COLUMNS.replace("$1", &oid))?
                else {
                    return Ok(true);
                };
                let title = if kind == "i" { "Index" } else { "Table" };
                self.titled(
                    &format!("{title} \"public.{name}\""),
                    &["Column", "Type", "Collation", "Nullable", "Default"],
                    columns,
                    false,
                    out,
                )?;
                if kind == "i" {
                    let Some(table) = self.catalog_rows(&INDEX_TABLE.replace("$1", &oid))? else {
                        return Ok(true);
                    };
                    for row in table {
                        writeln!(out, "{}, for table \"public.{}\"", row[1], row[0])?;
                    }
                    writeln!(out)?;
                    return Ok(true);
                }
                let Some(indexes) = self.catalog_rows(&DESCRIBE_INDEXES.replace("$1", &oid))?
                else {
                    return Ok(true);
                };
                if !indexes.is_empty() {
                    writeln!(out, "Indexes:")?;
                    for row in indexes {
                        // [name, primary, unique, "CREATE ... USING btree (cols)"]
                        let using = row[3].split_once(" USING ").map_or("", |(_, u)| u);
                        let kind = match (row[1].as_str(), row[2].as_str()) {
                            ("t", _) => "PRIMARY KEY, ",
                            (_, "t") => "UNIQUE, ",
                            _ => "",
                        };
                        writeln!(out, "    \"{}\" {kind}{using}", row[0])?;
                    }
                }
                let Some(checks) = self.catalog_rows(&DESCRIBE_CHECKS.replace("$1", &oid))? else {
                    return Ok(true);
                };
                if !checks.is_empty() {
                    writeln!(out, "Check constraints:")?;
                    for row in checks {
                        writeln!(out, "    \"{}\" {}", row[0], row[1])?;
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
        out: &mut dyn Write,
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
        let mut out = std::io::stdout();
        let banner = match &self.backend {
            Backend::Embedded { data, .. } => {
                format!("the embedded database in {}", data.display())
            }
            Backend::Server(c) => {
                format!("{}:{} (server {})", c.target.host, c.target.port, c.server_version)
            }
        };
        writeln!(out, "strata sql on {banner} (type \\? for help, \\q to quit)")?;
        let mut editor = rustyline::DefaultEditor::new().context("starting the line editor")?;
        let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".strata_history"));
        if let Some(h) = &history {
            let _ = editor.load_history(h);
        }
        let mut buf = String::new();
        loop {
            let line = match editor.readline(&self.prompt(!buf.is_empty())) {
                Ok(line) => line,
                Err(rustyline::error::ReadlineError::Interrupted) => {
                    buf.clear(); // Ctrl-C at the prompt discards the statement
                    continue;
                }
                Err(rustyline::error::ReadlineError::Eof) => break,
                Err(e) => return Err(e).context("reading a line"),
            };
            if buf.trim().is_empty() && line.trim_start().starts_with('\\') {
                let _ = editor.add_history_entry(line.as_str());
                if !self.meta(line.trim(), &mut out)? {
                    break;
                }
                continue;
            }
            buf.push_str(&line);
            buf.push('\n');
            if statement_complete(&buf) {
                let sql = std::mem::take(&mut buf);
                let _ = editor.add_history_entry(sql.trim_end());
                self.run_sql(&sql, &mut out)?;
            }
        }
        if let Some(h) = &history {
            let _ = editor.save_history(h);
        }
        Ok(())
    }
}

/// Clears the running statement's canceller when the statement ends.
struct CancelGuard(RunningCancel);

impl Drop for CancelGuard {
    fn drop(&mut self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// Runs `strata sql`; returns the process exit status.
pub fn run(opts: Options) -> anyhow::Result<i32> {
    // First, so that a Ctrl-C during startup is handled as any other.
    let interactive =
        opts.commands.is_empty() && opts.file.is_none() && std::io::stdin().is_terminal();
    let running: RunningCancel = Arc::new(Mutex::new(None));
    install_cancel_on_sigint(running.clone(), interactive);
    let backend = match opts.connect {
        Connect::Embedded(data) => {
            let db = Database::open(&data)
                .with_context(|| format!("opening database in {}", data.display()))?;
            let session = db.session();
            Backend::Embedded { _db: db, session, data }
        }
        Connect::Server(target) => Backend::Server(pgclient::Client::connect(target)?),
    };
    let mut shell = Shell {
        backend,
        format: opts.format,
        timing: false,
        output: None,
        vars: BTreeMap::new(),
        running,
    };
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
    if interactive {
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

    #[test]
    fn variables_substitute_outside_quotes() {
        let vars: BTreeMap<String, String> =
            [("id".to_string(), "7".to_string()), ("who".to_string(), "o'neil".to_string())]
                .into_iter()
                .collect();
        assert_eq!(
            substitute("SELECT :id, :'who', :\"who\", ':id', x::int, :missing", &vars),
            "SELECT 7, 'o''neil', \"o'neil\", ':id', x::int, :missing"
        );
    }

    #[test]
    fn backslash_copy_becomes_copy_on_stdin_or_stdout() {
        let (sql, file, from) =
            parse_backslash_copy("t (a, b) from '/tmp/x y.csv' with (format csv)").unwrap();
        assert_eq!(sql, "COPY t (a, b) FROM STDIN with (format csv)");
        assert_eq!((file.as_str(), from), ("/tmp/x y.csv", true));
        let (sql, file, from) = parse_backslash_copy("t TO out.txt").unwrap();
        assert_eq!((sql.as_str(), file.as_str(), from), ("COPY t TO STDOUT ", "out.txt", false));
        assert!(parse_backslash_copy("t somewhere").is_err());
    }
}
