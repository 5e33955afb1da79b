//! `COPY ... FROM STDIN` and `COPY ... TO STDOUT`: the statement's meaning,
//! and rows in PostgreSQL's text and CSV formats, both ways.
//!
//! Text format: one row per line, fields separated by a tab (or DELIMITER),
//! NULL written `\N`, and backslash escapes (`\t`, `\n`, `\\`, octal, hex).
//! CSV: fields quoted with `"` when they hold the delimiter, a quote, a line
//! break, or would read as NULL; NULL is an unquoted empty field.
//!
//! A COPY FROM runs as one statement: all its rows or none. Its input is held
//! in memory while it arrives, bounded by the session's `work_mem`.

use sqlparser::ast;

use crate::error::{Result, SqlError, sqlstate};
use crate::plan::{ident, object_name};
use crate::types::{DataType, Value};

/// The data format of a COPY.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyFormat {
    Text,
    Csv,
}

/// What a COPY statement asks for.
#[derive(Clone, Debug)]
pub struct CopyCommand {
    /// True for `COPY ... FROM STDIN`, false for `COPY ... TO STDOUT`.
    pub from_client: bool,
    /// The table, unless the source is a query (`COPY (SELECT ...) TO STDOUT`).
    pub table: Option<String>,
    /// The columns named; empty means all visible columns.
    pub columns: Vec<String>,
    pub query: Option<Box<ast::Query>>,
    pub format: CopyFormat,
    pub delimiter: char,
    pub null: String,
    pub header: bool,
    pub quote: char,
    pub escape: char,
}

fn unsupported(what: &str) -> SqlError {
    SqlError::new(sqlstate::FEATURE_NOT_SUPPORTED, format!("COPY {what} is not supported"))
}

impl CopyCommand {
    /// The COPY a statement asks for; `None` for any other statement.
    pub fn from_statement(stmt: &ast::Statement) -> Result<Option<CopyCommand>> {
        let ast::Statement::Copy { source, to, target, options, legacy_options, .. } = stmt else {
            return Ok(None);
        };
        match (to, target) {
            (false, ast::CopyTarget::Stdin) | (true, ast::CopyTarget::Stdout) => {}
            (_, ast::CopyTarget::File { .. }) => {
                return Err(SqlError::new(
                    sqlstate::INSUFFICIENT_PRIVILEGE,
                    "COPY to or from a file is not allowed; use COPY ... STDIN/STDOUT (psql's \\copy)",
                ));
            }
            (_, ast::CopyTarget::Program { .. }) => return Err(unsupported("with PROGRAM")),
            (false, _) => return Err(unsupported("FROM STDOUT")),
            (true, _) => return Err(unsupported("TO STDIN")),
        }
        let (table, columns, query) = match source {
            ast::CopySource::Table { table_name, columns } => {
                (Some(object_name(table_name)?), columns.iter().map(ident).collect(), None)
            }
            ast::CopySource::Query(q) if *to => (None, Vec::new(), Some(q.clone())),
            ast::CopySource::Query(_) => return Err(unsupported("FROM into a query")),
        };
        let mut cmd = CopyCommand {
            from_client: !to,
            table,
            columns,
            query,
            format: CopyFormat::Text,
            delimiter: '\t',
            null: "\\N".into(),
            header: false,
            quote: '"',
            escape: '"',
        };
        let (mut delimiter, mut null) = (None, None);
        for o in options {
            match o {
                ast::CopyOption::Format(f) => {
                    cmd.format = match f.value.to_lowercase().as_str() {
                        "text" => CopyFormat::Text,
                        "csv" => CopyFormat::Csv,
                        other => return Err(unsupported(&format!("format \"{other}\""))),
                    }
                }
                ast::CopyOption::Delimiter(c) => delimiter = Some(*c),
                ast::CopyOption::Null(s) => null = Some(s.clone()),
                ast::CopyOption::Header(h) => cmd.header = *h,
                ast::CopyOption::Quote(c) => cmd.quote = *c,
                ast::CopyOption::Escape(c) => cmd.escape = *c,
                ast::CopyOption::Encoding(e) if e.eq_ignore_ascii_case("utf8") => {}
                ast::CopyOption::Freeze(_) => {}
                other => return Err(unsupported(&format!("option {other}"))),
            }
        }
        for o in legacy_options {
            match o {
                ast::CopyLegacyOption::Csv(csv) => {
                    cmd.format = CopyFormat::Csv;
                    for c in csv {
                        match c {
                            ast::CopyLegacyCsvOption::Header => cmd.header = true,
                            ast::CopyLegacyCsvOption::Quote(q) => cmd.quote = *q,
                            ast::CopyLegacyCsvOption::Escape(e) => cmd.escape = *e,
                            other => return Err(unsupported(&format!("option {other}"))),
                        }
                    }
                }
                ast::CopyLegacyOption::Delimiter(c) => delimiter = Some(*c),
                ast::CopyLegacyOption::Null(s) => null = Some(s.clone()),
                ast::CopyLegacyOption::Header => cmd.header = true,
                other => return Err(unsupported(&format!("option {other}"))),
            }
        }
        if cmd.format == CopyFormat::Csv {
            cmd.delimiter = ',';
            cmd.null = String::new();
        } else if cmd.header {
            return Err(SqlError::new(
                sqlstate::FEATURE_NOT_SUPPORTED,
                "cannot specify HEADER in TEXT mode",
            ));
        }
        cmd.delimiter = delimiter.unwrap_or(cmd.delimiter);
        cmd.null = null.unwrap_or(cmd.null);
        if cmd.delimiter == '\n' || cmd.delimiter == '\r' || cmd.delimiter == '\\' {
            return Err(SqlError::new(
                sqlstate::INVALID_PARAMETER_VALUE,
                "COPY delimiter cannot be newline, carriage return or backslash",
            ));
        }
        Ok(Some(cmd))
    }

