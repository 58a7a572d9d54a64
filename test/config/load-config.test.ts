/**
 * loadConfig(): defaults, typed parsing, and refusal (never a silent fallback) of values that do not
 * parse, with every problem reported together.
 */
import { describe, expect, test } from '@jest/globals';
import { ConfigError, configFrom, loadConfig } from '../../supervisor/config/load-config.js';
import { ENV_SPEC, type EnvName } from '../../supervisor/config/env-spec.js';

const ROUTER_NPUB = 'npub1gekhljh9v0jukzdq6xrshdvqx3yqgctc0xs5jjw0yg597xaw8uns47vduw';
const CLIENT_NPUB = 'npub183e2mk60muy6l98se9xhl6f28p48uux03gwctytrs6aj2dw8kxcsw0rcm2';

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('defaults', () => {
  test('an empty environment gives every default, typed', () => {
    const c = loadConfig({});
    expect(c.NODE_MAX_REQUEST_BYTES).toBe(1_048_576);
    expect(c.NODE_MAX_TOKENS).toBe(4096);
    expect(c.NODE_MAX_PROMPT_BYTES).toBe(262_144);
    expect(c.NODE_REPLAY_WINDOW_MS).toBe(300_000);
    expect(c.NODE_PORT).toBe(8081);
    expect(c.NODE_RUNNER).toBe('mock');
    expect(c.LOG_LEVEL).toBe('info');
    expect(c.NODE_REQUIRE_PAYMENT).toBe(false);
    expect(c.NODE_PRICE_INPUT_SATS).toBe(0);
    expect(c.NODE_ROUTER_ALLOWLIST).toEqual([]);
    expect(c.ROUTER_ENDPOINT).toBeUndefined();
    expect(c.NODE_PRIVATE_KEY_PEM).toBeUndefined();
  });

  test('the request-size and token limits are bounded even when unset (upstream defect 6)', () => {
    const c = loadConfig({});
    expect(Number.isSafeInteger(c.NODE_MAX_REQUEST_BYTES)).toBe(true);
    expect(c.NODE_MAX_REQUEST_BYTES).toBeLessThanOrEqual(ENV_SPEC.NODE_MAX_REQUEST_BYTES.max);
    expect(c.NODE_MAX_TOKENS).toBeGreaterThanOrEqual(1);
  });

  test('every default in ENV_SPEC parses (no default is itself invalid)', () => {
    const c = loadConfig({}) as Record<string, unknown>;
    for (const [name, spec] of Object.entries(ENV_SPEC)) {
      if ('default' in spec) expect([name, c[name] === undefined]).toEqual([name, false]);
    }
  });

  test('process.env is not read when an env object is passed', () => {
    const saved = process.env.NODE_PORT;
    process.env.NODE_PORT = 'not-a-port';
    try {
      expect(loadConfig({}).NODE_PORT).toBe(8081);
    } finally {
      if (saved === undefined) delete process.env.NODE_PORT;
      else process.env.NODE_PORT = saved;
    }
  });
});

