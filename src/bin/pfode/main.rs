//! The `pfode` command: parse the command line, call the library, print an error once.

mod cli;
mod commands;

use clap::Parser;

fn main() {
    // Exit quietly when the reader of our output goes away (`pfode orders … | head`),
    // as command-line tools do, instead of panicking on a broken pipe.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    pfode::io::keep_freed_memory();
    let cli = cli::Cli::parse();
    if let Err(e) = commands::main(cli) {
        eprintln!("error: {}", cli::in_flags(&e));
        std::process::exit(1);
    }
}
