/**
 * Which confinement layers this host offers, with install hints. Detection is cheap except `userns`,
 * which really starts `bwrap` once (as an unprivileged pool uid when we are root), because only that
 * proves that unprivileged user namespaces work (AppArmor on Ubuntu ≥ 23.10, sysctls, containers).
 */
import { existsSync, readFileSync, accessSync, constants as FS } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { detectCgroupDriver, type CgroupDriver } from './cgroups.js';
import type { LayerName } from './profiles.js';

export interface LayerStatus {
  readonly layer: LayerName;
  readonly present: boolean;
  readonly detail: string;
  /** How to get it, e.g. "apt-get install bubblewrap". */
  readonly hint: string;
}

export interface HostLayers {
  readonly layers: Readonly<Record<LayerName, LayerStatus>>;
  readonly paths: { readonly bwrap?: string; readonly setpriv?: string; readonly prlimit?: string; readonly unshare?: string; readonly mount?: string; readonly sh: string };
  readonly cgroup: CgroupDriver;
}

export const INSTALL_HINTS: Record<LayerName, string> = {
  bwrap: 'apt-get install bubblewrap (dnf install bubblewrap)',
  userns:
    'enable unprivileged user namespaces: sysctl user.max_user_namespaces=15000 (and kernel.unprivileged_userns_clone=1 on older Debian); on Ubuntu >= 23.10 allow bwrap in AppArmor (an apparmor profile with "userns," for /usr/bin/bwrap, or kernel.apparmor_restrict_unprivileged_userns=0)',
  seccomp: 'a kernel with CONFIG_SECCOMP_FILTER=y (every distribution kernel since 3.5)',
  setpriv: 'apt-get install util-linux (provides setpriv)',
  root: 'run the supervisor as root, or with CAP_SETUID+CAP_SETGID (systemd AmbientCapabilities=CAP_SETUID CAP_SETGID), to switch runners to pool uids',
  prlimit: 'apt-get install util-linux (provides prlimit)',
  cgroup: 'root with cgroup v1 memory/pids/cpu hierarchies, or cgroup v2 delegated to the service (systemd Delegate=yes)',
};

const BIN_DIRS = ['/usr/bin', '/bin', '/usr/sbin', '/sbin', '/usr/local/bin'];

export function findBinary(name: string): string | undefined {
  const dirs = [...BIN_DIRS, ...(process.env.PATH ?? '').split(':').filter((d) => d.startsWith('/'))];
  for (const d of dirs) {
    const p = join(d, name);
    try {
      accessSync(p, FS.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/** CAP_SETUID (7) and CAP_SETGID (6) in the effective set, or uid 0. */
export function canSwitchUid(): boolean {
  if (process.getuid?.() === 0) return true;
  try {
    const m = /CapEff:\s*([0-9a-f]+)/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (!m) return false;
    const caps = BigInt(`0x${m[1]}`);
    return (caps & (1n << 6n)) !== 0n && (caps & (1n << 7n)) !== 0n;
  } catch {
    return false;
  }
}

function seccompStatus(): { present: boolean; detail: string } {
  try {
    const actions = readFileSync('/proc/sys/kernel/seccomp/actions_avail', 'utf8');
    const ok = /\berrno\b/.test(actions) && /\bkill_process\b/.test(actions);
    return { present: ok, detail: ok ? 'seccomp filter mode (errno, kill_process)' : `seccomp actions: ${actions.trim()}` };
  } catch {
    return { present: false, detail: '/proc/sys/kernel/seccomp/actions_avail missing: kernel without SECCOMP_FILTER' };
  }
}

function run(file: string, args: string[], timeoutMs = 5000): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    let stderr = '';
    let child;
    try {
      child = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: '/usr/bin:/bin' } });
    } catch (err) {
      resolve({ code: null, stderr: String(err) });
      return;
    }
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stderr?.on('data', (d: Buffer) => {
      if (stderr.length < 2000) stderr += d.toString();
    });
    child.on('error', (err) => {
      clearTimeout(t);
      resolve({ code: null, stderr: String(err) });
    });
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stderr: stderr.trim() });
    });
  });
}

let cached: Promise<HostLayers> | undefined;

/** Detects once per process (pass fresh=true to re-detect). `probeUid` is the unprivileged uid used to test userns. */
export function detectHostLayers(opts: { probeUid?: number; fresh?: boolean } = {}): Promise<HostLayers> {
  if (!cached || opts.fresh) cached = detect(opts.probeUid ?? 61999);
  return cached;
}

async function detect(probeUid: number): Promise<HostLayers> {
  const bwrap = findBinary('bwrap');
  const setpriv = findBinary('setpriv');
  const prlimit = findBinary('prlimit');
  const sh = existsSync('/bin/sh') ? '/bin/sh' : (findBinary('sh') ?? '/bin/sh');
  const root = canSwitchUid();
  const sec = seccompStatus();
  const cgroup = detectCgroupDriver();

  let userns: { present: boolean; detail: string } = { present: false, detail: 'bwrap missing, not tested' };
  if (bwrap) {
    const args = ['--unshare-all', '--die-with-parent', '--ro-bind', '/', '/', '--proc', '/proc', '--dev', '/dev', '--', '/bin/true'];
    const r = root && setpriv && process.getuid?.() === 0
      ? await run(setpriv, [`--reuid=${probeUid}`, `--regid=${probeUid}`, '--clear-groups', '--inh-caps=-all', bwrap, ...args])
      : await run(bwrap, args);
    userns = r.code === 0
      ? { present: true, detail: `bwrap created user/pid/net/mount namespaces as ${root ? `uid ${probeUid}` : 'this user'}` }
      : { present: false, detail: `bwrap --unshare-all failed (${r.code}): ${r.stderr.slice(0, 300)}` };
  }

  const s = (layer: LayerName, present: boolean, detail: string): LayerStatus => ({ layer, present, detail, hint: INSTALL_HINTS[layer] });
  return {
    layers: {
      bwrap: s('bwrap', !!bwrap, bwrap ?? 'bwrap not found in /usr/bin, /bin, /usr/local/bin or PATH'),
      userns: s('userns', userns.present, userns.detail),
      seccomp: s('seccomp', sec.present, sec.detail),
      setpriv: s('setpriv', !!setpriv, setpriv ?? 'setpriv not found'),
      root: s('root', root, root ? (process.getuid?.() === 0 ? 'running as root' : 'CAP_SETUID and CAP_SETGID') : `uid ${process.getuid?.()} without CAP_SETUID/CAP_SETGID`),
      prlimit: s('prlimit', !!prlimit, prlimit ?? 'prlimit not found'),
      cgroup: s('cgroup', cgroup.kind !== 'none', `${cgroup.kind}: ${cgroup.detail}`),
    },
    paths: { bwrap, setpriv, prlimit, unshare: findBinary('unshare'), mount: findBinary('mount'), sh },
    cgroup,
  };
}
