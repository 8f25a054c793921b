// Starts the wasm player. A separate file (not inline) so the page works under a
// Content-Security-Policy without 'unsafe-inline'.
import init from "./edetail_runtime.js";
init().catch((e) => {
  const boot = document.getElementById("boot");
  if (boot) {
    boot.className = "refusal";
    boot.setAttribute("role", "alert");
    boot.innerHTML = "<h1>The player could not start</h1><p>This browser could not run the presentation player. Update the browser or the iPad and try again.</p>";
  }
  console.error(e);
});
