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

import("./edetail_runtime.js")
  .then((glue) => glue.default({ module_or_path: wasm }))
  .catch((e) => {
    const show = () => {
      const boot = document.getElementById("boot");
      if (boot) {
        boot.className = "refusal";
        boot.setAttribute("role", "alert");
        boot.innerHTML = "<h1>The player could not start</h1><p>This browser could not run the presentation player. Update the browser or the iPad and try again.</p>";
      }
    };
    // The script is in <head>: the boot screen may not be parsed yet.
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", show);
    else show();
    console.error(e);
  });
