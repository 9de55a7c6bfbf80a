use clap::Parser;

fn main() {
    let cli = pfode::cli::Cli::parse();
    if let Err(e) = pfode::run::main(cli) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
