/**
 * A seccomp filter as a classic-BPF program, generated in TypeScript (no libseccomp, no C compiler),
 * serialised as `struct sock_filter[]` (8 bytes each, little-endian) for `bwrap --seccomp FD`.
 *
 * Policy: check the architecture first (x86_64 and aarch64 have their own syscall tables; any other
 * arch, i386 via int 0x80 included, is killed, and so are x32 syscalls on x86_64); default allow;
 * EPERM for the syscalls a runner never needs and that widen the kernel's attack surface; EPERM for
 * `clone` with CLONE_NEWUSER (flags are the first argument on both arches); ENOSYS for `clone3` (BPF
 * cannot read its flags from memory; glibc and libuv fall back to clone) and for io_uring (its
 * operations would bypass this filter; libuv falls back to its thread pool). Level `strict` also answers
 * EACCES to socket(AF_INET | AF_INET6 | AF_PACKET) while AF_UNIX and AF_NETLINK stay allowed
 * (blocking netlink breaks Node's os.networkInterfaces()).
 */

export type SeccompFilterLevel = 'default' | 'strict';

// struct seccomp_data offsets
const OFF_NR = 0;
const OFF_ARCH = 4;
const OFF_ARG0_LO = 16;

// BPF opcodes
const BPF_LD_W_ABS = 0x20;
const BPF_JMP_JEQ_K = 0x15;
const BPF_JMP_JGE_K = 0x35;
const BPF_JMP_JSET_K = 0x45;
const BPF_JMP_JA = 0x05;
const BPF_RET_K = 0x06;

export const SECCOMP_RET_KILL_PROCESS = 0x80000000;
export const SECCOMP_RET_ALLOW = 0x7fff0000;
export const SECCOMP_RET_ERRNO = 0x00050000;

export const AUDIT_ARCH_X86_64 = 0xc000003e;
export const AUDIT_ARCH_AARCH64 = 0xc00000b7;
const X32_SYSCALL_BIT = 0x40000000;

export const EPERM = 1;
export const EACCES = 13;
export const ENOSYS = 38;

export const CLONE_NEWUSER = 0x10000000;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const AF_PACKET = 17;

export const DENIED_SYSCALLS = [
  'ptrace', 'mount', 'umount2', 'unshare', 'setns', 'keyctl', 'add_key', 'request_key', 'bpf',
  'perf_event_open', 'kexec_load', 'kexec_file_load', 'init_module', 'finit_module', 'delete_module',
  'pivot_root', 'chroot', 'userfaultfd', 'process_vm_readv', 'process_vm_writev',
] as const;

/** ENOSYS (callers fall back): clone3, and io_uring, whose operations (IORING_OP_SOCKET, openat…) bypass seccomp. */
export const ENOSYS_SYSCALLS = ['clone3', 'io_uring_setup', 'io_uring_enter', 'io_uring_register'] as const;

type Name = (typeof DENIED_SYSCALLS)[number] | (typeof ENOSYS_SYSCALLS)[number] | 'clone' | 'socket';

export const SYSCALLS: Record<'x86_64' | 'aarch64', Record<Name, number>> = {
  x86_64: {
    ptrace: 101, mount: 165, umount2: 166, unshare: 272, setns: 308, keyctl: 250, add_key: 248, request_key: 249,
    bpf: 321, perf_event_open: 298, kexec_load: 246, kexec_file_load: 320, init_module: 175, finit_module: 313,
    delete_module: 176, pivot_root: 155, chroot: 161, userfaultfd: 323, process_vm_readv: 310, process_vm_writev: 311,
    clone: 56, clone3: 435, socket: 41, io_uring_setup: 425, io_uring_enter: 426, io_uring_register: 427,
  },
  aarch64: {
    ptrace: 117, mount: 40, umount2: 39, unshare: 97, setns: 268, keyctl: 219, add_key: 217, request_key: 218,
    bpf: 280, perf_event_open: 241, kexec_load: 104, kexec_file_load: 294, init_module: 105, finit_module: 273,
    delete_module: 106, pivot_root: 41, chroot: 51, userfaultfd: 282, process_vm_readv: 270, process_vm_writev: 271,
    clone: 220, clone3: 435, socket: 198, io_uring_setup: 425, io_uring_enter: 426, io_uring_register: 427,
  },
};

