/* edetail service worker: the runtime shell and every opened bundle work offline.
 *
 * Plain JS, no build step. Served from the app root (dist/www/sw.js) next to
 * precache.json, which `cargo xtask runtime` writes:
 *   {"version": "<changes whenever a shell file changes>", "files": ["./", "index.html", ...]}
 *
 * Strategies
 * - Shell (same-origin GETs that are not bundles and not /api/): served from the
 *   current versioned shell cache (one consistent version of index.html + JS + wasm),
 *   with the network as fallback for anything not cached (and cached then).
 *   Stale-while-revalidate at the version level: after a page load the worker
 *   re-reads precache.json; a new version is downloaded completely into a new cache,
 *   then switched to atomically, old shell caches are deleted, and open pages get a
 *   {type: "edetail-update-ready", version} message. The next load runs the new version.
 * - Bundle files are cached by URL without query (cache-busting queries still work offline).
 * - Bundle assets (/assets/<64 hex>.<ext>, content-addressed, any origin): cache-first,
 *   forever. Range requests (video) are answered from the cached, verified file; on a
 *   miss the whole file is downloaded once (shared by concurrent range requests),
 *   verified, cached, and the range is cut from that copy: no unverified byte of a
 *   video is ever played.
 *   Integrity: a downloaded asset is cached only when the SHA-256 of its bytes equals
 *   the 64 hex digits of its name. On a mismatch nothing is cached, open pages get
 *   {type: "edetail-integrity", url}, elements (<img>, <video>, ...) get a 502, and a
 *   page's own fetch() gets the bytes with `X-Edetail-Integrity: mismatch` so the
 *   runtime's check (format::bundle::verify_asset) shows its refusal. Opaque
 *   (cross-origin, no CORS) answers cannot be read and are cached unverified.
 * - Messages: {type: "edetail-cache", urls: [...]} from a page caches those bundle files
 *   and assets (verified) now. The runtime sends the bundle URLs it fetched before this
 *   worker controlled it (first visit), so the deck opens offline from the next load.
 * - bundle.json / bundle.sha256 / bundle.sig and the app's trusted-keys.json:
 *   network-first (4 s timeout), cache fallback, so a deck opened once starts offline
 *   (signature checked) and a republished one is picked up online; for 5 s after this
 *   worker's last request failed to reach the network, straight from the cache.
 * - Never touched: non-GET requests (event uploads), /api/ URLs, other cross-origin GETs.
 */
'use strict';

const SHELL_PREFIX = 'edetail-shell-';
const RUNTIME_SHELL = 'edetail-shell-runtime';
const BUNDLE_CACHE = 'edetail-bundles-v1';
const META_CACHE = 'edetail-meta';
const META_KEY = '/__edetail/shell-version';
const NETWORK_TIMEOUT_MS = 4000;
const UPDATE_CHECK_EVERY_MS = 60 * 1000;

const ASSET_RE = /\/assets\/[0-9a-f]{64}(\.[A-Za-z0-9]+)?$/;
const BUNDLE_META_RE = /\/(bundle\.(json|sha256|sig)|trusted-keys\.json)$/;

let lastUpdateCheck = 0;
let updating = null;

/* When a network request of this worker last failed to reach the server (offline, or
 * the server down). For NETWORK_DOWN_MS after that, bundle meta files are answered
 * from the cache without trying the network first: starting a deck offline then
 * costs one failed attempt per file, not one per file and page load (each attempt is
 * a few ms of this worker's thread on the start's critical path). Any response from
 * the network clears it; a republished bundle is picked up on the first load after
 * the network is back, as before. */
const NETWORK_DOWN_MS = 5000;
let networkDownAt = 0;

function networkFailed() {
  networkDownAt = Date.now();
}

function networkAnswered() {
  networkDownAt = 0;
}

function networkRecentlyDown() {
  return (self.navigator && self.navigator.onLine === false) || Date.now() - networkDownAt < NETWORK_DOWN_MS;
}

/* Each cache opened once per worker start (every open is a round trip to the browser
 * process); deleting a cache drops its entry. */
const opened = new Map();

function openCache(name) {
  let p = opened.get(name);
  if (!p) {
    p = caches.open(name);
    opened.set(name, p);
    p.catch(() => opened.delete(name));
  }
  return p;
}

function deleteCache(name) {
  opened.delete(name);
  return caches.delete(name);
}

function scopeUrl(path) {
  return new URL(path, self.registration.scope).href;
}

