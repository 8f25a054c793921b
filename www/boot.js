// Starts the wasm player. A separate file (not inline) so the page works under a
// Content-Security-Policy without 'unsafe-inline'. Loaded as an `async` module
// script: it runs (and the wasm compiles, and the bundle downloads) as soon as it and
// the JS glue are in, without waiting for style.css or the end of parsing, which a
// deferred (plain module) script must; on a cold start that was ~30 ms of waiting.
import init from "./edetail_runtime.js";

// Fetch the bundle while the wasm downloads and compiles: the player's own requests
// for the same URLs (`?bundle=` links, no Authorization header) are answered from
// these preloads instead of starting only once the wasm runs. (Preloading
// `bundle.sig` and `trusted-keys.json` too was tried twice: one load in ~150 then
// waited forever for `trusted-keys.json` with the e2e test server, see BENCHMARKS.md;
// reproduced with this async boot, 1 cold load in ~300.)
try {
  const b = new URLSearchParams(location.search).get("bundle");
  if (b) {
    const base = b.endsWith("/") ? b : b + "/";
    for (const f of ["bundle.sha256", "bundle.json"]) {
      const l = document.createElement("link");
      l.rel = "preload";
      l.as = "fetch";
      l.crossOrigin = "anonymous";
      l.href = base + f;
      document.head.appendChild(l);
    }
  }
} catch (e) {
  // Only an optimisation.
}

init().catch((e) => {
  const boot = document.getElementById("boot");
  if (boot) {
    boot.className = "refusal";
    boot.setAttribute("role", "alert");
    boot.innerHTML = "<h1>The player could not start</h1><p>This browser could not run the presentation player. Update the browser or the iPad and try again.</p>";
  }
  console.error(e);
});
