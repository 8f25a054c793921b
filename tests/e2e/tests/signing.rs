//! Signed bundles on the device, in Chromium and WebKit: the player checks
//! `bundle.sig` against the app's `trusted-keys.json` with WebCrypto Ed25519. A
//! correctly signed bundle is presented; an unsigned one, one signed by an untrusted
//! key, a forged signature (names the trusted key, made with another) and a genuine
//! signature of another bundle are refused full-screen; a preview bundle needs none;
//! offline (site stopped), the signed bundle is still verified from the worker's cache.
//!
//! Needs dist/www (`cargo xtask runtime`); `cargo test -p edetail-e2e --test signing`.

use anyhow::{Context, Result, ensure};
use edetail_e2e::browser::Session;
use edetail_e2e::player::{self, testid};
use edetail_e2e::site::{Site, compile_sample, site_key};
use edetail_format::signature::{SecretKey, crypto};
use serde_json::json;

use edetail_e2e::in_both_browsers;

in_both_browsers!(device_checks_signatures);

/// The refusal reason on screen (`data-reason`), or None when the player is shown.
fn outcome(wd: &edetail_e2e::webdriver::WebDriver) -> Result<Option<String>> {
    let v = wd.js(
        "const r = document.querySelector('[data-testid=refusal]');
         return r ? r.getAttribute('data-reason') : null;",
        vec![],
    )?;
    Ok(v.as_str().map(str::to_string))
}

fn device_checks_signatures(s: &Session) -> Result<()> {
    let wd = &s.wd;
    let mut site = Site::new_with(std::path::Path::new(env!("CARGO_BIN_EXE_e2e-receiver")))?;
    let c = compile_sample("en-dosing-guide")?;
    let b = c.bundle.clone().context("bundle")?;
    let intruder = SecretKey([42u8; 32]);

    site.add_bundle("signed", &b, &c)?;
    site.add_bundle_signed("unsigned", &b, &c, |_| None)?;
    site.add_bundle_signed("untrusted", &b, &c, |h| {
        Some(crypto::sign(&intruder, h).to_json())
    })?;
    site.add_bundle_signed("forged", &b, &c, |h| {
        let mut sig = crypto::sign(&intruder, h);
        sig.key_id = site_key().public_key().key_id();
        Some(sig.to_json())
    })?;
    // A genuine signature of another bundle (another version of the deck), relabelled
    // with this bundle's hash: the signed message differs, so it does not verify.
    let mut v2 = b.clone();
    v2.deck.version = "9.9.9".into();
    let other_hash = edetail_format::sha256_hex(&v2.to_json());
    site.add_bundle_signed("relabelled", &b, &c, |h| {
        let mut sig = crypto::sign(&site_key(), &other_hash);
        sig.bundle_hash = h.to_string();
        Some(sig.to_json())
    })?;
    site.add_bundle_signed("other-bundle", &b, &c, |_| {
        Some(crypto::sign(&site_key(), &other_hash).to_json())
    })?;
    let mut preview = b.clone();
    preview.preview = true;
    site.add_bundle_signed("preview", &preview, &c, |_| None)?;
    site.start()?;

    // "signed" first: presenting registers the service worker, which then has the
    // rest of the test to install before the offline part.
    for (name, want) in [
        ("signed", None),
        ("unsigned", Some("unsigned")),
        ("untrusted", Some("untrusted-signer")),
        ("forged", Some("bad-signature")),
        ("relabelled", Some("bad-signature")),
        ("other-bundle", Some("bad-signature")),
        ("preview", None),
    ] {
        player::open(wd, &site.player_url(name, "mode=self"))?;
        let got = outcome(wd)?;
        ensure!(
            got.as_deref() == want,
            "{name}: outcome {got:?}, want {want:?}"
        );
        if want.is_some() {
            ensure!(
                wd.js("return !document.querySelector('.slide')", vec![])? == json!(true),
                "{name}: a slide is on screen behind the refusal"
            );
            let text = wd.js(
                "return document.querySelector('[data-testid=refusal]').innerText",
                vec![],
            )?;
            let text = text.as_str().unwrap_or_default();
            ensure!(
                (text.contains("cannot be shown") && text.to_lowercase().contains("sign"))
                    || text.contains("서명"),
                "{name}: refusal text does not explain: {text}"
            );
        } else {
            let shown = wd.js(
                &format!("return !!document.querySelector('{}')", testid("player")),
                vec![],
            )?;
            ensure!(shown == json!(true), "{name}: the player is not shown");
        }
    }

    // Offline: the service worker keeps bundle.sig and trusted-keys.json like
    // bundle.sha256, so the signed deck is still verified and shown with the site gone.
    player::open(wd, &site.player_url("signed", "mode=self"))?;
    // Until the worker controls the page, reload (WebKit sometimes needs a reload
    // after activation); then one more controlled load caches this deck's files.
    let mut controlled = Err(anyhow::anyhow!("not tried"));
    // Generous bounds: WebKit on a loaded machine has needed more than 4 x 10 s.
    for _ in 0..6 {
        controlled = player::wait_controlled(wd, std::time::Duration::from_secs(30));
        wd.refresh()?;
        player::wait_loaded(wd)?;
        if controlled.is_ok() {
            break;
        }
    }
    controlled.context("the service worker never controlled the page")?;
    site.stop();
    wd.refresh()?;
    player::wait_loaded(wd)?;
    let got = outcome(wd)?;
    ensure!(
        got.is_none(),
        "offline: signed deck refused ({got:?}): {}",
        wd.js("return document.body.innerText.slice(0, 300)", vec![])?
    );
    Ok(())
}