/* The current shell version, read from META_CACHE once per worker start (every shell
 * request of a page load needs it: re-reading the cache each time cost a few ms each on
 * the start from the caches) and kept in step by setCurrentVersion. */
let versionRead = null;

function currentVersion() {
  if (!versionRead) {
    versionRead = (async () => {
      const meta = await openCache(META_CACHE);
      const r = await meta.match(META_KEY);
      return r ? r.text() : null;
    })();
    versionRead.catch(() => {
      versionRead = null;
    });
  }
  return versionRead;
}

async function setCurrentVersion(version) {
  const meta = await openCache(META_CACHE);
  await meta.put(META_KEY, new Response(version, { headers: { 'Content-Type': 'text/plain' } }));
  versionRead = Promise.resolve(version);
}

async function fetchManifest() {
  const r = await networkFetch(scopeUrl('precache.json'), { cache: 'no-store' });
  if (!r.ok) throw new Error('precache.json: HTTP ' + r.status);
  const m = await r.json();
  if (typeof m.version !== 'string' || !Array.isArray(m.files)) {
    throw new Error('precache.json: expected {version, files}');
  }
  return m;
}

/* Download every shell file of `manifest` into its own cache, then switch to it. */
async function installVersion(manifest) {
  const name = SHELL_PREFIX + manifest.version;
  const cache = await openCache(name);
  // `reload` bypasses the HTTP cache so a new version never mixes in old bytes.
  await cache.addAll(manifest.files.map((f) => new Request(scopeUrl(f), { cache: 'reload' })));
  await setCurrentVersion(manifest.version);
  await deleteOldShells(name);
  // Files cached on the fly belonged to the old version.
  await deleteCache(RUNTIME_SHELL);
  return manifest.version;
}

async function deleteOldShells(keep) {
  const names = await caches.keys();
  await Promise.all(
    names
      .filter((n) => n.startsWith(SHELL_PREFIX) && n !== keep && n !== RUNTIME_SHELL)
      .map((n) => deleteCache(n)),
  );
}

async function checkForUpdate() {
  if (updating) return updating;
  if (Date.now() - lastUpdateCheck < UPDATE_CHECK_EVERY_MS) return null;
  lastUpdateCheck = Date.now();
  updating = (async () => {
    try {
      const m = await fetchManifest();
      if (m.version === (await currentVersion())) return null;
      const v = await installVersion(m);
      const clients = await self.clients.matchAll({ type: 'window' });
      clients.forEach((c) => c.postMessage({ type: 'edetail-update-ready', version: v }));
      return v;
    } catch (e) {
      return null; // offline or no manifest: keep what we have
    } finally {
      updating = null;
    }
  })();
  return updating;
}

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      try {
        await installVersion(await fetchManifest());
      } catch (e) {
        // No precache.json (e.g. a dev build): fall back to caching what pages load.
        console.warn('edetail sw: precache skipped:', e && e.message);
      }
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      const v = await currentVersion();
      if (v) await deleteOldShells(SHELL_PREFIX + v);
      // Caches of older worker generations with other names.
      const names = await caches.keys();
      await Promise.all(
        names
          .filter((n) => n.startsWith('edetail-bundles-') && n !== BUNDLE_CACHE)
          .map((n) => deleteCache(n)),
      );
      await self.clients.claim();
    })(),
  );
});

/* fetch(), noting whether the network answered (see networkDownAt). */
async function networkFetch(req, init) {
  try {
    const r = await fetch(req, init);
    networkAnswered();
    return r;
  } catch (e) {
    networkFailed();
    throw e;
  }
}

function withTimeout(promise, ms) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('timeout')), ms);
    promise.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

/* Cache key: the URL without query or fragment (cache-busting queries must not defeat
 * offline use; bundle files are identified by their path). */
function keyOf(req) {
  const u = new URL(req.url);
  return u.origin + u.pathname;
}

function hex(buf) {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
}

/* The 64 hex digits of an asset URL (its SHA-256). */
function expectedHash(url) {
  const m = /\/assets\/([0-9a-f]{64})(\.[A-Za-z0-9]+)?$/.exec(new URL(url).pathname);
  return m ? m[1] : null;
}

async function bytesMatch(buf, url) {
  const want = expectedHash(url);
  if (!want) return false;
  return hex(await crypto.subtle.digest('SHA-256', buf)) === want;
}

async function reportIntegrity(url, clientId) {
  const list = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  list
    .filter((c) => !clientId || c.id === clientId)
    .forEach((c) => c.postMessage({ type: 'edetail-integrity', url }));
}

