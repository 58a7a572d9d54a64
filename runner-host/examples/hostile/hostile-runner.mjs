#!/usr/bin/env node
// A deliberately hostile "runner" (plain Node, no dependencies). It tries to escape its sandbox and
// prints one JSON line per probe: {"probe": name, "contained": bool, "detail": text}. `contained`
// means the sandbox held (or, for the egress positive control, that policy was applied as written).
// Used by test/sandbox/hostile.test.ts and `fedai-node check-sandbox`. The last probe ("hang") only
// prints {"probe":"hang","phase":"start"} and blocks: the caller expects the watchdog's wall-time kill.
//
// argv[2]: JSON config {
//   keyFile, supervisorPid, secretName, secretValue, envAllow: [names or PREFIX_*],
//   loopbackPort, allowedUrl, allowedBody, refusedUrls: [...], hostWritePath,
//   forkMax, cpuQuotaPct, memHogMaxBytes, spinMs, only: [probe names] }
import fs from 'node:fs';
import net from 'node:net';
import http from 'node:http';
import path from 'node:path';
import os from 'node:os';
import { spawn, spawnSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';

const cfg = JSON.parse(process.argv[2] ?? '{}');
const SELF = fileURLToPath(import.meta.url);
const report = (probe, contained, detail) =>
  process.stdout.write(JSON.stringify({ probe, contained: Boolean(contained), detail: String(detail).slice(0, 400) }) + '\n');
const errCode = (e) => (e && (e.code || e.message)) || String(e);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function tryRead(p) {
  try {
    const b = fs.readFileSync(p);
    return { ok: true, data: b };
  } catch (e) {
    return { ok: false, code: errCode(e) };
  }
}

function tryWrite(p) {
  try {
    fs.writeFileSync(p, 'escaped\n');
    try { fs.unlinkSync(p); } catch {}
    return { ok: true };
  } catch (e) {
    return { ok: false, code: errCode(e) };
  }
}

function python(code, timeoutMs = 5000) {
  for (const py of ['/usr/bin/python3', '/usr/local/bin/python3']) {
    if (!fs.existsSync(py)) continue;
    const r = spawnSync(py, ['-c', code], { encoding: 'utf8', timeout: timeoutMs });
    return { ran: true, status: r.status, out: (r.stdout || '').trim(), err: (r.stderr || '').trim() };
  }
  return { ran: false };
}

function envAllowed(name) {
  for (const a of cfg.envAllow ?? []) if (a.endsWith('*') ? name.startsWith(a.slice(0, -1)) : name === a) return true;
  return ['PWD', 'SHLVL', '_', 'OLDPWD'].includes(name);
}

function viaProxy(url, timeoutMs = 4000) {
  return new Promise((resolve) => {
    const sock = process.env.FEDAI_EGRESS_PROXY;
    const u = (() => { try { return new URL(url); } catch { return undefined; } })();
    const req = http.request({ socketPath: sock, method: 'GET', path: url, headers: { host: u ? u.host : 'x' } }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status: 0, body: errCode(e) }));
    req.end();
  });
}

function direct(url, timeoutMs = 2000) {
  return new Promise((resolve) => {
    let req;
    try {
      req = http.get(url, (res) => { res.resume(); resolve({ status: res.statusCode }); });
    } catch (e) {
      resolve({ status: 0, err: errCode(e) });
      return;
    }
    req.setTimeout(timeoutMs, () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status: 0, err: errCode(e) }));
  });
}