describe('parsing', () => {
  test('values are parsed by kind: int, number, bool, url, csv, enum', () => {
    const c = configFrom({
      NODE_PORT: ' 9000 ',
      NODE_PRICE_INPUT_SATS: '0.25',
      NODE_REQUIRE_PAYMENT: 'TRUE',
      NODE_LN_REQUIRE_PREIMAGE: '0',
      ROUTER_ENDPOINT: 'https://router.example.com/',
      NODE_ROUTER_ALLOWLIST: ` ${ROUTER_NPUB} ,, ${CLIENT_NPUB},`,
      NODE_RUNNER: 'llama_cpp',
      LOG_LEVEL: 'debug',
    });
    expect(c.NODE_PORT).toBe(9000);
    expect(c.NODE_PRICE_INPUT_SATS).toBe(0.25);
    expect(c.NODE_REQUIRE_PAYMENT).toBe(true);
    expect(c.NODE_LN_REQUIRE_PREIMAGE).toBe(false);
    expect(c.ROUTER_ENDPOINT).toBe('https://router.example.com');
    expect(c.NODE_ROUTER_ALLOWLIST).toEqual([ROUTER_NPUB, CLIENT_NPUB]);
    expect(c.NODE_RUNNER).toBe('llama_cpp');
    expect(c.LOG_LEVEL).toBe('debug');
  });

  test('an empty (or blank) string counts as unset: the default applies', () => {
    const c = loadConfig({ NODE_PORT: '', NODE_MAX_TOKENS: '   ', NODE_RUNNER: '', ROUTER_ENDPOINT: '', NODE_ROUTER_ALLOWLIST: '' });
    expect(c.NODE_PORT).toBe(8081);
    expect(c.NODE_MAX_TOKENS).toBe(4096);
    expect(c.NODE_RUNNER).toBe('mock');
    expect(c.ROUTER_ENDPOINT).toBeUndefined();
    expect(c.NODE_ROUTER_ALLOWLIST).toEqual([]);
  });

  test.each([
    ['NODE_PORT', 'abc', /^NODE_PORT="abc": expected an integer$/],
    ['NODE_PORT', '80.5', /^NODE_PORT=.*expected an integer/],
    ['NODE_PORT', '1e3', /^NODE_PORT=.*expected an integer/],
    ['NODE_PORT', '70000', /^NODE_PORT=70000: must be ≤ 65535$/],
    ['NODE_MAX_TOKENS', '0', /^NODE_MAX_TOKENS=0: must be ≥ 1$/],
    ['NODE_MAX_TOKENS', '-1', /^NODE_MAX_TOKENS=-1: must be ≥ 1$/],
    ['NODE_MAX_REQUEST_BYTES', '99999999999', /^NODE_MAX_REQUEST_BYTES=99999999999: must be ≤/],
    ['NODE_MAX_REQUEST_BYTES', '123456789012345678901234', /^NODE_MAX_REQUEST_BYTES=.*out of range/],
    ['NODE_PRICE_INPUT_SATS', 'cheap', /^NODE_PRICE_INPUT_SATS="cheap": expected a number$/],
    ['NODE_PRICE_INPUT_SATS', 'Infinity', /^NODE_PRICE_INPUT_SATS=.*expected a number/],
    ['NODE_PRICE_INPUT_SATS', '-1', /^NODE_PRICE_INPUT_SATS=-1: must be ≥ 0$/],
    ['NODE_REQUIRE_PAYMENT', 'maybe', /^NODE_REQUIRE_PAYMENT="maybe": expected true or false$/],
    ['ROUTER_ENDPOINT', 'router.example.com', /^ROUTER_ENDPOINT=.*expected an absolute http\(s\) URL$/],
    ['ROUTER_ENDPOINT', 'ftp://router.example.com', /^ROUTER_ENDPOINT=.*expected an http\(s\) URL$/],
  ] as Array<[EnvName, string, RegExp]>)('%s=%s is an error that names the variable', (name, value, re) => {
    const p = problemsOf({ [name]: value });
    expect(p).toHaveLength(1);
    expect(p[0]).toMatch(re);
  });

  test.each([
    ['NODE_RUNNER', 'mok'],
    ['LOG_LEVEL', 'loud'],
    ['NODE_ENV', 'prod'],
    ['NODE_PRICE_UNIT', 'tokens'],
    ['NODE_LN_BACKEND', 'LND'],
  ] as Array<[EnvName, string]>)('an enum typo (%s=%s) is an error listing the allowed values, not a fallback', (name, value) => {
    const p = problemsOf({ [name]: value });
    expect(p).toHaveLength(1);
    expect(p[0]).toContain(`${name}="${value}": expected one of `);
    for (const allowed of (ENV_SPEC[name] as { values: readonly string[] }).values) expect(p[0]).toContain(allowed);
  });
});