/* Fetch an asset from the network, verify it and cache it when it matches.
 * Returns {response, verified: true|false|null (opaque, unreadable)}. */
async function fetchVerifiedAsset(cache, key, request) {
  const r = await fetch(request);
  if (r.type === 'opaque') {
    await cache.put(key, r.clone());
    return { response: r, verified: null };
  }
  if (!(r.ok && r.status === 200)) return { response: r, verified: null };
  const buf = await r.arrayBuffer();
  // The body is decoded: drop the network's length/encoding headers.
  const headers = new Headers(r.headers);
  headers.delete('Content-Length');
  headers.delete('Content-Encoding');
  const init = { status: r.status, statusText: r.statusText, headers };
  if (!(await bytesMatch(buf, key))) return { response: new Response(buf, init), verified: false };
  await cache.put(key, new Response(buf, init));
  return { response: new Response(buf, init), verified: true };
}

function integrityFailure(req, bad) {
  if (req.destination === '') {
    // The page's own fetch(): hand it the bytes (uncached); the runtime verifies them
    // against the manifest and shows the integrity refusal.
    const headers = new Headers(bad.headers);
    headers.set('X-Edetail-Integrity', 'mismatch');
    return new Response(bad.body, { status: bad.status, statusText: bad.statusText, headers });
  }
  return new Response('asset bytes do not match their sha256 name', {
    status: 502,
    statusText: 'Integrity Mismatch',
    headers: { 'Content-Type': 'text/plain', 'X-Edetail-Integrity': 'mismatch' },
  });
}

/* In-flight verified downloads of range-requested assets, by cache key. */
const inflight = new Map();

/* Download the whole asset once however many range requests wait for it, verify it
 * and cache it when it matches. Resolves to {buf, init, verified: true|false} or
 * {status, verified: null} (not a 200). Rejects when the network fails. */
function verifiedDownload(cache, key) {
  let p = inflight.get(key);
  if (!p) {
    p = (async () => {
      const r = await fetch(new Request(key, { mode: 'cors', credentials: 'same-origin' }));
      if (!(r.ok && r.status === 200)) return { status: r.status, verified: null };
      const buf = await r.arrayBuffer();
      const headers = new Headers(r.headers);
      headers.delete('Content-Length');
      headers.delete('Content-Encoding');
      const init = { status: 200, statusText: r.statusText, headers };
      const verified = await bytesMatch(buf, key);
      if (verified) await cache.put(key, new Response(buf, init));
      return { buf, init, verified };
    })().finally(() => inflight.delete(key));
    inflight.set(key, p);
  }
  return p;
}

/* A range request (video, audio) for an asset not cached yet: answer it from the
 * verified whole file, never from unverified network bytes. */
async function verifiedRange(event, cache, key, range) {
  let got;
  try {
    got = await verifiedDownload(cache, key);
  } catch (e) {
    return new Response('asset could not be fetched', { status: 504, statusText: 'Gateway Timeout' });
  }
  if (got.verified === true) return rangeResponse(new Response(got.buf, got.init), range);
  if (got.verified === false) {
    event.waitUntil(reportIntegrity(key, event.clientId));
    return integrityFailure(event.request, new Response(got.buf, got.init));
  }
  return new Response('', { status: got.status || 502 });
}

/* Content-addressed asset: cache-first, stored forever (only once verified). */
async function assetResponse(event) {
  const req = event.request;
  const cache = await openCache(BUNDLE_CACHE);
  const key = keyOf(req);
  const cached = await cache.match(key);
  const range = req.headers.get('range');
  if (cached) return range && cached.type !== 'opaque' ? rangeResponse(cached, range) : cached;
  if (range) return verifiedRange(event, cache, key, range);
  const got = await fetchVerifiedAsset(cache, key, req);
  if (got.verified === false) {
    event.waitUntil(reportIntegrity(key, event.clientId || event.resultingClientId));
    return integrityFailure(req, got.response);
  }
  return got.response;
}

/* {type: "edetail-cache", urls}: cache bundle files and assets a page fetched before
 * this worker controlled it. */