    /// One row as a line of output, with its line break.
    pub fn format_row(&self, row: &[Value], types: &[DataType]) -> String {
        let mut line = String::new();
        for (i, (v, ty)) in row.iter().zip(types).enumerate() {
            if i > 0 {
                line.push(self.delimiter);
            }
            if v.is_null() {
                line.push_str(&self.null);
                continue;
            }
            let text = v.to_pg_text_typed(ty);
            match self.format {
                CopyFormat::Text => {
                    for c in text.chars() {
                        match c {
                            '\\' => line.push_str("\\\\"),
                            '\n' => line.push_str("\\n"),
                            '\r' => line.push_str("\\r"),
                            '\t' => line.push_str("\\t"),
                            c if c == self.delimiter => {
                                line.push('\\');
                                line.push(c);
                            }
                            c => line.push(c),
                        }
                    }
                }
                CopyFormat::Csv => {
                    let needs_quotes = text.is_empty() && self.null.is_empty()
                        || text == self.null
                        || text.contains([self.delimiter, self.quote, '\n', '\r'])
                        || text.starts_with("\\.");
                    if needs_quotes {
                        line.push(self.quote);
                        for c in text.chars() {
                            if c == self.quote || c == self.escape {
                                line.push(self.escape);
                            }
                            line.push(c);
                        }
                        line.push(self.quote);
                    } else {
                        line.push_str(&text);
                    }
                }
            }
        }
        line.push('\n');
        line
    }

    /// The header line of a CSV `COPY ... TO STDOUT WITH (HEADER)`.
    pub fn header_line(&self, names: &[String]) -> String {
        let mut line = names
            .iter()
            .map(|n| self.format_row(&[Value::Text(n.clone())], &[DataType::Text]))
            .map(|s| s.trim_end_matches('\n').to_string())
            .collect::<Vec<_>>()
            .join(&self.delimiter.to_string());
        line.push('\n');
        line
    }

    /// Splits COPY input into rows of fields (`None` is NULL), in order.
    pub fn parse_rows(&self, data: &[u8]) -> Result<Vec<Vec<Option<String>>>> {
        let text = std::str::from_utf8(data).map_err(|e| {
            SqlError::new(
                "22021",
                format!("invalid byte sequence for encoding \"UTF8\" at byte {}", e.valid_up_to()),
            )
        })?;
        let mut rows = match self.format {
            CopyFormat::Text => parse_text(text, self)?,
            CopyFormat::Csv => parse_csv(text, self)?,
        };
        if self.header && !rows.is_empty() {
            rows.remove(0);
        }
        Ok(rows)
    }
}

