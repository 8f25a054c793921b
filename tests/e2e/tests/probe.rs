use edetail_e2e::browser::{Browser, LaunchOptions, launch};
use edetail_e2e::player;
use edetail_e2e::site::{Site, compile_sample};
use edetail_e2e::webdriver::PointerKind;

#[test]
#[ignore]
fn probe() {
    let b = match std::env::var("B").as_deref() { Ok("webkit") => Browser::WebKit, _ => Browser::Chromium };
    let mut site = Site::new().unwrap();
    let c = compile_sample("ko-zentara-launch").unwrap();
    site.add_bundle("ko", c.bundle.as_ref().unwrap(), &c).unwrap();
    site.start().unwrap();
    let s = launch(b, &LaunchOptions::default()).unwrap();
    let wd = &s.wd;
    wd.set_viewport(1024, 768).unwrap();
    player::open(wd, &site.player_url("ko", "mode=mr")).unwrap();
    player::enter(wd, "h-probe").unwrap();
    println!("current {}", player::current(wd).unwrap());
    wd.js("window.__log=[]; for (const t of ['pointerdown','pointerup','pointercancel','touchstart','touchend','mousedown']) document.addEventListener(t, e => window.__log.push(t+':'+(e.pointerType||'')), true); return 1", vec![]).unwrap();
    for k in [PointerKind::Touch, PointerKind::Pen, PointerKind::Mouse] {
        let r = wd.drag(k, (700.0, 400.0), (300.0, 400.0), 8);
        std::thread::sleep(std::time::Duration::from_millis(300));
        println!("{k:?}: {r:?} -> {} {}", player::current(wd).unwrap(), wd.js("const l=window.__log; window.__log=[]; return l.join(' ')", vec![]).unwrap());
    }
    let r = wd.press(edetail_e2e::webdriver::keys::ARROW_RIGHT);
    std::thread::sleep(std::time::Duration::from_millis(300));
    println!("key: {r:?} -> {}", player::current(wd).unwrap());
    println!("outbox {:?}", player::outbox_ids(wd).map(|v| v.len()));
    std::fs::write("/tmp/probe.png", wd.screenshot().unwrap()).unwrap();
}
