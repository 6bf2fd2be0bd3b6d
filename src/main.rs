use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    polaris::run::heap::keep_freed_memory();
    polaris::run::threads::one_elementwise_pool();
    let cli = polaris::cli::Cli::parse();
    match polaris::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
