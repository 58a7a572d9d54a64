/**
 * Resolves the node's signing identity and the set of routers it trusts.
 *
 * Production (NODE_ENV=production) fails closed: no key is generated, and a node without a key or
 * without any trusted router does not start (upstream defect 1 served any npub). In development a node
 * key and a dev router key are created once under <NODE_DATA_DIR>/dev/ (mode 0600) so that `npm start`
 * gives a full signed round trip out of the box; the dev router key is trusted only while no router
 * trust is configured at all.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Config } from './load-config.js';
import { ConfigError } from './load-config.js';
import { encodeNsec, generateIdentity, KeyFormatError, parseIdentity, toNpub, type Identity } from '../crypto/keys.js';

export interface ResolvedIdentity {
  node: Identity;
  /** Present in development when the dev router key is the trusted router. */
  devRouter?: Identity;
  /** npubs allowed to call /infer. */
  trustedRouters: ReadonlySet<string>;
  blockedRouters: ReadonlySet<string>;
  /** Files created by this call (first dev start). */
  created: string[];
}

function loadOrCreateKey(file: string, created: string[]): Identity {
  if (existsSync(file)) {
    try {
      return parseIdentity(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new ConfigError([`${file}: ${(err as Error).message}`]);
    }
  }
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const id = generateIdentity();
  writeFileSync(file, encodeNsec(id.secretKey) + '\n', { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
  created.push(file);
  return id;
}

export function devKeyPaths(dataDir: string): { node: string; router: string } {
  return { node: path.join(dataDir, 'dev', 'node.nsec'), router: path.join(dataDir, 'dev', 'router.nsec') };
}

export function resolveIdentity(config: Config, dataDir: string): ResolvedIdentity {
  const problems: string[] = [];
  const created: string[] = [];
  const production = config.NODE_ENV === 'production';
  let node: Identity | undefined;

  const keyText =
    config.NODE_PRIVATE_KEY_PEM ??
    (config.NODE_PRIVATE_KEY_FILE !== undefined ? readKeyFile(config.NODE_PRIVATE_KEY_FILE, problems) : undefined);
  if (keyText !== undefined) {
    try {
      node = parseIdentity(keyText);
    } catch (err) {
      if (!(err instanceof KeyFormatError)) throw err;
      problems.push(`NODE_PRIVATE_KEY_PEM: ${err.message}`);
    }
  } else if (production) {
    problems.push('NODE_PRIVATE_KEY_PEM (or NODE_PRIVATE_KEY_FILE) is required when NODE_ENV=production');
  } else {
    node = loadOrCreateKey(devKeyPaths(dataDir).node, created);
  }
  if (node && config.NODE_KEY_ID !== undefined && config.NODE_KEY_ID !== node.npub) {
    problems.push(`NODE_KEY_ID ${config.NODE_KEY_ID} does not match the private key, whose npub is ${node.npub}`);
  }

  const trusted = new Set<string>();
  if (config.ROUTER_PUBLIC_KEY_PEM !== undefined) {
    try {
      const npub = toNpub(config.ROUTER_PUBLIC_KEY_PEM);
      if (config.ROUTER_KEY_ID !== undefined && config.ROUTER_KEY_ID !== npub) {
        problems.push(`ROUTER_KEY_ID ${config.ROUTER_KEY_ID} does not match ROUTER_PUBLIC_KEY_PEM (${npub})`);
      }
      trusted.add(npub);
    } catch (err) {
      problems.push(`ROUTER_PUBLIC_KEY_PEM: ${(err as Error).message}`);
    }
  }
  if (config.ROUTER_KEY_ID !== undefined) trusted.add(config.ROUTER_KEY_ID);
  for (const npub of config.NODE_ROUTER_ALLOWLIST) trusted.add(npub);

  let devRouter: Identity | undefined;
  if (trusted.size === 0) {
    if (production) {
      problems.push('no trusted router: set ROUTER_PUBLIC_KEY_PEM, ROUTER_KEY_ID or NODE_ROUTER_ALLOWLIST (the node refuses to serve /infer to anyone)');
    } else {
      devRouter = loadOrCreateKey(devKeyPaths(dataDir).router, created);
      trusted.add(devRouter.npub);
    }
  }
  if (node && trusted.has(node.npub)) problems.push('the node key must not also be a trusted router key');
  if (problems.length > 0 || !node) throw new ConfigError(problems);
  const result: ResolvedIdentity = { node, trustedRouters: trusted, blockedRouters: new Set(config.NODE_ROUTER_BLOCK), created };
  if (devRouter) result.devRouter = devRouter;
  return result;
}

function readKeyFile(file: string, problems: string[]): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    problems.push(`NODE_PRIVATE_KEY_FILE ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    return undefined;
  }
}
