//! `edetail-e2e`: end-to-end tests of the runtime in real browsers (Chromium through
//! chromedriver, WebKit through WebKitGTK's WebKitWebDriver) and the runtime benchmark.
//!
//! The tests need the built runtime in `dist/www` (`cargo xtask runtime`) and the
//! browsers; they start every process they use (WebDriver, Xvfb, the test receiver that
//! serves the app and takes events) on free loopback ports and stop them at the end.
//! Outside CI a missing browser skips a test with a note; with `CI=true` it fails.
//!
//! ```sh
//! cargo xtask runtime                       # dist/www
//! cargo test -p edetail-e2e                 # every browser test, Chromium and WebKit
//! cargo test -p edetail-e2e -- --ignored    # tests of known runtime gaps (NEEDS.md)
//! cargo build --release -p edetail-e2e --bins --examples && target/release/examples/runtime_bench
//! ```
//!
//! `EDETAIL_DIST_WWW` points at another runtime build; `EDETAIL_BIN` at an `edetail`
//! binary for the whole-loop test (otherwise it is built with cargo). Findings the tests
//! made about the runtime and server are in `tests/e2e/NEEDS.md`.
//!
//! - [`webdriver`]: a small synchronous W3C WebDriver client
//! - [`browser`]: launching Chromium / WebKit sessions
//! - [`site`]: the served app, bundles and the event receiver
//! - [`player`]: page helpers that know the runtime's DOM contract (`data-testid`s)
//! - [`harness`]: one browser at a time, both browsers per test, event-log checks

pub mod browser;
pub mod harness;
pub mod player;
pub mod site;
pub mod webdriver;