fn bad_copy(line: usize, what: impl std::fmt::Display) -> SqlError {
    SqlError::new("22P04", format!("{what}")).with_detail(format!("COPY input, line {line}"))
}

fn parse_text(text: &str, cmd: &CopyCommand) -> Result<Vec<Vec<Option<String>>>> {
    let mut rows = Vec::new();
    for (n, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line == "\\." {
            break; // the end-of-data marker of the old protocol
        }
        if line.is_empty() && n + 1 == text.split('\n').count() {
            break; // the text ended with a line break
        }
        let mut fields = Vec::new();
        let mut raw = String::new();
        let mut chars = line.chars().peekable();
        let mut escaped_any = false;
        let finish = |raw: &mut String, escaped: bool, fields: &mut Vec<Option<String>>| {
            let field = std::mem::take(raw);
            fields.push(if !escaped && field == cmd.null { None } else { Some(field) });
        };
        while let Some(c) = chars.next() {
            if c == cmd.delimiter {
                finish(&mut raw, escaped_any, &mut fields);
                escaped_any = false;
                continue;
            }
            if c != '\\' {
                raw.push(c);
                continue;
            }
            let Some(e) = chars.next() else {
                return Err(bad_copy(n + 1, "end-of-copy marker corrupt"));
            };
            if e == 'N' && cmd.null == "\\N" {
                raw.push_str("\\N");
                continue;
            }
            escaped_any = true;
            match e {
                'b' => raw.push('\u{8}'),
                'f' => raw.push('\u{c}'),
                'n' => raw.push('\n'),
                'r' => raw.push('\r'),
                't' => raw.push('\t'),
                'v' => raw.push('\u{b}'),
                'x' => {
                    let mut v = 0u32;
                    let mut digits = 0;
                    while digits < 2 && chars.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                        v = v * 16 + chars.next().and_then(|c| c.to_digit(16)).unwrap_or(0);
                        digits += 1;
                    }
                    if digits == 0 {
                        raw.push('x');
                    } else {
                        raw.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                    }
                }
                '0'..='7' => {
                    let mut v = e.to_digit(8).unwrap_or(0);
                    let mut digits = 1;
                    while digits < 3 && chars.peek().is_some_and(|c| ('0'..='7').contains(c)) {
                        v = v * 8 + chars.next().and_then(|c| c.to_digit(8)).unwrap_or(0);
                        digits += 1;
                    }
                    raw.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                }
                other => raw.push(other),
            }
        }
        finish(&mut raw, escaped_any, &mut fields);
        rows.push(fields);
    }
    Ok(rows)
}

