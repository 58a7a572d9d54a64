import { describe, expect, test, afterAll } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AF_INET, AF_INET6, AF_PACKET, AUDIT_ARCH_AARCH64, AUDIT_ARCH_X86_64, CLONE_NEWUSER, DENIED_SYSCALLS, EACCES, ENOSYS, EPERM,
  SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS, SYSCALLS, buildSeccompProgram, runSeccompProgram, seccompBpf,
} from '../../supervisor/sandbox/seccomp-bpf.js';
import { findBinary } from '../../supervisor/sandbox/host-layers.js';
import { describeSandbox } from './sandbox-env.js';

const AF_UNIX = 1;
const AF_NETLINK = 16;
const CLONE_THREAD_FLAGS = 0x3d0f00; // what glibc/libuv pass for pthread_create
const ARCHES = [
  ['x86_64', AUDIT_ARCH_X86_64],
  ['aarch64', AUDIT_ARCH_AARCH64],
] as const;

describe('seccomp BPF generator', () => {
  for (const level of ['default', 'strict'] as const) {
    const prog = buildSeccompProgram(level);
    describe.each(ARCHES)(`level ${level}, %s`, (arch, audit) => {
      const nr = SYSCALLS[arch];
      const run = (n: number, args: number[] = []) => runSeccompProgram(prog, { nr: n, arch: audit, args });

      test('denied syscalls return EPERM', () => {
        for (const s of DENIED_SYSCALLS) expect([s, run(nr[s])]).toEqual([s, SECCOMP_RET_ERRNO | EPERM]);
      });
      test('clone with CLONE_NEWUSER is EPERM, an ordinary clone is allowed; clone3 is ENOSYS', () => {
        expect(run(nr.clone, [CLONE_NEWUSER | 0x11])).toBe(SECCOMP_RET_ERRNO | EPERM);
        expect(run(nr.clone, [CLONE_THREAD_FLAGS])).toBe(SECCOMP_RET_ALLOW);
        expect(run(nr.clone, [0x11])).toBe(SECCOMP_RET_ALLOW);
        expect(run(nr.clone3, [0])).toBe(SECCOMP_RET_ERRNO | ENOSYS);
      });
      test('io_uring is ENOSYS (its operations would bypass the filter)', () => {
        for (const s of ['io_uring_setup', 'io_uring_enter', 'io_uring_register'] as const) expect(run(nr[s])).toBe(SECCOMP_RET_ERRNO | ENOSYS);
      });
      test('sockets: unix and netlink always allowed; inet/packet only outside strict', () => {
        expect(run(nr.socket, [AF_UNIX])).toBe(SECCOMP_RET_ALLOW);
        expect(run(nr.socket, [AF_NETLINK])).toBe(SECCOMP_RET_ALLOW);
        for (const af of [AF_INET, AF_INET6, AF_PACKET]) {
          expect(run(nr.socket, [af])).toBe(level === 'strict' ? SECCOMP_RET_ERRNO | EACCES : SECCOMP_RET_ALLOW);
        }
      });
      test('everything else is allowed (read, write, openat, mmap...)', () => {
        for (const n of arch === 'x86_64' ? [0, 1, 2, 9, 257, 59] : [63, 64, 56, 222, 221]) expect(run(n)).toBe(SECCOMP_RET_ALLOW);
      });
    });

    test(`level ${level}: a foreign architecture (i386, arm) and x32 syscalls are killed`, () => {
      expect(runSeccompProgram(prog, { nr: 1, arch: 0x40000003 })).toBe(SECCOMP_RET_KILL_PROCESS);
      expect(runSeccompProgram(prog, { nr: 1, arch: 0x40000028 })).toBe(SECCOMP_RET_KILL_PROCESS);
      expect(runSeccompProgram(prog, { nr: 0x40000000 + 1, arch: AUDIT_ARCH_X86_64 })).toBe(SECCOMP_RET_KILL_PROCESS);
    });
  }

  test('serialises as struct sock_filter: 8 bytes each, little-endian', () => {
    const prog = buildSeccompProgram('strict');
    const buf = seccompBpf('strict');
    expect(buf.length).toBe(prog.length * 8);
    // first instruction: BPF_LD|BPF_W|BPF_ABS (0x20) of seccomp_data.arch (offset 4)
    expect([...buf.subarray(0, 8)]).toEqual([0x20, 0, 0, 0, 4, 0, 0, 0]);
    // second: JEQ AUDIT_ARCH_X86_64, jt 0, jf 1
    expect(buf.readUInt16LE(8)).toBe(0x15);
    expect(buf.readUInt8(11)).toBe(1);
    expect(buf.readUInt32LE(12)).toBe(AUDIT_ARCH_X86_64);
    expect(seccompBpf('default').length).toBeLessThan(buf.length);
  });
});

