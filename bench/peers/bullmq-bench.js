#!/usr/bin/env node
// bullmq-bench.js: BullMQ measured the way lash-bench measures lash, against the
// same private Redis, printing the same JSON lines (keys bullmq.*).
//
//   node bullmq-bench.js --redis redis://127.0.0.1:PORT [--n N] [--quick] [--flush]
//
// enqueue: Queue.addBulk in chunks of 1,000 no-op jobs -> jobs/s and Redis CPU.
// drain:   one Worker (this process) with an empty async processor at each
//          concurrency -> jobs/s from worker.run() until the 'completed' count
//          reaches N; worker CPU is this process's cpuUsage; Redis CPU from INFO
//          cpu (used_cpu_sys + used_cpu_user). Completed jobs are kept (BullMQ's
//          default, as lash keeps terminal rows), and getJobCounts must show N
//          completed and nothing waiting, active, delayed or failed.
// latency: an idle worker; one job at a time carries its add time (same
//          process, monotonic clock); p50/p99 of add -> processor start.
'use strict';
const { Queue, Worker } = require('bullmq');
const IORedis = require('ioredis');

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}
const url = new URL(arg('--redis', process.env.LASH_REDIS_URL || 'redis://127.0.0.1:6379'));
const quick = process.argv.includes('--quick');
const flush = process.argv.includes('--flush');
const N = parseInt(arg('--n', '100000'), 10);
const conn = { host: url.hostname, port: parseInt(url.port || '6379', 10), maxRetriesPerRequest: null };

function emit(key, label, unit, value, detail) {
  const o = { key, label, unit, value: Number(value.toPrecision(6)) };
  if (detail) o.detail = true;
  process.stdout.write(JSON.stringify(o) + '\n');
  if (!detail) process.stderr.write(`  ${label.padEnd(44)} ${String(o.value).padStart(14)} ${unit}\n`);
}

const admin = new IORedis(conn);
async function redisCpu() {
  const info = await admin.info('cpu');
  const f = (k) => parseFloat((info.match(new RegExp('^' + k + ':([0-9.]+)', 'm')) || [0, 0])[1]);
  return f('used_cpu_sys') + f('used_cpu_user');
}
const now = () => Number(process.hrtime.bigint()) / 1e9;
const cpuSelf = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function fresh() {
  if (flush) await admin.flushall();
}

async function enqueue(queue, n) {
  const chunk = 1000;
  for (let done = 0; done < n; done += chunk) {
    const k = Math.min(chunk, n - done);
    const jobs = new Array(k);
    for (let i = 0; i < k; i++) jobs[i] = { name: 'noop', data: {} };
    await queue.addBulk(jobs);
  }
}

async function verify(queue, n) {
  const c = await queue.getJobCounts('completed', 'wait', 'active', 'delayed', 'failed', 'prioritized');
  if (c.completed !== n || c.wait || c.active || c.delayed || c.failed || c.prioritized)
    throw new Error(`expected ${n} completed, found ${JSON.stringify(c)}`);
}

async function scenarioEnqueue() {
  await fresh();
  const queue = new Queue('bench-enqueue', { connection: conn });
  await queue.waitUntilReady();
  const c0 = await redisCpu();
  const t0 = now();
  await enqueue(queue, N);
  const secs = now() - t0;
  const c1 = await redisCpu();
  const waiting = await queue.getWaitingCount();
  if (waiting !== N) throw new Error(`expected ${N} waiting jobs, found ${waiting}`);
  emit('bullmq.enqueue.rate', 'BullMQ addBulk enqueue', 'jobs/s', N / secs);
  emit('bullmq.enqueue.redis_us', 'BullMQ enqueue: Redis CPU per job', 'us', ((c1 - c0) * 1e6) / N);
  await queue.close();
}

async function scenarioDrain(conc) {
  await fresh();
  const name = `bench-drain-${conc}`;
  const queue = new Queue(name, { connection: conn });
  await queue.waitUntilReady();
  const c0 = await redisCpu();
  await enqueue(queue, N);
  const c1 = await redisCpu();
  let completed = 0;
  let finished;
  const allDone = new Promise((r) => (finished = r));
  const worker = new Worker(name, async () => {}, { connection: conn, concurrency: conc, autorun: false });
  worker.on('completed', () => {
    if (++completed === N) finished(now());
  });
  worker.on('failed', (job, err) => { throw err; });
  await worker.waitUntilReady();
  const cpu0 = cpuSelf();
  const t0 = now();
  worker.run();
  const tEnd = await allDone;
  const cpu = cpuSelf() - cpu0;
  const c2 = await redisCpu();
  await worker.close();
  await verify(queue, N);
  emit(`bullmq.drain.c${conc}.rate`, `BullMQ drain, 1 worker, c=${conc}`, 'jobs/s', N / (tEnd - t0));
  emit(`bullmq.drain.c${conc}.worker_us`, `BullMQ drain c=${conc}: worker CPU per job`, 'us', (cpu * 1e6) / N);
  emit(`bullmq.drain.c${conc}.redis_us`, `BullMQ drain c=${conc}: Redis CPU per job`, 'us', ((c2 - c1) * 1e6) / N);
  emit(`bullmq.drain.c${conc}.life_us`, `BullMQ c=${conc}: Redis CPU per job (enq+drain)`, 'us', ((c2 - c0) * 1e6) / N);
  await queue.close();
}

async function scenarioLatency(samples) {
  await fresh();
  const queue = new Queue('bench-lat', { connection: conn });
  await queue.waitUntilReady();
  const lat = [];
  let seen = 0;
  const worker = new Worker('bench-lat', async (job) => {
    lat[job.data.i] = (Number(process.hrtime.bigint()) - job.data.t) / 1e6;
    seen++;
  }, { connection: conn, concurrency: 16 });
  await worker.waitUntilReady();
  await sleep(300);
  for (let i = 0; i < samples; i++) {
    await queue.add('noop', { t: Number(process.hrtime.bigint()), i });
    const t0 = now();
    while (seen <= i) {
      if (now() - t0 > 10) throw new Error('a job was not started within 10 s');
      await sleep(0);
    }
    await sleep(1 + Math.random());
  }
  await worker.close();
  await verify(queue, samples);
  lat.sort((a, b) => a - b);
  const pct = (p) => lat[Math.min(lat.length - 1, Math.round(p * (lat.length - 1)))];
  emit('bullmq.latency.p50', 'BullMQ add-to-start latency p50 (idle worker)', 'ms', pct(0.5));
  emit('bullmq.latency.p99', 'BullMQ add-to-start latency p99 (idle worker)', 'ms', pct(0.99));
  await queue.close();
}

(async () => {
  process.stderr.write(`bullmq ${require('bullmq/package.json').version}: ${N} no-op jobs\n`);
  await scenarioEnqueue();
  for (const c of [1, 10, 50]) await scenarioDrain(c);
  await scenarioLatency(quick ? 50 : Math.max(200, Math.min(2000, Math.floor(N / 100))));
  await admin.quit();
})().catch((e) => {
  process.stderr.write(`bullmq-bench: ${e.stack || e}\n`);
  process.exit(1);
});
