//! `certstore`: ask from a shell what certstore would serve, what an endpoint serves, and what a
//! store does while the files rotate. `check` and `watch` run the certstore library itself (its
//! reader and validator), so the command's verdict and a running store's cannot disagree.

mod against;
mod check;
mod cli;
mod describe;
mod output;
mod probe;
mod signals;
mod timearg;
mod watch;

use clap::Parser;

use cli::{Cli, Command};

/// Exit status: the files would be served, the endpoint serves the file's leaf, a clean stop.
pub const EXIT_OK: i32 = 0;
/// Exit status: the store would refuse the files, or the endpoint serves a different leaf.
pub const EXIT_REFUSED: i32 = 1;
/// Exit status: bad usage, a file that cannot be read, an endpoint that cannot be reached.
/// The same as clap's own status for usage errors.
pub const EXIT_TROUBLE: i32 = 2;

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Check(args) => check::run(&args),
        Command::Probe(args) => probe::run(&args),
        Command::Watch(args) => watch::run(&args),
    };
    std::process::exit(code);
}
