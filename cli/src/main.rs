//! `strata`: the command-line entry point.
//!
//! Today it offers `strata kv`, a shell over the storage engine for inspecting
//! and exercising it; the SQL shell and the server arrive with the SQL and
//! server issues.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod kv;

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
    /// A shell over the versioned key-value storage engine.
    ///
    /// Reads commands from the terminal, from -c, or from standard input.
    /// Type `help` for the commands.
    Kv {
        /// Database directory (created if missing).
        #[arg(long, default_value = "strata-data")]
        data: PathBuf,
        /// Run this command and exit (repeatable).
        #[arg(short = 'c', long = "command")]
        commands: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Kv { data, commands } => kv::run(&data, &commands),
    }
}
