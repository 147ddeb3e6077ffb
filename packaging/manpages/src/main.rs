//! `cacbridge-manpages DIR`: writes the man pages of `cacbridge-host`, `cacbridge-verify` and
//! `cacbridge-portal` into DIR, one per program and one per subcommand
//! (`cacbridge-host-doctor.1` ...), as clap_mangen lays them out.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::CommandFactory;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: cacbridge-manpages DIR");
        return ExitCode::from(2);
    };
    let programs = [
        cacbridge_host::cli::Cli::command(),
        cacbridge_verify::cli::Args::command(),
        cacbridge_portal::cli::Cli::command(),
    ];
    if let Err(err) = std::fs::create_dir_all(&dir) {
        eprintln!("{}: {err}", dir.display());
        return ExitCode::FAILURE;
    }
    for command in programs {
        let name = command.get_name().to_owned();
        if let Err(err) = clap_mangen::generate_to(command, &dir) {
            eprintln!("{name}: {err}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