async function cacheUrls(urls, clientId) {
  const cache = await openCache(BUNDLE_CACHE);
  for (const u of urls) {
    let url;
    try {
      url = new URL(u, self.registration.scope);
    } catch (e) {
      continue;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') continue;
    if (url.pathname.includes('/api/')) continue;
    const key = url.origin + url.pathname;
    try {
      if (ASSET_RE.test(url.pathname)) {
        if (await cache.match(key)) continue;
        const got = await fetchVerifiedAsset(cache, key, new Request(key, { mode: 'cors', credentials: 'same-origin' }));
        if (got.verified === false) await reportIntegrity(key, clientId);
      } else if (BUNDLE_META_RE.test(url.pathname)) {
        const r = await fetch(url.href, { credentials: 'same-origin' });
        if (r.ok && r.status === 200) await cache.put(key, r);
      }
    } catch (e) {
      // Offline or refused: the next online load caches it through the fetch handler.
    }
  }
}

self.addEventListener('message', (event) => {
  const d = event.data;
  if (!d || d.type !== 'edetail-cache' || !Array.isArray(d.urls)) return;
  const clientId = event.source && event.source.id;
  const done = cacheUrls(d.urls.slice(0, 500), clientId).then(() => {
    if (event.source) event.source.postMessage({ type: 'edetail-cached', count: d.urls.length });
  });
  event.waitUntil(done);
});

/* Answer `bytes=a-b` from a cached full response. */
async function rangeResponse(full, range) {
  const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
  const blob = await full.blob();
  const size = blob.size;
  if (!m || (m[1] === '' && m[2] === '')) return full;
  let start;
  let end;
  if (m[1] === '') {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || start > end) {
    return new Response('', { status: 416, headers: { 'Content-Range': 'bytes */' + size } });
  }
  const headers = new Headers(full.headers);
  headers.set('Content-Range', 'bytes ' + start + '-' + end + '/' + size);
  headers.set('Content-Length', String(end - start + 1));
  return new Response(blob.slice(start, end + 1), { status: 206, statusText: 'Partial Content', headers });
}

/* bundle.json / bundle.sha256 / bundle.sig / trusted-keys.json: network-first with
 * timeout, cache fallback (looked up meanwhile); straight from the cache while the
 * network is known to be down (networkRecentlyDown). */
async function bundleMetaResponse(event) {
  const req = event.request;
  const key = keyOf(req);
  const cachedP = openCache(BUNDLE_CACHE).then((cache) => cache.match(key));
  cachedP.catch(() => {});
  if (networkRecentlyDown()) {
    const cached = await cachedP.catch(() => null);
    if (cached) return cached;
  }
  try {
    const r = await withTimeout(networkFetch(req), NETWORK_TIMEOUT_MS);
    if (r.ok && r.status === 200) {
      const copy = r.clone(); // now: the page consumes `r` as soon as it is returned
      event.waitUntil(openCache(BUNDLE_CACHE).then((cache) => cache.put(key, copy)));
      return r;
    }
    const cached = await cachedP;
    return cached || r;
  } catch (e) {
    if (e && e.message === 'timeout') networkFailed();
    const cached = await cachedP;
    if (cached) return cached;
    throw e;
  }
}

/* Shell: the current version's cache first, network for the rest. */
async function shellResponse(event) {
  const req = event.request;
  const isNav = req.mode === 'navigate';
  event.waitUntil(checkForUpdate());
  const v = await currentVersion();
  if (v) {
    const shell = await openCache(SHELL_PREFIX + v);
    const hit =
      (await shell.match(req, { ignoreSearch: isNav })) ||
      (isNav ? (await shell.match(scopeUrl('index.html'))) || (await shell.match(scopeUrl('./'))) : null);
    if (hit) return hit;
  }
  const runtime = await openCache(RUNTIME_SHELL);
  try {
    const r = await withTimeout(networkFetch(req), NETWORK_TIMEOUT_MS);
    if (r.ok && r.status === 200 && r.type === 'basic') event.waitUntil(runtime.put(req, r.clone()));
    return r;
  } catch (e) {
    const cached = await runtime.match(req, { ignoreSearch: isNav });
    if (cached) return cached;
    throw e;
  }
}

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET') return; // event uploads and anything else: network only
  let url;
  try {
    url = new URL(req.url);
  } catch (e) {
    return;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return;
  if (url.pathname.includes('/api/')) return; // never cache the API (ingest, catalog)
  if (ASSET_RE.test(url.pathname)) {
    event.respondWith(assetResponse(event));
    return;
  }
  if (BUNDLE_META_RE.test(url.pathname)) {
    event.respondWith(bundleMetaResponse(event));
    return;
  }
  if (url.origin !== self.location.origin) return;
  if (url.pathname.endsWith('/sw.js') || url.pathname.endsWith('/precache.json')) return;
  event.respondWith(shellResponse(event));
});