const probes = {
  'read-shadow': async () => {
    const r = tryRead('/etc/shadow');
    report('read-shadow', !r.ok, r.ok ? `read ${r.data.length} bytes` : r.code);
  },
  'read-key-file': async () => {
    if (!cfg.keyFile) return report('read-key-file', false, 'no keyFile given');
    const r = tryRead(cfg.keyFile);
    report('read-key-file', !r.ok, r.ok ? `read ${r.data.length} bytes of ${cfg.keyFile}` : `${cfg.keyFile}: ${r.code}`);
  },
  'read-supervisor-environ': async () => {
    const out = [];
    let leaked = false;
    for (const pid of [cfg.supervisorPid, 1, process.ppid].filter(Boolean)) {
      const r = tryRead(`/proc/${pid}/environ`);
      if (r.ok && cfg.secretValue && r.data.includes(cfg.secretValue)) leaked = true;
      if (r.ok && cfg.secretName && r.data.includes(`${cfg.secretName}=`)) leaked = true;
      out.push(`${pid}:${r.ok ? `${r.data.length}B` : r.code}`);
    }
    report('read-supervisor-environ', !leaked, out.join(' '));
  },
  'own-env': async () => {
    const names = Object.keys(process.env);
    const extra = names.filter((n) => !envAllowed(n));
    const secret = cfg.secretValue && Object.values(process.env).some((v) => v && v.includes(cfg.secretValue));
    report('own-env', extra.length === 0 && !secret, `vars: ${names.sort().join(',')}${extra.length ? `; unexpected: ${extra.join(',')}` : ''}${secret ? '; SECRET VALUE PRESENT' : ''}`);
  },
  'write-root': async () => {
    const r = tryWrite('/fedai-escape.txt');
    const u = tryWrite('/usr/fedai-escape.txt');
    report('write-root', !r.ok && !u.ok, `/: ${r.ok ? 'written' : r.code}; /usr: ${u.ok ? 'written' : u.code}`);
  },
  'write-code-dir': async () => {
    const p = path.join(path.dirname(SELF), 'fedai-escape.txt');
    const r = tryWrite(p);
    report('write-code-dir', !r.ok, `${p}: ${r.ok ? 'written' : r.code}`);
  },
  'write-outside-workdir': async () => {
    if (!cfg.hostWritePath) return report('write-outside-workdir', false, 'no hostWritePath given');
    const r = tryWrite(cfg.hostWritePath);
    report('write-outside-workdir', !r.ok, `${cfg.hostWritePath}: ${r.ok ? 'written' : r.code}`);
  },
  'write-past-fsize': async () => {
    let limit = Infinity;
    try {
      const m = /Max file size\s+(\S+)/.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
      if (m && m[1] !== 'unlimited') limit = Number(m[1]);
    } catch {}
    const offset = Number.isFinite(limit) ? limit : 64 * 2 ** 30;
    const f = path.join(process.cwd(), `fsize-probe-${process.pid}`);
    let fd;
    try {
      fd = fs.openSync(f, 'w');
      fs.writeSync(fd, Buffer.from('x'), 0, 1, offset);
      report('write-past-fsize', false, `wrote at offset ${offset} (limit ${limit})`);
    } catch (e) {
      report('write-past-fsize', e.code === 'EFBIG', `offset ${offset}: ${errCode(e)}`);
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
      try { fs.unlinkSync(f); } catch {}
    }
  },
  'device-access': async () => {
    const opened = [];
    const tried = [];
    for (const d of ['/dev/mem', '/dev/kmem', '/dev/port', '/dev/kmsg', '/dev/sda', '/dev/vda', '/dev/nvme0n1', '/dev/loop0']) {
      try {
        const fd = fs.openSync(d, 'r');
        fs.closeSync(fd);
        opened.push(d);
      } catch (e) {
        tried.push(`${d}:${e.code}`);
      }
    }
    let list = '';
    try { list = fs.readdirSync('/dev').join(','); } catch {}
    report('device-access', opened.length === 0, opened.length ? `opened ${opened.join(',')}` : `none opened; /dev: ${list}`);
  },
  'connect-loopback': async () => {
    if (!cfg.loopbackPort) return report('connect-loopback', false, 'no loopbackPort given');
    const r = await new Promise((resolve) => {
      let s;
      try {
        s = net.connect({ host: '127.0.0.1', port: cfg.loopbackPort });
      } catch (e) {
        return resolve({ ok: false, code: errCode(e) });
      }
      const t = setTimeout(() => { s.destroy(); resolve({ ok: false, code: 'timeout' }); }, 2000);
      s.on('connect', () => { clearTimeout(t); s.destroy(); resolve({ ok: true }); });
      s.on('error', (e) => { clearTimeout(t); resolve({ ok: false, code: errCode(e) }); });
    });
    report('connect-loopback', !r.ok, r.ok ? `connected to 127.0.0.1:${cfg.loopbackPort}` : r.code);
  },
  'egress-allowed': async () => {
    if (!cfg.allowedUrl) return report('egress-allowed', false, 'no allowedUrl given');
    if (process.env.FEDAI_EGRESS_PROXY) {
      const r = await viaProxy(cfg.allowedUrl);
      const ok = r.status === 200 && (cfg.allowedBody === undefined || r.body === cfg.allowedBody);
      report('egress-allowed', ok, `via proxy ${process.env.FEDAI_EGRESS_PROXY}: ${r.status} ${r.body.slice(0, 60)}`);
    } else {
      const r = await direct(cfg.allowedUrl);
      report('egress-allowed', r.status === 0, r.status === 0 ? `no egress proxy in this profile; direct: ${r.err}` : `direct request got ${r.status}`);
    }
  },
  'egress-prefix-trick': async () => {
    const urls = cfg.refusedUrls ?? [];
    if (urls.length === 0) return report('egress-prefix-trick', false, 'no refusedUrls given');
    const out = [];
    let leaked = false;
    for (const u of urls) {
      if (process.env.FEDAI_EGRESS_PROXY) {
        const r = await viaProxy(u);
        if (r.status !== 403) leaked = true;
        out.push(`${r.status}`);
      } else {
        const r = await direct(u);
        if (r.status !== 0) leaked = true;
        out.push(r.status === 0 ? 'no-route' : `${r.status}`);
      }
    }
    report('egress-prefix-trick', !leaked, `${urls.length} look-alike URLs: ${out.join(',')}`);
  },
  'setuid-root': async () => {
    const before = process.getuid();
    try {
      process.setuid(0);
      report('setuid-root', false, `setuid(0) succeeded (uid ${before} -> ${process.getuid()})`);
    } catch (e) {
      report('setuid-root', before !== 0, `uid ${before}; setuid(0): ${errCode(e)}`);
    }
  },
  'unshare-userns': async () => {
    const r = spawnSync('unshare', ['-U', 'true'], { encoding: 'utf8', timeout: 5000 });
    if (r.error && r.error.code === 'ENOENT') {
      const p = python('import ctypes,os\nlibc=ctypes.CDLL(None,use_errno=True)\nr=libc.unshare(0x10000000)\nprint(r, os.strerror(ctypes.get_errno()))');
      if (!p.ran) return report('unshare-userns', false, 'neither unshare nor python3 available to probe');
      return report('unshare-userns', !p.out.startsWith('0 '), `unshare(CLONE_NEWUSER): ${p.out}`);
    }
    report('unshare-userns', r.status !== 0, `unshare -U true: rc ${r.status} ${(r.stderr || '').trim().slice(0, 100)}`);
  },
  ptrace: async () => {
    const targets = [cfg.supervisorPid, 1].filter((p) => p && p !== process.pid);
    const code = [
      'import ctypes,os,sys',
      'libc=ctypes.CDLL(None,use_errno=True)',
      'out=[]',
      `for pid in ${JSON.stringify(targets)}:`,
      '    r=libc.ptrace(16,pid,0,0)',
      '    e=ctypes.get_errno()',
      '    if r==0:',
      '        libc.ptrace(17,pid,0,0)',
      '    out.append("%d:%s" % (pid, "ATTACHED" if r==0 else os.strerror(e)))',
      'print(" ".join(out))',
    ].join('\n');
    const p = python(code);
    if (p.ran) return report('ptrace', !p.out.includes('ATTACHED'), `PTRACE_ATTACH ${p.out || p.err.slice(0, 100)}`);
    const r = tryRead(`/proc/${cfg.supervisorPid}/mem`);
    report('ptrace', !r.ok, `read /proc/${cfg.supervisorPid}/mem: ${r.ok ? 'ok' : r.code}`);
  },
  'kill-host-pid': async () => {
    if (!cfg.supervisorPid) return report('kill-host-pid', false, 'no supervisorPid given');
    try {
      process.kill(cfg.supervisorPid, 0);
      report('kill-host-pid', false, `signal 0 to host pid ${cfg.supervisorPid} succeeded`);
    } catch (e) {
      report('kill-host-pid', true, `pid ${cfg.supervisorPid}: ${errCode(e)}`);
    }
  },
  'fork-bomb': async () => {
    const max = cfg.forkMax ?? 300;
    const script = `i=0; while [ $i -lt ${max} ]; do sleep 30 </dev/null >/dev/null 2>&1 & i=$((i+1)); echo x; done`;
    const r = await new Promise((resolve) => {
      const c = spawn('/bin/sh', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      let n = 0;
      let err = '';
      c.stdout.on('data', (d) => (n += d.toString().split('\n').filter(Boolean).length));
      c.stderr.on('data', (d) => (err += d.toString()));
      c.on('error', (e) => resolve({ n, err: errCode(e), code: -1, pgid: c.pid }));
      c.on('close', (code) => resolve({ n, err: err.trim(), code, pgid: c.pid }));
    });
    try { process.kill(-r.pgid, 'SIGKILL'); } catch {}
    // Let the killed sleeps be reaped before the next probe needs pids again.
    for (let i = 0; i < 100; i++) {
      try { process.kill(-r.pgid, 0); } catch { break; }
      await sleep(30);
    }
    const stopped = r.n < max;
    report('fork-bomb', stopped, `spawned ${r.n} of ${max} before ${stopped ? `the limit (${r.err.slice(0, 80) || `rc ${r.code}`})` : 'finishing: no limit hit'}`);
  },
  'cpu-spin': async () => {
    const ms = cfg.spinMs ?? 1500;
    const threads = Math.min(4, (os.availableParallelism?.() ?? os.cpus().length) + 1);
    const t0 = Date.now();
    const c0 = process.cpuUsage();
    const src = `const end = Date.now() + ${ms}; while (Date.now() < end) {}`;
    await Promise.all(Array.from({ length: threads }, () => new Promise((resolve) => {
      const w = new Worker(src, { eval: true });
      w.on('exit', resolve);
      w.on('error', resolve);
    })));
    const wall = Date.now() - t0;
    const c = process.cpuUsage(c0);
    const pct = ((c.user + c.system) / 1000 / wall) * 100;
    const quota = cfg.cpuQuotaPct;
    const ok = quota !== undefined && pct <= quota + 15;
    report('cpu-spin', ok, `${threads} threads: ${Math.round((c.user + c.system) / 1000)} ms CPU in ${wall} ms wall = ${pct.toFixed(0)}% (quota ${quota ?? 'none'}%)`);
  },
  'memory-hog': async () => {
    const max = cfg.memHogMaxBytes ?? 2 ** 31;
    const code = `const a=[];let n=0;const max=${max};while(n<max){a.push(Buffer.alloc(16*1024*1024,1));n+=16*1024*1024;if(a.length%8===0)process.stdout.write(String(n)+'\\n');}process.stdout.write('survived '+n+'\\n');`;
    const r = await new Promise((resolve) => {
      const c = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
      let last = '';
      c.stdout.on('data', (d) => (last = d.toString().trim().split('\n').pop()));
      c.stderr.on('data', () => {});
      c.on('error', (e) => resolve({ code: -1, signal: null, last: errCode(e) }));
      c.on('close', (code, signal) => resolve({ code, signal, last }));
    });
    const survived = r.last.startsWith('survived');
    report('memory-hog', !survived, `child ${r.signal ? `killed by ${r.signal}` : `exited ${r.code}`} after ${r.last} bytes (cap ${max})`);
  },
  hang: async () => {
    process.stdout.write(JSON.stringify({ probe: 'hang', phase: 'start' }) + '\n');
    setInterval(() => {}, 1 << 30);
    await new Promise(() => {});
  },
};

const order = Object.keys(probes);
const only = cfg.only ? new Set(cfg.only) : undefined;
for (const name of order) {
  if (only && !only.has(name)) continue;
  try {
    await probes[name]();
  } catch (e) {
    report(name, false, `probe crashed: ${errCode(e)}`);
  }
}
await sleep(10);
process.exit(0);