describe('cross-checks', () => {
  test.each([
    ['NODE_ROUTER_ALLOWLIST', `${ROUTER_NPUB},not-an-npub`, 'NODE_ROUTER_ALLOWLIST: "not-an-npub" is not an npub'],
    ['NODE_ROUTER_ALLOWLIST', '466d7fcae563e5cb09a0d1870bb580344804617879a14949cf22285f1bae3f27', 'is not an npub'],
    ['NODE_ROUTER_BLOCK', 'npub1nope', 'NODE_ROUTER_BLOCK: "npub1nope" is not an npub'],
    ['ROUTER_KEY_ID', 'router-key-1', 'ROUTER_KEY_ID: "router-key-1" is not an npub'],
    ['NODE_KEY_ID', 'npub1r72drc4k609u2jwsgt5qy5at4aea9fsu8lqua4f20d26az9h80ms45kp92', 'NODE_KEY_ID:'],
  ] as Array<[EnvName, string, string]>)('%s=%s: a non-npub is an error', (name, value, expected) => {
    const p = problemsOf({ [name]: value });
    expect(p).toHaveLength(1);
    expect(p[0]).toContain(expected);
  });

  test('dependent settings are checked', () => {
    expect(problemsOf({ NODE_RUNNER: 'exec' })).toEqual(['NODE_RUNNER=exec needs NODE_RUNNER_EXEC']);
    expect(problemsOf({ NODE_LN_BACKEND: 'lnd' })[0]).toMatch(/NODE_LN_BACKEND=lnd needs/);
    expect(problemsOf({ NODE_LN_BACKEND: 'cln', NODE_CLN_REST_URL: 'https://cln.example' })[0]).toMatch(/NODE_LN_BACKEND=cln needs/);
    expect(problemsOf({ NODE_PRIVATE_KEY_PEM: 'x', NODE_PRIVATE_KEY_FILE: '/k' })[0]).toMatch(/both set/);
    expect(problemsOf({ NODE_RUNNER_RESTART_BASE_MS: '5000', NODE_RUNNER_RESTART_MAX_MS: '100' })[0]).toMatch(/RESTART_MAX_MS/);
    expect(problemsOf({ NODE_SANDBOX_ALLOWED_ENDPOINTS: 'localhost:8080' })[0]).toMatch(/NODE_SANDBOX_ALLOWED_ENDPOINTS: "localhost:8080"/);
    expect(problemsOf({ NODE_RELAY_TRUST: 'wss://r.example' })[0]).toMatch(/NODE_RELAY_TRUST/);
    expect(configFrom({ NODE_RUNNER: 'exec', NODE_RUNNER_EXEC: '["python3","r.py"]' }).NODE_RUNNER_EXEC).toBe('["python3","r.py"]');
  });

  test('valid router trust settings pass', () => {
    const c = configFrom({ ROUTER_KEY_ID: ROUTER_NPUB, NODE_ROUTER_ALLOWLIST: CLIENT_NPUB, NODE_ROUTER_BLOCK: '' });
    expect(c.ROUTER_KEY_ID).toBe(ROUTER_NPUB);
    expect(c.NODE_ROUTER_ALLOWLIST).toEqual([CLIENT_NPUB]);
  });
});

describe('reporting', () => {
  test('several problems, parse and cross-check alike, are reported together in one ConfigError', () => {
    let caught: unknown;
    try {
      loadConfig({ NODE_PORT: 'x', NODE_RUNNER: 'mok', LOG_LEVEL: 'loud', NODE_ROUTER_ALLOWLIST: 'nope', NODE_MAX_TOKENS: '0' });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const e = caught as ConfigError;
    expect(e.problems).toHaveLength(5);
    for (const name of ['NODE_PORT', 'NODE_RUNNER', 'LOG_LEVEL', 'NODE_ROUTER_ALLOWLIST', 'NODE_MAX_TOKENS']) {
      expect(e.problems.some((p) => p.startsWith(name))).toBe(true);
      expect(e.message).toContain(name);
    }
    expect(e.message.startsWith('invalid configuration:')).toBe(true);
  });

  test('a secret value is never echoed in a problem (secret vars are strings, which always parse)', () => {
    const secrets = Object.entries(ENV_SPEC).filter(([, s]) => 'secret' in s && s.secret);
    expect(secrets.length).toBeGreaterThan(0);
    for (const [, spec] of secrets) expect(spec.kind).toBe('string');
  });
});

describe('unknownVariables', () => {
  test('names NODE_/ROUTER_ look-alikes that are not in the table, but not Node.js own variables', async () => {
    const { unknownVariables } = await import('../../supervisor/config/load-config.js');
    expect(unknownVariables({ NODE_RUNER: 'mock', ROUTER_KEYID: 'x', NODE_OPTIONS: '--x', NODE_EXTRA_CA_CERTS: '/a', NODE_RUNNER: 'mock', PATH: '/bin' })).toEqual(['NODE_RUNER', 'ROUTER_KEYID']);
  });
});
