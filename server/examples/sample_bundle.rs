//! Write a small valid `.edetail` archive (for smoke tests and demos without the
//! authoring toolchain): `cargo run -p edetail-server --example sample_bundle -- OUT [DECK] [VERSION] [SLIDES]`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = args
        .first()
        .cloned()
        .unwrap_or_else(|| "sample.edetail".into());
    let deck = args.get(1).cloned().unwrap_or_else(|| "sample-deck".into());
    let version = args.get(2).cloned().unwrap_or_else(|| "1.0.0".into());
    let slides = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(8);
    let (archive, _) =
        edetail_server::bundles::sample_bundle(&deck, &version, "2020-01-01", "2099-12-31", slides);
    if let Err(e) = std::fs::write(&out, archive) {
        eprintln!("error: cannot write {out}: {e}");
        std::process::exit(2);
    }
    println!("{out}");
}
