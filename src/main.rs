use clap::Parser;

fn main() {
    let cli = diffexp::cli::Cli::parse();
    std::process::exit(diffexp::cli::main_with(cli));
}