fn parse_csv(text: &str, cmd: &CopyCommand) -> Result<Vec<Vec<Option<String>>>> {
    let mut rows = Vec::new();
    let mut fields: Vec<Option<String>> = Vec::new();
    let mut field = String::new();
    let (mut quoted, mut in_quotes, mut at_line_start) = (false, false, true);
    let mut line = 1;
    let mut chars = text.chars().peekable();
    let end_field = |field: &mut String, quoted: bool, fields: &mut Vec<Option<String>>| {
        let f = std::mem::take(field);
        fields.push(if !quoted && f == cmd.null { None } else { Some(f) });
    };
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == cmd.escape && chars.peek() == Some(&cmd.quote) && cmd.escape != cmd.quote {
                field.push(chars.next().unwrap_or(c));
            } else if c == cmd.quote {
                if cmd.escape == cmd.quote && chars.peek() == Some(&cmd.quote) {
                    chars.next();
                    field.push(c);
                } else {
                    in_quotes = false;
                }
            } else {
                if c == '\n' {
                    line += 1;
                }
                field.push(c);
            }
            continue;
        }
        if at_line_start && c == '\\' && chars.peek() == Some(&'.') {
            let rest: String = chars.clone().take(2).collect();
            if rest == "." || rest == ".\n" || rest == ".\r" {
                return Ok(rows); // the end-of-data marker
            }
        }
        at_line_start = false;
        match c {
            c if c == cmd.quote => {
                in_quotes = true;
                quoted = true;
            }
            c if c == cmd.delimiter => {
                end_field(&mut field, quoted, &mut fields);
                quoted = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => {
                end_field(&mut field, quoted, &mut fields);
                rows.push(std::mem::take(&mut fields));
                quoted = false;
                at_line_start = true;
                line += 1;
            }
            c => field.push(c),
        }
    }
    if in_quotes {
        return Err(bad_copy(line, "unterminated CSV quoted field"));
    }
    if !at_line_start {
        end_field(&mut field, quoted, &mut fields);
        rows.push(fields);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(sql: &str) -> CopyCommand {
        let stmt = crate::parse(sql).unwrap().remove(0);
        CopyCommand::from_statement(&stmt).unwrap().expect("a COPY")
    }

    #[test]
    fn text_format_escapes_and_nulls_round_trip() {
        let cmd = command("COPY t FROM STDIN");
        let row = vec![
            Value::Int(1),
            Value::Text("tab\there\nnewline \\ back".into()),
            Value::Null,
            Value::Text("\\N".into()),
        ];
        let types = [DataType::Int4, DataType::Text, DataType::Text, DataType::Text];
        let line = cmd.format_row(&row, &types);
        assert_eq!(line, "1\ttab\\there\\nnewline \\\\ back\t\\N\t\\\\N\n");
        let parsed = cmd.parse_rows(line.as_bytes()).unwrap();
        assert_eq!(
            parsed,
            vec![vec![
                Some("1".into()),
                Some("tab\there\nnewline \\ back".into()),
                None,
                Some("\\N".into())
            ]]
        );
        let octal = cmd.parse_rows(b"\\101\\x42\\\\\n\\.\nignored\n").unwrap();
        assert_eq!(octal, vec![vec![Some("AB\\".into())]]);
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let cmd = command("COPY t TO STDOUT WITH (FORMAT csv, HEADER)");
        let row = vec![Value::Text("a,b".into()), Value::Text(String::new()), Value::Null];
        let types = [DataType::Text, DataType::Text, DataType::Text];
        assert_eq!(cmd.format_row(&row, &types), "\"a,b\",\"\",\n");
        assert_eq!(cmd.header_line(&["x".into(), "y,z".into()]), "x,\"y,z\"\n");
        let parsed = cmd
            .parse_rows(b"h1,h2,h3\n\"a,b\",\"\",\n\"say \"\"hi\"\"\",\"two\nlines\",3\r\n")
            .unwrap();
        assert_eq!(
            parsed,
            vec![
                vec![Some("a,b".into()), Some(String::new()), None],
                vec![Some("say \"hi\"".into()), Some("two\nlines".into()), Some("3".into())],
            ]
        );
        let err = cmd.parse_rows(b"h\n\"open").unwrap_err();
        assert_eq!(err.code, "22P04");
    }

    #[test]
    fn options_are_checked() {
        let legacy = command("COPY t FROM STDIN CSV HEADER");
        assert_eq!((legacy.format, legacy.header, legacy.delimiter), (CopyFormat::Csv, true, ','));
        let custom = command("COPY t (a, b) FROM STDIN WITH (DELIMITER '|', NULL 'nil')");
        assert_eq!((custom.delimiter, custom.null.as_str()), ('|', "nil"));
        assert_eq!(custom.columns, vec!["a".to_string(), "b".to_string()]);
        for (sql, code) in [
            ("COPY t FROM '/etc/passwd'", sqlstate::INSUFFICIENT_PRIVILEGE),
            ("COPY t FROM STDIN WITH (FORMAT binary)", sqlstate::FEATURE_NOT_SUPPORTED),
            ("COPY t FROM STDIN WITH (HEADER)", sqlstate::FEATURE_NOT_SUPPORTED),
        ] {
            let stmt = crate::parse(sql).unwrap().remove(0);
            let err = CopyCommand::from_statement(&stmt).unwrap_err();
            assert_eq!(err.code, code, "{sql}");
        }
    }
}
