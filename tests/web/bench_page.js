// bench_page.js: the dashboard's load time (median of 5) against WEB_URL.
'use strict';
const { chromium } = require('playwright-core');
const fs = require('fs');
const os = require('os');
const path = require('path');
(async () => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'lash-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium', headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await ctx.newPage();
  const times = [];
  for (let i = 0; i < 5; i++) {
    const t0 = Date.now();
    await page.goto(process.env.WEB_URL);
    await page.waitForSelector('#procs tbody tr[data-id]');
    await page.waitForSelector('#queues tr[data-queue] td[data-k="pending"]');
    times.push(Date.now() - t0);
  }
  const shown = await page.textContent('#queues tr[data-queue="big"] td[data-k="pending"]');
  times.sort((a, b) => a - b);
  console.log(`dashboard with ${shown} pending processes: load to a filled table ${times[2]} ms ` +
    `(median of 5: ${times.join(', ')})`);
  await ctx.close();
  fs.rmSync(profile, { recursive: true, force: true });
})().catch((e) => { console.error(e); process.exit(1); });
