//! `edetail-e2e`: end-to-end tests of the runtime in real browsers (Chromium through
//! chromedriver, WebKit through WebKitGTK's WebKitWebDriver) and the runtime benchmark.
//!
//! The tests need the built runtime in `dist/www` (`cargo xtask runtime`) and the
//! browsers; they start every process they use (WebDriver, Xvfb, the test receiver that
//! serves the app and takes events) on free loopback ports and stop them at the end.
//! Outside CI a missing browser skips a test with a note; with `CI=true` it fails.
//!
//! - [`webdriver`]: a small synchronous W3C WebDriver client
//! - [`browser`]: launching Chromium / WebKit sessions
//! - [`site`]: the served app, bundles and the event receiver
//! - [`player`]: page helpers that know the runtime's DOM contract (`data-testid`s)

pub mod browser;
pub mod player;
pub mod site;
pub mod webdriver;