describeSandbox('seccomp filter loaded by bwrap, on real Node and Python runners', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fedai-seccomp-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const bwrap = findBinary('bwrap')!;
  const setpriv = findBinary('setpriv')!;

  function inSandbox(level: 'default' | 'strict' | 'none', argv: string[]): { status: number | null; out: string; err: string } {
    const args = ['--reuid=61998', '--regid=61998', '--clear-groups', '--inh-caps=-all', '--no-new-privs', bwrap,
      '--unshare-all', '--die-with-parent', '--ro-bind', '/usr', '/usr', '--symlink', 'usr/bin', '/bin', '--symlink', 'usr/lib', '/lib',
      '--symlink', 'usr/lib64', '/lib64', '--ro-bind', '/etc/ld.so.cache', '/etc/ld.so.cache', '--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp'];
    let fd: number | undefined;
    if (level !== 'none') {
      const f = join(dir, `${level}.bpf`);
      writeFileSync(f, seccompBpf(level));
      fd = openSync(f, 'r');
      args.push('--seccomp', '3');
    }
    try {
      const r = spawnSync(setpriv, [...args, '--', ...argv], {
        encoding: 'utf8',
        timeout: 20000,
        env: { PATH: '/usr/bin:/bin' },
        stdio: ['ignore', 'pipe', 'pipe', ...(fd !== undefined ? [fd] : [])],
      });
      return { status: r.status, out: (r.stdout ?? '').trim(), err: (r.stderr ?? '').trim() };
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  const NODE_PROBE = `
    const os = require('os'); const net = require('net'); const cp = require('child_process');
    const out = { seccomp: require('fs').readFileSync('/proc/self/status','utf8').match(/Seccomp:\\s+(\\d)/)[1] };
    try { out.ifaces = Object.keys(os.networkInterfaces()); } catch (e) { out.ifaces = e.code; }
    out.unshare = cp.spawnSync('unshare', ['-U', 'true']).status;
    out.thread = require('worker_threads').isMainThread;
    const s = net.connect(9, '127.0.0.1'); s.on('error', (e) => { out.inet = e.code; console.log(JSON.stringify(out)); });`;

  test.each(['default', 'strict'] as const)('Node under %s: networkInterfaces works, unshare -U fails, inet per level', (level) => {
    const r = inSandbox(level, ['/usr/bin/node', '-e', NODE_PROBE]);
    expect(r.err).toBe('');
    const o = JSON.parse(r.out) as Record<string, unknown>;
    expect(o.seccomp).toBe('2');
    expect(o.ifaces).toEqual(['lo']);
    expect(o.unshare).not.toBe(0);
    expect(o.inet).toBe(level === 'strict' ? 'EACCES' : 'ECONNREFUSED');
  });

  test('control: without the filter the same Node probe CAN unshare (the test can fail)', () => {
    const o = JSON.parse(inSandbox('none', ['/usr/bin/node', '-e', NODE_PROBE]).out) as Record<string, unknown>;
    expect(o.seccomp).toBe('0');
    expect(o.unshare).toBe(0);
  });

  const PY_PROBE = `
import ctypes, os, socket, json, signal, time
libc = ctypes.CDLL(None, use_errno=True)
out = {}
def err(): return os.strerror(ctypes.get_errno())
out['unshare'] = 'ok' if libc.unshare(0x10000000) == 0 else err()
pid = os.fork()
if pid == 0:
    time.sleep(5); os._exit(0)
r = libc.ptrace(16, pid, 0, 0)
out['ptrace_child'] = 'ATTACHED' if r == 0 else err()
os.kill(pid, signal.SIGKILL); os.waitpid(pid, 0)
for name, fam in (('unix', socket.AF_UNIX), ('netlink', socket.AF_NETLINK), ('inet', socket.AF_INET), ('inet6', socket.AF_INET6)):
    try:
        s = socket.socket(fam, socket.SOCK_DGRAM if fam != socket.AF_UNIX else socket.SOCK_STREAM); s.close(); out[name] = 'ok'
    except OSError as e:
        out[name] = e.strerror
print(json.dumps(out))`;

  test.each(['default', 'strict'] as const)('Python under %s: unshare and ptrace of its own child fail; unix/netlink sockets work', (level) => {
    const r = inSandbox(level, ['/usr/bin/python3', '-c', PY_PROBE]);
    const o = JSON.parse(r.out) as Record<string, string>;
    expect(o.unshare).toBe('Operation not permitted');
    expect(o.ptrace_child).toBe('Operation not permitted');
    expect(o.unix).toBe('ok');
    expect(o.netlink).toBe('ok');
    expect(o.inet).toBe(level === 'strict' ? 'Permission denied' : 'ok');
    expect(o.inet6).toBe(level === 'strict' ? 'Permission denied' : 'ok');
  });

  test('control: without the filter Python can ptrace its own child', () => {
    const o = JSON.parse(inSandbox('none', ['/usr/bin/python3', '-c', PY_PROBE]).out) as Record<string, string>;
    expect(o.ptrace_child).toBe('ATTACHED');
  });
});
