// Navigation cost and memory over a long deck. usage: node bench.js URL [WxH]
const { spawn } = require('child_process');
const WebSocket = require('ws');
const fs = require('fs');
const [url, size = '1024x768', pre = ''] = process.argv.slice(2);
const [W, H] = size.split('x').map(Number);
const port = 9800 + Math.floor(Math.random() * 100);
const dir = fs.mkdtempSync('/tmp/chrb-');
const chr = spawn('/usr/bin/chromium', ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--no-first-run', `--user-data-dir=${dir}`, `--remote-debugging-port=${port}`,
  `--window-size=${W},${H}`, 'about:blank'], { stdio: 'ignore' });
const sleep = (ms) => new Promise(r => setTimeout(r, ms));
(async () => {
  let targets;
  for (let i = 0; i < 50; i++) { try { targets = await (await fetch(`http://127.0.0.1:${port}/json`)).json(); if (targets.find(t => t.type === 'page')) break; } catch (e) {} await sleep(200); }
  const ws = new WebSocket(targets.find(t => t.type === 'page').webSocketDebuggerUrl);
  await new Promise(r => ws.on('open', r));
  let id = 0; const pending = {};
  ws.on('message', m => { const d = JSON.parse(m); if (d.id && pending[d.id]) { pending[d.id](d); delete pending[d.id]; } });
  const send = (method, params = {}) => new Promise(r => { const i = ++id; pending[i] = r; ws.send(JSON.stringify({ id: i, method, params })); });
  const ev = async (expression) => (await send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true })).result.result.value;
  await send('Performance.enable');
  await send('Page.enable');
  await send('Emulation.setDeviceMetricsOverride', { width: W, height: H, deviceScaleFactor: 1, mobile: false });
  const t0 = Date.now();
  await send('Page.navigate', { url });
  for (let i = 0; i < 100; i++) { if (await ev("!!document.querySelector('.slide.is-current')")) break; await sleep(50); }
  const firstSlideMs = Date.now() - t0;
  const metrics = async () => { await send('HeapProfiler.collectGarbage'); const m = (await send('Performance.getMetrics')).result.metrics; const g = k => m.find(x => x.name === k).value; return { heapMB: +(g('JSHeapUsedSize') / 1048576).toFixed(2), nodes: g('Nodes'), slidesMounted: await ev("document.querySelectorAll('section.slide').length") }; };
  if (pre) { await ev(pre); await sleep(300); }
  await sleep(500);
  const before = await metrics();
  const total = await ev("+document.querySelector('[data-testid=position] .pos').textContent.split('/')[1]");
  const costs = await ev(`(async () => { const out = []; const btn = () => document.querySelector('[data-testid=next]');
    for (let i = 0; i < ${total - 1}; i++) { const t = performance.now(); btn().click(); await new Promise(r => { const c = new MessageChannel(); c.port1.onmessage = r; c.port2.postMessage(0); }); out.push(performance.now() - t);
      await new Promise(r => requestAnimationFrame(() => setTimeout(r, 0))); }
    return out; })()`);
  const after = await metrics();
  const pos = await ev("document.querySelector('[data-testid=position] .pos').textContent");
  if (!Array.isArray(costs)) { console.log("total", total, "costs", JSON.stringify(costs)); }
  costs.sort((a, b) => a - b);
  const q = p => +costs[Math.min(costs.length - 1, Math.floor(p * costs.length))].toFixed(2);
  console.log(JSON.stringify({ url, size, firstSlideMs, total, pos, steps: costs.length, next_ms: { p50: q(0.5), p95: q(0.95), max: q(0.999) }, before, after }));
  ws.close(); chr.kill();
})().catch(e => { console.error(e); chr.kill(); process.exit(1); });
