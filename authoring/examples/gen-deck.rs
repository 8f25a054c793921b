//! `cargo run -p edetail-authoring --example gen-deck -- <N> <dir>`: write a synthetic
//! deck of N slides that uses every component (for benchmarks).
fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(n), Some(dir)) = (
        args.first().and_then(|n| n.parse::<usize>().ok()),
        args.get(1),
    ) else {
        eprintln!("usage: gen-deck <N> <dir>");
        return std::process::ExitCode::from(2);
    };
    match edetail_authoring::synth::write_deck(std::path::Path::new(dir), n) {
        Ok(()) => {
            println!("wrote a {n}-slide deck to {dir}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
