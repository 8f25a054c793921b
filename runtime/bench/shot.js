// usage: node shot.js WxH URL out.png [js-steps-file]
// Steps file: JSON array of {"js": "..."} | {"wait": ms} | {"shot": "file.png"} | {"touch": [x0,y0,x1,y1]}
const { spawn } = require('child_process');
const WebSocket = require('ws');
const fs = require('fs');
const [size, url, out, stepsFile] = process.argv.slice(2);
const [W, H] = size.split('x').map(Number);
const port = 9300 + Math.floor(Math.random() * 500);
const dir = fs.mkdtempSync('/tmp/chr-');
const chr = spawn('/usr/bin/chromium', ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--no-first-run', '--hide-scrollbars', `--user-data-dir=${dir}`,
  `--remote-debugging-port=${port}`, `--window-size=${W},${H}`, 'about:blank'], { stdio: 'ignore' });
const sleep = (ms) => new Promise(r => setTimeout(r, ms));
async function main() {
  let targets;
  for (let i = 0; i < 50; i++) {
    try { targets = await (await fetch(`http://127.0.0.1:${port}/json`)).json(); if (targets.find(t => t.type === 'page')) break; } catch (e) {}
    await sleep(200);
  }
  const page = targets.find(t => t.type === 'page');
  const ws = new WebSocket(page.webSocketDebuggerUrl);
  await new Promise(r => ws.on('open', r));
  let id = 0; const pending = {};
  const logs = [];
  ws.on('message', m => { const d = JSON.parse(m); if (d.id && pending[d.id]) { pending[d.id](d); delete pending[d.id]; }
    if (d.method === 'Runtime.consoleAPICalled') logs.push(d.params.args.map(a => a.value ?? a.description).join(' '));
    if (d.method === 'Runtime.exceptionThrown') logs.push('EXC ' + JSON.stringify(d.params.exceptionDetails.exception?.description || d.params.exceptionDetails.text)); });
  const send = (method, params = {}) => new Promise(r => { const i = ++id; pending[i] = r; ws.send(JSON.stringify({ id: i, method, params })); });
  await send('Runtime.enable');
  await send('Page.enable');
  await send('Emulation.setDeviceMetricsOverride', { width: W, height: H, deviceScaleFactor: 1, mobile: false });
  await send('Page.navigate', { url });
  await sleep(2500);
  const steps = stepsFile ? JSON.parse(fs.readFileSync(stepsFile, 'utf8')) : [];
  const shot = async (f) => { const r = await send('Page.captureScreenshot', { format: 'png' }); fs.writeFileSync(f, Buffer.from(r.result.data, 'base64')); };
  for (const s of steps) {
    if (s.js) { const r = await send('Runtime.evaluate', { expression: s.js, awaitPromise: true, returnByValue: true }); if (s.print) console.log(JSON.stringify(r.result.result?.value ?? r.result)); await sleep(s.after ?? 400); }
    if (s.wait) await sleep(s.wait);
    if (s.shot) await shot(s.shot);
    if (s.touch) { const [x0, y0, x1, y1] = s.touch;
      await send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: [{ x: x0, y: y0 }] });
      for (let k = 1; k <= 5; k++) await send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: [{ x: x0 + (x1 - x0) * k / 5, y: y0 + (y1 - y0) * k / 5 }] });
      await send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] }); await sleep(500); }
    if (s.key) { for (const t of ['keyDown', 'keyUp']) await send('Input.dispatchKeyEvent', { type: t, key: s.key, code: s.code || s.key, windowsVirtualKeyCode: s.vk || 0 }); await sleep(400); }
  }
  if (out && out !== '-') await shot(out);
  if (logs.length) console.error('console:', logs.join('\n'));
  ws.close(); chr.kill();
}
main().catch(e => { console.error(e); chr.kill(); process.exit(1); });
