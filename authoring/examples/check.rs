//! Quick manual check: `cargo run -p edetail-authoring --example check -- <deck> [today]`.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let deck = std::path::Path::new(args.get(1).map_or(".", String::as_str));
    let today = args
        .get(2)
        .cloned()
        .unwrap_or_else(edetail_authoring::today_utc);
    match edetail_authoring::compile(deck, &edetail_authoring::CompileOptions::new(today)) {
        Ok(c) => {
            print!("{}", edetail_authoring::render_human(&c.diagnostics, false));
            if let Some(b) = &c.bundle {
                println!("{}", String::from_utf8_lossy(&b.to_json()));
            }
        }
        Err(e) => eprintln!("{e}"),
    }
}
