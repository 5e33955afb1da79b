//! The `strata kv` shell: one command per line against a [`strata_lsm::Db`].
//!
//! Versions are timestamped with the wall clock in microseconds, forced to
//! grow past every timestamp already stored, so the newest write always wins
//! and `get KEY @TS` reads history.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use strata_lsm::{Db, Durability, KeyRange, MAX_TS, Options, Timestamp};

const HELP: &str = "\
commands:
  put KEY VALUE        write a version of KEY (durable when it returns)
  get KEY [@TS]        newest value of KEY, or as of timestamp TS
  del KEY              write a tombstone for KEY
  scan [PREFIX] [desc] [limit N]   keys and values, ascending or descending
  stats                engine statistics
  flush                write the memtable to a table
  compact              compact every table into the bottom level
  help                 this text
  quit                 leave (also Ctrl-D)";

/// Runs the shell on `dir`: the given commands, or else standard input.
pub fn run(dir: &Path, commands: &[String]) -> anyhow::Result<()> {
    let db = Db::open(dir, Options::default())
        .with_context(|| format!("opening database in {}", dir.display()))?;
    let mut shell = Shell { clock: db.max_timestamp(), db };
    let mut out = std::io::stdout().lock();
    if !commands.is_empty() {
        for c in commands {
            shell.execute(c, &mut out)?;
        }
        return Ok(());
    }
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        writeln!(out, "strata kv shell on {} (type help)", dir.display())?;
    }
    let mut failed = false;
    let mut lines = std::io::stdin().lock().lines();
    loop {
        if interactive {
            write!(out, "kv> ")?;
            out.flush()?;
        }
        let Some(line) = lines.next() else { break };
        let line = line?;
        match shell.execute(&line, &mut out) {
            Ok(Flow::Continue) => {}
            Ok(Flow::Quit) => break,
            Err(e) if interactive => writeln!(out, "error: {e:#}")?,
            Err(e) => {
                // In a script, stop at the first error and exit non-zero.
                eprintln!("error: {e:#}");
                failed = true;
                break;
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

enum Flow {
    Continue,
    Quit,
}

struct Shell {
    db: Db,
    clock: Timestamp,
}

impl Shell {
    fn next_ts(&mut self) -> Timestamp {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
        self.clock = now.max(self.clock + 1);
        self.clock
    }

    fn execute(&mut self, line: &str, out: &mut impl Write) -> anyhow::Result<Flow> {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [] => {}
            ["put", key, value @ ..] if !value.is_empty() => {
                let ts = self.next_ts();
                self.db.put(key.as_bytes(), ts, value.join(" ").as_bytes(), Durability::Sync)?;
                writeln!(out, "OK @{ts}")?;
            }
            ["get", key] => self.print_get(key, MAX_TS, out)?,
            ["get", key, at] => {
                let ts = at
                    .strip_prefix('@')
                    .unwrap_or(at)
                    .parse()
                    .context("timestamp must be a number")?;
                self.print_get(key, ts, out)?;
            }
            ["del", key] => {
                let ts = self.next_ts();
                self.db.delete(key.as_bytes(), ts, Durability::Sync)?;
                writeln!(out, "OK @{ts}")?;
            }
            ["scan", rest @ ..] => self.scan(rest, out)?,
            ["stats"] => writeln!(out, "{:#?}", self.db.stats())?,
            ["flush"] => {
                self.db.flush()?;
                writeln!(out, "OK")?;
            }
            ["compact"] => {
                self.db.compact()?;
                writeln!(out, "OK")?;
            }
            ["help"] => writeln!(out, "{HELP}")?,
            ["quit" | "exit"] => return Ok(Flow::Quit),
            _ => bail!("unknown command {line:?} (type help)"),
        }
        Ok(Flow::Continue)
    }

    fn print_get(&self, key: &str, ts: Timestamp, out: &mut impl Write) -> anyhow::Result<()> {
        match self.db.get(key.as_bytes(), ts)? {
            Some(v) => writeln!(out, "{}", String::from_utf8_lossy(&v))?,
            None => writeln!(out, "(not found)")?,
        }
        Ok(())
    }

    fn scan(&self, args: &[&str], out: &mut impl Write) -> anyhow::Result<()> {
        let (mut prefix, mut reverse, mut limit) = (None, false, usize::MAX);
        let mut args = args.iter();
        while let Some(a) = args.next() {
            match *a {
                "desc" => reverse = true,
                "limit" => {
                    limit = args
                        .next()
                        .context("limit needs a number")?
                        .parse()
                        .context("limit needs a number")?
                }
                p if prefix.is_none() => prefix = Some(p),
                other => bail!("unexpected {other:?} in scan"),
            }
        }
        let range = prefix.map_or(KeyRange::all(), |p| KeyRange::prefix(p.as_bytes()));
        let mut scan = self.db.scan(range, MAX_TS, reverse)?;
        let mut n = 0;
        while n < limit {
            let Some((k, v)) = scan.next_entry()? else { break };
            writeln!(out, "{} = {}", String::from_utf8_lossy(k), String::from_utf8_lossy(v))?;
            n += 1;
        }
        writeln!(out, "({n} {})", if n == 1 { "row" } else { "rows" })?;
        Ok(())
    }
}
