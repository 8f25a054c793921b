#!/usr/bin/env bash
# Run the runtime's wasm-bindgen tests (runtime/tests/*.rs) in real browsers:
# headless Chromium (chromedriver) and WebKit (WebKitGTK's WebKitWebDriver, under
# xvfb-run when there is no display).
#
#   runtime/run-wasm-tests.sh [chrome|webkit|all] [test-name ...]
#
# Defaults: all browsers, every file in runtime/tests/, plus the service-worker offline
# test (tests/receiver/tests/sw_offline.rs; name it `sw_offline` to run it alone).
# Driver locations can be forced
# with CHROMEDRIVER=/path and SAFARIDRIVER=/path (wasm-bindgen-test-runner reads both;
# WebKitWebDriver is driven through its "safaridriver" support). Fails loudly when a
# browser, driver or the runner is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

browsers="${1:-all}"
shift || true
case "$browsers" in
  chrome | webkit | all) ;;
  *) echo "usage: $0 [chrome|webkit|all] [test-name ...]" >&2; exit 2 ;;
esac

die() { echo "run-wasm-tests: $*" >&2; exit 1; }

export PATH="$HOME/.cargo/bin:$PATH"
command -v wasm-bindgen-test-runner >/dev/null \
  || die "wasm-bindgen-test-runner not found (cargo install wasm-bindgen-cli --version 0.2.130, or cargo xtask setup)"
rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown \
  || die "the wasm32-unknown-unknown target is not installed (rustup target add wasm32-unknown-unknown)"
want=$(sed -n 's/^wasm-bindgen = "=\(.*\)"/\1/p' runtime/Cargo.toml)
have=$(wasm-bindgen-test-runner --version 2>/dev/null | awk '{print $2}')
if [ -n "$want" ] && [ "$want" != "$have" ]; then
  die "wasm-bindgen-test-runner is $have but runtime/Cargo.toml pins wasm-bindgen $want"
fi

run_sw=1
if [ "$#" -gt 0 ]; then
  tests=()
  run_sw=0
  for t in "$@"; do
    if [ "$t" = sw_offline ]; then run_sw=1; else tests+=("$t"); fi
  done
else
  tests=()
  for f in runtime/tests/*.rs; do tests+=("$(basename "$f" .rs)"); done
fi
test_args=()
for t in "${tests[@]}"; do test_args+=(--test "$t"); done

# The test receiver (tests/receiver) for tests that talk to a real server; its URL is
# baked into those tests at build time (EDETAIL_TEST_RECEIVER).
receiver_pid=""
receiver_tmp=""
cleanup() {
  if [ -n "$receiver_pid" ]; then kill "$receiver_pid" 2>/dev/null || true; fi
  if [ -n "$receiver_tmp" ]; then rm -rf "$receiver_tmp"; fi
}
trap cleanup EXIT
cargo build -q -p edetail-test-receiver || die "could not build the test receiver"
receiver_bin="${CARGO_TARGET_DIR:-target}/debug/edetail-test-receiver"
[ -x "$receiver_bin" ] || die "test receiver binary not found at $receiver_bin"
receiver_tmp=$(mktemp -d)
"$receiver_bin" --port 0 --out "$receiver_tmp/events.jsonl" --token test-token \
  >"$receiver_tmp/log" 2>&1 &
receiver_pid=$!
for _ in $(seq 1 100); do
  grep -q '^listening on ' "$receiver_tmp/log" 2>/dev/null && break
  sleep 0.1
done
EDETAIL_TEST_RECEIVER=$(sed -n 's/^listening on //p' "$receiver_tmp/log" | head -n1)
[ -n "$EDETAIL_TEST_RECEIVER" ] || die "test receiver did not start: $(cat "$receiver_tmp/log")"
export EDETAIL_TEST_RECEIVER
echo "== test receiver at $EDETAIL_TEST_RECEIVER"

export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
export WASM_BINDGEN_TEST_ONLY_WEB=1
export WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-120}"

run_chrome() {
  local driver="${CHROMEDRIVER:-$(command -v chromedriver || true)}"
  [ -n "$driver" ] && [ -x "$driver" ] || die "chromedriver not found (apt-get install chromium-driver, or set CHROMEDRIVER)"
  command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null \
    || die "no Chromium/Chrome browser found for chromedriver"
  if [ "${#test_args[@]}" -gt 0 ]; then
    echo "== wasm tests in Chromium ($driver)"
    env -u SAFARIDRIVER -u GECKODRIVER CHROMEDRIVER="$driver" \
      cargo test --target wasm32-unknown-unknown -p edetail-runtime "${test_args[@]}"
  fi
  if [ "$run_sw" = 1 ]; then
    echo "== service worker offline test in Chromium"
    EDETAIL_BROWSER=chrome CHROMEDRIVER="$driver" \
      cargo test -p edetail-test-receiver --test sw_offline -- --ignored
  fi
}

run_webkit() {
  local driver="${SAFARIDRIVER:-$(command -v WebKitWebDriver || true)}"
  [ -n "$driver" ] && [ -x "$driver" ] || die "WebKitWebDriver not found (apt-get install webkit2gtk-driver, or set SAFARIDRIVER)"
  local wrap=()
  if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
    command -v xvfb-run >/dev/null || die "WebKit needs a display: install xvfb (xvfb-run) or set DISPLAY"
    wrap=(xvfb-run -a)
  fi
  if [ "${#test_args[@]}" -gt 0 ]; then
    echo "== wasm tests in WebKit ($driver)"
    env -u CHROMEDRIVER -u GECKODRIVER SAFARIDRIVER="$driver" \
      "${wrap[@]}" cargo test --target wasm32-unknown-unknown -p edetail-runtime "${test_args[@]}"
  fi
  if [ "$run_sw" = 1 ]; then
    echo "== service worker offline test in WebKit"
    EDETAIL_BROWSER=webkit SAFARIDRIVER="$driver" \
      "${wrap[@]}" cargo test -p edetail-test-receiver --test sw_offline -- --ignored
  fi
}

case "$browsers" in
  chrome) run_chrome ;;
  webkit) run_webkit ;;
  all) run_chrome; run_webkit ;;
esac
echo "== wasm tests passed ($browsers)"
