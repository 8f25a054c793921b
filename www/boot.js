// Starts the wasm player. A separate file (not inline) so the page works under a
// Content-Security-Policy without 'unsafe-inline'.
import init from "./edetail_runtime.js";

// Fetch the bundle, its signature and the app's trusted keys while the wasm downloads
// and compiles: the player's own requests for the same URLs (`?bundle=` links, no
// Authorization header) are answered from these preloads instead of starting only
// once the wasm runs. Preview links carry unsigned bundles: no signature files.
try {
  const q = new URLSearchParams(location.search);
  const b = q.get("bundle");
  if (b) {
    const base = b.endsWith("/") ? b : b + "/";
    const files = [base + "bundle.sha256", base + "bundle.json"];
    if (q.get("mode") !== "preview") files.push(base + "bundle.sig", "trusted-keys.json");
    for (const f of files) {
      const l = document.createElement("link");
      l.rel = "preload";
      l.as = "fetch";
      l.crossOrigin = "anonymous";
      l.href = f;
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
