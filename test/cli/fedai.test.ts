import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { dispatch } from '../../supervisor/cli/dispatch.js';
import { keygenCommand } from '../../supervisor/cli/commands/keygen.js';
import { verifyCommand } from '../../supervisor/cli/commands/verify.js';
import { inferCommand } from '../../supervisor/cli/commands/infer.js';
import { parseIdentity, parsePublicKey } from '../../supervisor/crypto/keys.js';
import { startTestNode, type TestNode } from '../helpers/test-node.js';
import type { CliIO } from '../../supervisor/cli/command.js';

function io(cwd = os.tmpdir()): CliIO & { out: string; err: string } {
  const o = { out: '', err: '', env: {} as NodeJS.ProcessEnv, cwd } as CliIO & { out: string; err: string };
  o.stdout = (s) => void (o.out += s);
  o.stderr = (s) => void (o.err += s);
  return o;
}
const fedai = (args: string[], i = io()) => dispatch('fedai', [keygenCommand, inferCommand, verifyCommand], args, i).then((code) => ({ code, ...i }));

let t: TestNode;
beforeAll(async () => {
  t = await startTestNode();
});
afterAll(async () => t?.stop());

describe('fedai CLI', () => {
  it('keygen prints a usable pair, as text or JSON', async () => {
    const r = await fedai(['keygen', '--json']);
    expect(r.code).toBe(0);
    const k = JSON.parse(r.out);
    expect(parseIdentity(k.nsec).npub).toBe(k.npub);
    expect(Buffer.from(parsePublicKey(k.npub)).toString('hex')).toBe(k.pubHex);
    const txt = await fedai(['keygen']);
    expect(txt.code).toBe(0);
    expect(txt.out).toMatch(/^nsec nsec1\w+\nnpub npub1\w+\n$/);
  });

  it('--help, unknown commands and bad flags have distinct exit codes', async () => {
    expect((await fedai(['--help'])).code).toBe(0);
    const inferHelp = await fedai(['infer', '--help']);
    expect(inferHelp.code).toBe(0);
    expect(inferHelp.out).toContain('--request-id');
    expect((await fedai(['frobnicate'])).code).toBe(2);
    expect((await fedai(['keygen', '--bogus'])).code).toBe(2);
    expect((await fedai(['infer', '--prompt', 'x'])).code).toBe(2);
  });

  it('infer --json reuses --request-id, verifies against the node key, and verify re-checks the saved reply', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fedai-cli-'));
    const out = path.join(dir, 'reply.json');
    const r = await fedai(['infer', '--node', t.url, '--data-dir', t.dataDir, '--prompt', 'hi there', '--request-id', 'fixed-id-1', '--out', out, '--json'], io(dir));
    expect(r.code).toBe(0);
    const body = JSON.parse(r.out);
    expect(body.verified).toBe(true);
    expect(body.response.payload.requestId).toBe('fixed-id-1');
    const v = await fedai(['verify', out, '--key-id', t.node.identity.node.npub], io(dir));
    expect(v.code).toBe(0);
    expect(v.out).toContain('ok   response');
    const reply = JSON.parse(readFileSync(out, 'utf8'));
    reply.response.payload.output = 'forged';
    writeFileSync(out, JSON.stringify(reply));
    const bad = await fedai(['verify', out], io(dir));
    expect(bad.code).toBe(1);
    expect(bad.out).toContain('FAIL response');
  });

  it('infer exits 1 with the error body when the node refuses, and fails verification against a wrong pinned key', async () => {
    const r = await fedai(['infer', '--node', t.url, '--data-dir', t.dataDir, '--prompt', 'x', '--max-tokens', '99999']);
    expect(r.code).toBe(1);
    expect(r.err).toContain('max-tokens-exceeded');
    const other = JSON.parse((await fedai(['keygen', '--json'])).out).npub;
    const w = await fedai(['infer', '--node', t.url, '--data-dir', t.dataDir, '--prompt', 'x', '--node-key-id', other]);
    expect(w.code).toBe(1);
    expect(w.err).toContain('verification FAILED');
  });

  it('infer --stream prints deltas and verifies the final frame', async () => {
    const r = await fedai(['infer', '--node', t.url, '--data-dir', t.dataDir, '--prompt', 'stream it', '--stream']);
    expect(r.code).toBe(0);
    expect(r.err).toContain('verified:');
    expect(r.out.trim().length).toBeGreaterThan(0);
  });
});
