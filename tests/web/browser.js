// browser.js: the dashboard in a real browser (Debian's chromium, driven by
// playwright-core), against the lash-web, Redis and workers that run.sh started.
// Each check compares what the page shows with what Redis holds.
'use strict';
const { chromium } = require('playwright-core');
const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const URL = process.env.WEB_URL;
const SOCK = process.env.WEB_SOCK;
const TOKEN = process.env.LASH_WEB_TOKEN;
const ROOT = process.env.WEB_ROOT;
const failures = [];

function check(cond, what) {
  if (!cond) { failures.push(what); console.log('FAIL: ' + what); }
}
function redis(...args) {
  return execFileSync('redis-cli', ['-s', SOCK, '--raw', ...args], { encoding: 'utf8' }).trim();
}
function stats(q) {
  const a = redis('HGETALL', `lash:{${q}}:stats`).split('\n');
  const o = {};
  for (let i = 0; i + 1 < a.length; i += 2) o[a[i]] = parseInt(a[i + 1], 10);
  return o;
}
async function until(what, fn, ms = 15000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) { check(false, 'timed out: ' + what); return v; }
    await new Promise((r) => setTimeout(r, 100));
  }
}

(async () => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'lash-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await ctx.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('dialog', (d) => { failures.push('a dialog opened: ' + d.message()); d.dismiss(); });

    // ---- load: the counts shown are Redis's ----
    let t0 = Date.now();
    await page.goto(URL);
    await page.waitForSelector('#queues tr[data-queue="web"]');
    console.log(`page loaded with its queues in ${Date.now() - t0} ms`);
    await page.click('#queues tr[data-queue="web"]');
    await until('web selected', async () => (await page.textContent('#procs-queue')) === 'web');
    const s = stats('web');
    for (const st of ['pending', 'running', 'completed', 'failed', 'cancelled', 'abandoned']) {
      const shown = await page.textContent(`#queues tr[data-queue="web"] td[data-k="${st}"]`);
      check(parseInt(shown, 10) === (s[st] || 0), `web ${st}: shown ${shown}, Redis ${s[st] || 0}`);
    }
    const workersShown = await page.$$eval('#workers tbody tr[data-worker]', (rs) => rs.length);
    const workersRedis = redis('ZCARD', 'lash:{web}:workers');
    check(workersShown === parseInt(workersRedis, 10), `workers shown ${workersShown}, Redis ${workersRedis}`);

    // ---- paging through the completed processes: every one once ----
    await page.selectOption('#state', 'completed');
    const seen = new Set();
    let pages = 0;
    for (;;) {
      await until('a page of completed rows', async () => {
        const states = await page.$$eval('#procs tbody tr', (rs) => rs.map((r) => r.getAttribute('data-state')));
        return states.length > 0 && states.every((x) => x === 'completed');
      });
      const ids = await page.$$eval('#procs tbody tr', (rs) => rs.map((r) => r.getAttribute('data-id')));
      for (const id of ids) { check(!seen.has(id), 'seen twice: ' + id); seen.add(id); }
      pages++;
      if (await page.isDisabled('#next')) break;
      const first = ids[0];
      await page.click('#next');
      await until('the next page', async () =>
        (await page.getAttribute('#procs tbody tr:first-child', 'data-id')) !== first);
    }
    check(seen.size === s.completed, `paged ${seen.size} completed rows, Redis has ${s.completed}`);
    check(pages === Math.ceil(s.completed / 50), `${pages} pages`);
    console.log(`paged ${seen.size} completed processes in ${pages} pages`);

    // ---- one process ----
    await page.selectOption('#state', 'failed');
    await page.waitForSelector('#procs tr[data-id="flaky-1"]');
    await page.click('#procs tr[data-id="flaky-1"]');
    await page.waitForSelector('#detail:not([hidden])');
    check((await page.textContent('#record dd[data-k="state"]')) === 'failed', 'detail shows failed');
    check((await page.textContent('#error')).includes('dependency is missing'), 'detail shows the error');
    const events = await page.$$eval('#events tbody tr', (rs) => rs.map((r) => r.children[1].textContent));
    check(events.includes('submitted') && events.includes('failed'), 'events: ' + events.join(','));

    // ---- retry without the token: refused, nothing changes ----
    fs.writeFileSync(process.env.WEB_TMP + '/allow', 'yes');
    await page.click('#retry');
    await until('refusal shown', async () => (await page.textContent('#status')).includes('refused'));
    check((await page.textContent('#status')).includes('token'), 'the refusal names the token');
    check(redis('HGET', 'lash:{web}:p:flaky-1', 'state') === 'failed', 'still failed in Redis');

    // ---- with the token: it runs again and completes ----
    await page.fill('#token', TOKEN);
    await page.click('#tokenset');
    await page.click('#retry');
    await until('completed in Redis', async () => redis('HGET', 'lash:{web}:p:flaky-1', 'state') === 'completed');
    await until('completed on the page', async () =>
      (await page.textContent('#record dd[data-k="state"]')) === 'completed');
    check((await page.textContent('#result')).includes('fixed'), 'the result is shown');
    console.log('retry: refused without the token, completed with it');

    // ---- the screenshot for the README ----
    await page.selectOption('#state', '');
    await page.waitForTimeout(2500); // two polls: rates on the chart
    await page.screenshot({ path: path.join(ROOT, 'docs', 'dashboard.png') });

    // ---- hostile rows: shown as text, nothing runs ----
    const evil = '<script>window.__pwned=1</script>"\'><img src=x onerror="window.__pwned=2">';
    const evilJson = JSON.stringify(evil);
    const now = Date.now();
    redis('HSET', 'lash:{web}:p:evil-1', 'kind', evil.slice(0, 60), 'payload', evilJson, 'state', 'failed',
      'attempt', '1', 'max_attempts', '1', 'fence', '1', 'created_ms', String(now), 'finished_ms', String(now),
      'error', evil, 'result', evil, 'owner', evil);
    redis('ZADD', 'lash:{web}:done', String(now + 1), 'evil-1');
    // An id no submit would accept, and a worker named like markup.
    redis('HSET', `lash:{web}:p:${evil}`, 'kind', evil, 'state', 'failed', 'payload', evilJson);
    redis('ZADD', 'lash:{web}:done', String(now + 2), evil);
    redis('ZADD', 'lash:{web}:workers', String(now), '<img/src=x/onerror=window.__pwned=3>');
    redis('XADD', 'lash:{web}:events', '*', 'event', evil, 'id', 'evil-1', 'error', evil);
    await page.selectOption('#state', 'failed');
    await page.waitForSelector('#procs tr[data-id="evil-1"]');
    const listText = await page.textContent('#procs tbody');
    check(listText.includes('<script>window.__pwned=1</script>'), 'hostile kind shown as text');
    check(listText.includes('onerror="window.__pwned=2"'), 'hostile id shown as text');
    await page.click('#procs tr[data-id="evil-1"]');
    await until('evil detail', async () => (await page.textContent('#detail-id')) === 'evil-1');
    await until('evil events', async () => (await page.$$('#events tbody tr')).length > 0);
    check((await page.textContent('#payload')).includes('<script>window.__pwned=1</script>'), 'payload as text');
    check((await page.textContent('#error')).includes('<img src=x'), 'error as text');
    check((await page.textContent('#events tbody')).includes('<script>'), 'event as text');
    await until('hostile worker listed', async () =>
      (await page.textContent('#workers tbody')).includes('<img/src=x'));
    // Clicking the row with the invalid id: the server refuses the id, the page says so.
    await page.click(`#procs tr[data-id="${evil.replace(/"/g, '\\"')}"]`);
    await until('invalid id refused', async () => (await page.textContent('#status')).includes('id'));
    const markup = await page.$$eval('main img, main script, main iframe', (es) => es.length);
    check(markup === 0, `${markup} elements made from row data`);
    check(await page.evaluate(() => window.__pwned === undefined), 'no hostile script ran');
    console.log('hostile rows: shown as text, no element created, nothing ran');
    check(errors.length === 0, 'page errors: ' + errors.join('; '));

    // ---- load time with the page's own measure, for the record ----
    t0 = Date.now();
    await page.reload();
    await page.waitForSelector('#procs tbody tr[data-id]');
    console.log(`reload to a filled process table: ${Date.now() - t0} ms`);
  } finally {
    await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  if (failures.length) { console.log(failures.length + ' failures'); process.exit(1); }
  console.log('browser: all checks passed');
})().catch((e) => { console.error(e); process.exit(1); });
