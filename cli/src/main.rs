//! `strata`: the command-line entry point.
//!
//! `strata sql` is a psql-like shell on an embedded database; `strata kv` is
//! a shell over the storage engine underneath, for inspecting and exercising
//! it; `strata start` serves SQL to PostgreSQL clients over the network.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod format;
mod kv;
mod pgclient;
mod server;
mod sim;
mod sql;

#[derive(Parser, Debug)]
#[command(
    name = "strata",
    version,
    about = "Strata: a transactional SQL database (in construction)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// A psql-like SQL shell, on an embedded database or a server.
    ///
    /// Reads statements from the terminal, from -c, -f, or standard input.
    /// Type \? for the backslash commands.
    Sql {
        /// A server to connect to instead of the embedded database:
        /// postgres://user:password@host:port/database (Strata's or PostgreSQL).
        url: Option<String>,
        /// Server host (connects to a server instead of the embedded database).
        #[arg(long)]
        host: Option<String>,
        /// Server port.
        #[arg(long, short = 'p')]
        port: Option<u16>,
        /// User name on the server.
        #[arg(long, short = 'U')]
        user: Option<String>,
        /// Database name on the server.
        #[arg(long, short = 'd')]
        dbname: Option<String>,
        /// Database directory of the embedded database (created if missing).
        #[arg(long, default_value = "strata-data")]
        data: PathBuf,
        /// Run this SQL (or backslash command) and exit (repeatable).
        #[arg(short = 'c', long = "command")]
        commands: Vec<String>,
        /// Run the statements in FILE and exit.
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
        /// Print rows as CSV.
        #[arg(long)]
        csv: bool,
        /// Unaligned output: columns separated by |.
        #[arg(short = 'A', long = "no-align")]
        unaligned: bool,
        /// Print rows only: no header or row-count footer.
        #[arg(short = 't', long = "tuples-only")]
        tuples_only: bool,
    },
    /// Serve SQL over the PostgreSQL wire protocol until SIGINT or SIGTERM.
    Start(server::StartArgs),
    /// A shell over the versioned key-value storage engine.
    ///
    /// Reads commands from the terminal, from -c, or from standard input.
    /// Type `help` for the commands.
    Kv {
        /// Database directory (created if missing).
        #[arg(long, default_value = "strata-kv-data")]
        data: PathBuf,
        /// Run this command and exit (repeatable).
        #[arg(short = 'c', long = "command")]
        commands: Vec<String>,
    },
    /// Run seeds of the deterministic replica-set simulator; print failing seeds.
    Sim(sim::SimArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Kv { data, commands } => kv::run(&data, &commands),
        Command::Start(args) => server::run(args),
        Command::Sim(args) => sim::run(args),
        Command::Sql {
            url,
            host,
            port,
            user,
            dbname,
            data,
            commands,
            file,
            csv,
            unaligned,
            tuples_only,
        } => {
            let style = if csv {
                format::Style::Csv
            } else if unaligned {
                format::Style::Unaligned
            } else {
                format::Style::Aligned
            };
            let format = format::Format { style, expanded: false, tuples_only };
            let remote = host.is_some() || port.is_some() || user.is_some() || dbname.is_some();
            let connect = match url {
                Some(url) => sql::Connect::Server(pgclient::Target::parse(&url)?),
                None if remote => {
                    let mut target = pgclient::Target::parse("postgres://")?;
                    target.host = host.unwrap_or(target.host);
                    target.port = port.unwrap_or(target.port);
                    if let Some(user) = user {
                        target.database = dbname.clone().unwrap_or_else(|| user.clone());
                        target.user = user;
                    }
                    target.database = dbname.unwrap_or(target.database);
                    sql::Connect::Server(target)
                }
                None => sql::Connect::Embedded(data),
            };
            let status = sql::run(sql::Options { connect, commands, file, format })?;
            std::process::exit(status);
        }
    }
}
