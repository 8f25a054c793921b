// Floor reference for runtime_bench (see BENCHMARKS.md, "Floor"): the same slide markup, classes and
// transition as the player, changed by a few lines of plain JS (no framework, no
// tracking, no bar). Each change mounts the new next slide and drops the old previous.
const canvas = document.getElementById('canvas');
const slide = (i) => {
  const s = document.createElement('section');
  s.className = 'slide layout-default';
  s.dataset.slideId = 's' + i;
  s.innerHTML = `<div class="slide-body"><h1>Slide ${i}: a key message</h1>
  <p>Body text of slide ${i}, a sentence or two long, with <strong>bold</strong> words and a citation<sup class="cite">1</sup>.</p>
  <ul><li>First point of slide ${i}</li><li>Second point</li><li>Third point with more words in it</li></ul>
  <table><thead><tr><th>Arm</th><th>Result</th></tr></thead><tbody><tr><td>A</td><td>${i}.1%</td></tr><tr><td>B</td><td>${i}.7%</td></tr></tbody></table></div>
  <footer class="slide-foot"><span class="code">CODE-${i}</span></footer>`;
  return s;
};
let cur = 0;
const mounted = new Map();
const render = () => {
  for (const [i, el] of mounted) if (i < cur - 1 || i > cur + 1) { el.remove(); mounted.delete(i); }
  for (const i of [cur - 1, cur, cur + 1]) {
    if (i < 0) continue;
    if (!mounted.has(i)) { const el = slide(i); mounted.set(i, el); canvas.appendChild(el); }
    const el = mounted.get(i);
    el.classList.toggle('is-prev', i < cur);
    el.classList.toggle('is-current', i === cur);
    el.classList.toggle('is-next', i > cur);
    el.inert = i !== cur;
  }
};
render();
addEventListener('keydown', (e) => { if (e.key === 'ArrowRight') { cur++; render(); } });
// As the player does, a service worker (the shell's own sw.js) once the slide is shown,
// so the benchmark's start from the service-worker cache runs on this page too.
if ('serviceWorker' in navigator) setTimeout(() => navigator.serviceWorker.register('sw.js'), 1000);
