import { describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import { configFrom, ConfigError } from '../../supervisor/config/load-config.js';
import { devKeyPaths, resolveIdentity } from '../../supervisor/config/identity.js';
import { encodeNsec, generateIdentity } from '../../supervisor/crypto/keys.js';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'fedai-identity-'));

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('resolveIdentity', () => {
  it('creates dev node and router keys once, mode 0600, and trusts only the dev router', () => {
    const dir = tmp();
    const first = resolveIdentity(configFrom(), dir);
    expect(first.created.sort()).toEqual([devKeyPaths(dir).node, devKeyPaths(dir).router].sort());
    for (const f of first.created) expect(statSync(f).mode & 0o777).toBe(0o600);
    expect([...first.trustedRouters]).toEqual([first.devRouter!.npub]);
    const second = resolveIdentity(configFrom(), dir);
    expect(second.created).toEqual([]);
    expect(second.node.npub).toBe(first.node.npub);
    expect(second.devRouter!.npub).toBe(first.devRouter!.npub);
    expect(readFileSync(devKeyPaths(dir).node, 'utf8').trim()).toMatch(/^nsec1/);
  });

  it('fails closed in production without a key or a trusted router, and generates nothing', () => {
    const dir = tmp();
    const problems = problemsOf(() => resolveIdentity(configFrom({ NODE_ENV: 'production' }), dir));
    expect(problems.join('\n')).toMatch(/NODE_PRIVATE_KEY_PEM .*required/);
    expect(problems.join('\n')).toMatch(/no trusted router/);
    expect(() => statSync(path.join(dir, 'dev'))).toThrow();
  });

  it('production with key and router starts, trusting exactly the configured routers', () => {
    const node = generateIdentity();
    const router = generateIdentity();
    const other = generateIdentity();
    const id = resolveIdentity(
      configFrom({ NODE_ENV: 'production', NODE_PRIVATE_KEY_PEM: encodeNsec(node.secretKey), ROUTER_PUBLIC_KEY_PEM: router.pubHex, NODE_ROUTER_ALLOWLIST: other.npub }),
      tmp(),
    );
    expect(id.node.npub).toBe(node.npub);
    expect(id.devRouter).toBeUndefined();
    expect([...id.trustedRouters].sort()).toEqual([router.npub, other.npub].sort());
  });

  it('rejects a NODE_KEY_ID that does not match the private key, naming both', () => {
    const node = generateIdentity();
    const wrong = generateIdentity();
    const problems = problemsOf(() => resolveIdentity(configFrom({ NODE_PRIVATE_KEY_PEM: encodeNsec(node.secretKey), NODE_KEY_ID: wrong.npub }), tmp()));
    expect(problems.join()).toContain(wrong.npub);
    expect(problems.join()).toContain(node.npub);
  });

  it('rejects a ROUTER_KEY_ID that does not match ROUTER_PUBLIC_KEY_PEM', () => {
    const problems = problemsOf(() =>
      resolveIdentity(configFrom({ ROUTER_PUBLIC_KEY_PEM: generateIdentity().npub, ROUTER_KEY_ID: generateIdentity().npub }), tmp()),
    );
    expect(problems.join()).toMatch(/ROUTER_KEY_ID .* does not match/);
  });

  it('reads a secp256k1 PEM from NODE_PRIVATE_KEY_FILE and refuses a P-256 one with the curve named', () => {
    const dir = tmp();
    const good = path.join(dir, 'k.pem');
    writeFileSync(good, generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
    expect(resolveIdentity(configFrom({ NODE_PRIVATE_KEY_FILE: good }), dir).node.npub).toMatch(/^npub1/);
    const bad = path.join(dir, 'p256.pem');
    writeFileSync(bad, generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'sec1', format: 'pem' }));
    expect(problemsOf(() => resolveIdentity(configFrom({ NODE_PRIVATE_KEY_FILE: bad }), dir)).join()).toMatch(/wrong curve.*prime256v1/);
  });

  it('never trusts the node key as a router', () => {
    const node = generateIdentity();
    expect(problemsOf(() => resolveIdentity(configFrom({ NODE_PRIVATE_KEY_PEM: encodeNsec(node.secretKey), ROUTER_KEY_ID: node.npub }), tmp())).join()).toMatch(
      /must not also be a trusted router/,
    );
  });
});
