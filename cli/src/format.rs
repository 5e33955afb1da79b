//! Result formatting as psql prints it: aligned tables with a row-count
//! footer, expanded (`\x`) records, unaligned (`-A`) and CSV output.

use strata_sql::{DataType, StatementResult, Value};

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Aligned,
    Unaligned,
    Csv,
}

/// Output options.
#[derive(Clone, Copy, Debug)]
pub struct Format {
    pub style: Style,
    pub expanded: bool,
    /// `-t`: rows only, no header or footer.
    pub tuples_only: bool,
}

fn cell(v: &Value, ty: &DataType) -> String {
    match v {
        Value::Null => String::new(),
        v => v.to_pg_text_typed(ty),
    }
}

fn right_aligned(ty: &DataType) -> bool {
    ty.is_numeric()
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Renders one statement's result.
pub fn render(result: &StatementResult, f: Format) -> String {
    let mut out = String::new();
    if result.columns.is_empty() {
        if f.style == Style::Aligned && !f.tuples_only {
            out.push_str(&result.tag);
            out.push('\n');
        }
        return out;
    }
    let cells: Vec<Vec<String>> = result
        .rows
        .iter()
        .map(|r| r.iter().zip(&result.columns).map(|(v, c)| cell(v, &c.ty)).collect())
        .collect();
    let names: Vec<&str> = result.columns.iter().map(|c| c.name.as_str()).collect();
    match f.style {
        Style::Csv => {
            if !f.tuples_only {
                out.push_str(&names.iter().map(|n| csv_field(n)).collect::<Vec<_>>().join(","));
                out.push('\n');
            }
            for r in &cells {
                out.push_str(&r.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(","));
                out.push('\n');
            }
        }
        Style::Unaligned => {
            if !f.tuples_only {
                out.push_str(&names.join("|"));
                out.push('\n');
            }
            for r in &cells {
                out.push_str(&r.join("|"));
                out.push('\n');
            }
            if !f.tuples_only {
                out.push_str(&footer(cells.len()));
                out.push('\n');
            }
        }
        Style::Aligned if f.expanded => {
            let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
            for (i, r) in cells.iter().enumerate() {
                out.push_str(&format!(
                    "-[ RECORD {} ]{}\n",
                    i + 1,
                    "-".repeat(width.saturating_sub(8).max(1))
                ));
                for (n, c) in names.iter().zip(r) {
                    out.push_str(&format!("{n:<width$} | {c}\n"));
                }
            }
            if cells.is_empty() {
                out.push_str("(0 rows)\n");
            }
        }
        Style::Aligned => {
            let widths: Vec<usize> = (0..names.len())
                .map(|i| {
                    cells
                        .iter()
                        .map(|r| r[i].chars().count())
                        .chain([names[i].chars().count()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            if !f.tuples_only {
                let header: Vec<String> = names
                    .iter()
                    .zip(&widths)
                    .map(|(n, w)| {
                        let pad = w - n.chars().count();
                        format!("{}{n}{}", " ".repeat(pad / 2), " ".repeat(pad - pad / 2))
                    })
                    .collect();
                out.push_str(format!(" {} \n", header.join(" | ")).trim_end());
                out.push('\n');
                out.push_str(
                    &widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("+"),
                );
                out.push('\n');
            }
            for r in &cells {
                let line: Vec<String> = r
                    .iter()
                    .zip(&widths)
                    .zip(&result.columns)
                    .map(|((c, w), col)| {
                        if right_aligned(&col.ty) { format!("{c:>w$}") } else { format!("{c:<w$}") }
                    })
                    .collect();
                out.push_str(format!(" {} ", line.join(" | ")).trim_end());
                out.push('\n');
            }
            if !f.tuples_only {
                out.push_str(&footer(cells.len()));
                out.push_str("\n\n");
            }
        }
    }
    out
}

fn footer(n: usize) -> String {
    if n == 1 { "(1 row)".to_string() } else { format!("({n} rows)") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_sql::OutputColumn;

    fn result() -> StatementResult {
        StatementResult {
            columns: vec![
                OutputColumn { name: "id".into(), ty: DataType::Int4 },
                OutputColumn { name: "name".into(), ty: DataType::Text },
            ],
            rows: vec![
                vec![Value::Int(1), Value::Text("alice".into())],
                vec![Value::Int(20), Value::Null],
            ],
            tag: "SELECT 2".into(),
            count: 2,
            notices: vec![],
        }
    }

    #[test]
    fn aligned_output_matches_psql() {
        let f = Format { style: Style::Aligned, expanded: false, tuples_only: false };
        assert_eq!(
            render(&result(), f),
            " id | name\n----+-------\n  1 | alice\n 20 |\n(2 rows)\n\n"
        );
    }

    #[test]
    fn csv_and_unaligned_output() {
        let csv = Format { style: Style::Csv, expanded: false, tuples_only: false };
        assert_eq!(render(&result(), csv), "id,name\n1,alice\n20,\n");
        let unaligned = Format { style: Style::Unaligned, expanded: false, tuples_only: true };
        assert_eq!(render(&result(), unaligned), "1|alice\n20|\n");
        assert_eq!(csv_field("a,\"b\""), "\"a,\"\"b\"\"\"");
    }

    #[test]
    fn expanded_records() {
        let f = Format { style: Style::Aligned, expanded: true, tuples_only: false };
        assert_eq!(
            render(&result(), f),
            "-[ RECORD 1 ]-\nid   | 1\nname | alice\n-[ RECORD 2 ]-\nid   | 20\nname | \n"
        );
    }
}
