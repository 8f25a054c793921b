// Starts the wasm player. A separate file (not inline) so the page works under a
// Content-Security-Policy without 'unsafe-inline'. Loaded as an `async` module script
// with no static import, first in <head> so that it is requested first: it runs as
// soon as it is in (without waiting for style.css, the end of parsing or the JS glue)
// and starts the downloads the player needs first. (The player mounts once <body>
// exists.)
//
// They are plain fetch() calls, kept for the player in `globalThis.__edetailEarly`
// (absolute URL -> Promise<Response>; the player takes each once, see the runtime's
// dom::fetch_buffer_within). Not <link rel="preload" as="fetch">: WebKit (iPad
// Safari) never hands a fetch preload to the page's fetch(), so every preloaded file
// was downloaded twice there (the 230 KB wasm and the bundle on each first open).

// The shell build, stamped by `cargo xtask runtime`; the player copies it into the
// snapshots it keeps, so a copy made by another build is never shown.
const SHELL = "__EDETAIL_SHELL__";
globalThis.__edetailShell = SHELL;

// A deck opened before shows at once: the player kept a copy of its first view (see
// the runtime's `snapshot` module for what is in it and why it may be shown). Shown,
// inert, only for the same page address, shell build and window size, and only inside
// the bundle's approval window (UTC dates, inclusive, as the player checks them). The
// player replaces it with its own view, or with its refusal, when it has checked the
// bundle.
let presented = null;
try {
  const all = JSON.parse(localStorage.getItem("edetail.snapshots") || "null");
  const page = location.pathname + location.search;
  const s = all && all.v === 1 && Array.isArray(all.entries) && all.entries.find((e) => e.page === page);
  const today = new Date().toISOString().slice(0, 10);
  if (s && s.shell === SHELL && s.w === innerWidth && s.h === innerHeight && s.from <= today && today <= s.until) {
    let shownAt = Infinity;
    const show = () => {
      if (document.getElementById("app")) return; // the player is up already
      shownAt = performance.now();
      const el = document.createElement("div");
      el.id = "edetail-snapshot";
      el.inert = true;
      el.setAttribute("aria-hidden", "true");
      el.innerHTML = s.html;
      document.body.prepend(el);
      const boot = document.getElementById("boot");
      if (boot) boot.remove();
      document.documentElement.lang = s.lang;
      document.title = s.title;
      performance.mark("edetail:snapshot");
      // Still no player after a second (a slow catalog, say): say it is loading.
      setTimeout(() => el.classList.add("is-waiting"), 1000);
    };
    // The player starts once the copy is on screen (a paint or largest-contentful-paint
    // entry after it: the latter when the boot screen was painted first; at most
    // 150 ms): on a 2-core device its wasm start would otherwise compete with the
    // raster of that first frame. The downloads below start at once either way.
    presented = new Promise((resolve) => {
      setTimeout(resolve, 150);
      try {
        const o = new PerformanceObserver((l) => {
          if (l.getEntries().some((e) => (e.renderTime || e.startTime) >= shownAt)) {
            o.disconnect();
            resolve();
          }
        });
        for (const type of ["paint", "largest-contentful-paint"]) {
          if ((PerformanceObserver.supportedEntryTypes || []).includes(type)) o.observe({ type, buffered: true });
        }
      } catch (e) {
        resolve();
      }
    });
    if (document.body) show();
    else document.addEventListener("DOMContentLoaded", show);
  }
} catch (e) {
  // Only an optimisation.
}

const early = new Map();
globalThis.__edetailEarly = early;
const start = (url) => {
  const p = fetch(url);
  p.catch(() => {}); // its taker reports the failure
  return p;
};

// The wasm, for the glue's init (it compiles while it streams in).
const wasm = start(new URL("edetail_runtime_bg.wasm", import.meta.url));

// The bundle and its hash for `?bundle=` links: they download while the wasm
// compiles. (Starting `bundle.sig` and `trusted-keys.json` early too was tried with
// link preloads: one load in ~300 then waited forever for `trusted-keys.json`, with
// the test server of the time; see BENCHMARKS.md.)
try {
  const b = new URLSearchParams(location.search).get("bundle");
  if (b) {
    const base = b.endsWith("/") ? b : b + "/";
    for (const f of ["bundle.sha256", "bundle.json"]) {
      const url = new URL(base + f, location.href).href;
      early.set(url, start(url));
    }
  }
} catch (e) {
  // Only an optimisation.
}

Promise.all([import("./edetail_runtime.js"), presented])
  .then(([glue]) => glue.default({ module_or_path: wasm }))
  .catch((e) => {
    const show = () => {
      const snap = document.getElementById("edetail-snapshot");
      if (snap) snap.remove();
      let boot = document.getElementById("boot");
      if (!boot) {
        boot = document.createElement("div");
        boot.id = "boot";
        document.body.append(boot);
      }
      boot.className = "refusal";
      boot.setAttribute("role", "alert");
      boot.innerHTML = "<h1>The player could not start</h1><p>This browser could not run the presentation player. Update the browser or the iPad and try again.</p>";
    };
    // The script is in <head>: the boot screen may not be parsed yet.
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", show);
    else show();
    console.error(e);
  });