export interface SockFilter {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

const ins = (code: number, k: number, jt = 0, jf = 0): SockFilter => ({ code, jt, jf, k: k >>> 0 });
const ret = (k: number) => ins(BPF_RET_K, k);
const errno = (e: number) => ret(SECCOMP_RET_ERRNO | e);

function archSection(arch: 'x86_64' | 'aarch64', level: SeccompFilterLevel): SockFilter[] {
  const nr = SYSCALLS[arch];
  const out: SockFilter[] = [ins(BPF_LD_W_ABS, OFF_NR)];
  if (arch === 'x86_64') {
    out.push(ins(BPF_JMP_JGE_K, X32_SYSCALL_BIT, 0, 1), ret(SECCOMP_RET_KILL_PROCESS));
  }
  for (const name of DENIED_SYSCALLS) out.push(ins(BPF_JMP_JEQ_K, nr[name], 0, 1), errno(EPERM));
  for (const name of ENOSYS_SYSCALLS) out.push(ins(BPF_JMP_JEQ_K, nr[name], 0, 1), errno(ENOSYS));
  // clone: inspect flags (arg0, low 32 bits); the block returns on both paths.
  const cloneBlock = [ins(BPF_LD_W_ABS, OFF_ARG0_LO), ins(BPF_JMP_JSET_K, CLONE_NEWUSER, 0, 1), errno(EPERM), ret(SECCOMP_RET_ALLOW)];
  out.push(ins(BPF_JMP_JEQ_K, nr.clone, 0, cloneBlock.length), ...cloneBlock);
  if (level === 'strict') {
    const sockBlock = [
      ins(BPF_LD_W_ABS, OFF_ARG0_LO),
      ins(BPF_JMP_JEQ_K, AF_INET, 3, 0),
      ins(BPF_JMP_JEQ_K, AF_INET6, 2, 0),
      ins(BPF_JMP_JEQ_K, AF_PACKET, 1, 0),
      ret(SECCOMP_RET_ALLOW),
      errno(EACCES),
    ];
    out.push(ins(BPF_JMP_JEQ_K, nr.socket, 0, sockBlock.length), ...sockBlock);
  }
  out.push(ret(SECCOMP_RET_ALLOW));
  return out;
}

/** The whole program: arch dispatch, then one section per supported architecture. */
export function buildSeccompProgram(level: SeccompFilterLevel): SockFilter[] {
  const x86 = archSection('x86_64', level);
  const arm = archSection('aarch64', level);
  // 0 ld arch; 1 jeq x86 ?2:3; 2 ja x86; 3 jeq arm ?4:5; 4 ja arm; 5 kill; 6.. x86; then arm
  const head: SockFilter[] = [
    ins(BPF_LD_W_ABS, OFF_ARCH),
    ins(BPF_JMP_JEQ_K, AUDIT_ARCH_X86_64, 0, 1),
    ins(BPF_JMP_JA, 3), // pc after = 3 → +3 = 6 (x86 start)
    ins(BPF_JMP_JEQ_K, AUDIT_ARCH_AARCH64, 0, 1),
    ins(BPF_JMP_JA, 1 + x86.length), // pc after = 5 → skip kill + x86
    ret(SECCOMP_RET_KILL_PROCESS),
  ];
  const prog = [...head, ...x86, ...arm];
  for (const f of prog) if (f.jt > 255 || f.jf > 255) throw new Error('seccomp: jump out of range');
  if (prog.length > 4096) throw new Error('seccomp: program too long');
  return prog;
}

/** struct sock_filter[] as bytes: u16 code, u8 jt, u8 jf, u32 k, little-endian. */
export function serializeSeccompProgram(prog: readonly SockFilter[]): Buffer {
  const buf = Buffer.alloc(prog.length * 8);
  prog.forEach((f, i) => {
    buf.writeUInt16LE(f.code, i * 8);
    buf.writeUInt8(f.jt, i * 8 + 2);
    buf.writeUInt8(f.jf, i * 8 + 3);
    buf.writeUInt32LE(f.k >>> 0, i * 8 + 4);
  });
  return buf;
}

export function seccompBpf(level: SeccompFilterLevel): Buffer {
  return serializeSeccompProgram(buildSeccompProgram(level));
}

/**
 * A classic-BPF interpreter for the opcodes above, for tests and `check-sandbox --explain`: returns the
 * filter's verdict for a syscall as the kernel would compute it.
 */
export function runSeccompProgram(prog: readonly SockFilter[], data: { nr: number; arch: number; args?: readonly number[] }): number {
  const word = (off: number): number => {
    if (off === OFF_NR) return data.nr >>> 0;
    if (off === OFF_ARCH) return data.arch >>> 0;
    if (off >= 16 && off < 64) {
      const i = Math.floor((off - 16) / 8);
      const v = BigInt.asUintN(64, BigInt(data.args?.[i] ?? 0));
      return Number(off % 8 === 0 ? v & 0xffffffffn : v >> 32n);
    }
    throw new Error(`seccomp: load at ${off}`);
  };
  let a = 0;
  for (let pc = 0; pc < prog.length; pc++) {
    const f = prog[pc];
    switch (f.code) {
      case BPF_LD_W_ABS: a = word(f.k); break;
      case BPF_JMP_JEQ_K: pc += a === f.k ? f.jt : f.jf; break;
      case BPF_JMP_JGE_K: pc += a >= f.k ? f.jt : f.jf; break;
      case BPF_JMP_JSET_K: pc += (a & f.k) !== 0 ? f.jt : f.jf; break;
      case BPF_JMP_JA: pc += f.k; break;
      case BPF_RET_K: return f.k;
      default: throw new Error(`seccomp: opcode ${f.code}`);
    }
  }
  throw new Error('seccomp: fell off the end');
}
