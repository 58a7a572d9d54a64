import { describe, expect, test } from '@jest/globals';
import { EndpointAllowlist, parseEntry } from '../../supervisor/sandbox/endpoint-allowlist.js';

describe('EndpointAllowlist: URLs compared parsed, never as strings', () => {
  const a = new EndpointAllowlist(['http://localhost:8085', 'https://api.example.com/v1', 'http://10.0.0.5/models/', 'http://[::1]:9000/x']);
  const ok = (u: string) => a.checkUrl(u).allowed;

  /** Each URL must get `allowed`; a failure names the URL. */
  const expectAll = (allowed: boolean, urls: readonly string[]) =>
    expect(urls.map((u) => [u, ok(u)])).toEqual(urls.map((u) => [u, allowed]));
  const admits = (...urls: string[]) => expectAll(true, urls);
  const refuses = (...urls: string[]) => expectAll(false, urls);

  test('admits the exact origin and any path under it', () => {
    admits('http://localhost:8085', 'http://localhost:8085/', 'http://localhost:8085/v1/chat?x=1', 'HTTP://LOCALHOST:8085/a');
  });

  test('a host that merely shares a prefix string is refused', () => {
    refuses(
      'http://localhost:8085.evil.com/',
      'http://localhost:80850/',
      'http://localhost.evil.com:8085/',
      'http://localhost:8085@evil.com/',
      'http://evil.com/?http://localhost:8085',
      'http://evil.com#http://localhost:8085',
    );
  });

  test('scheme and port must match; default ports are explicit', () => {
    refuses('https://localhost:8085/', 'http://localhost:8086/', 'http://localhost/', 'http://10.0.0.5:8080/models/x', 'http://api.example.com/v1/x', 'ftp://localhost:8085/');
    admits('http://10.0.0.5:80/models/x', 'https://api.example.com:443/v1/x');
  });

  test('path prefixes match on a segment boundary', () => {
    admits('https://api.example.com/v1', 'https://api.example.com/v1/', 'https://api.example.com/v1/models', 'http://10.0.0.5/models');
    refuses('https://api.example.com/v10', 'https://api.example.com/v1x/models', 'https://api.example.com/', 'http://10.0.0.5/modelsx');
  });

  test('dot segments are resolved before matching', () => {
    refuses('https://api.example.com/v1/../admin', 'https://api.example.com/v1/%2e%2e/admin');
    admits('https://api.example.com/v1/./models');
  });

  test('credentials in the URL are refused; IPv6 literals compare normalised', () => {
    refuses('http://user:pw@localhost:8085/', 'http://[::2]:9000/x');
    admits('http://[::1]:9000/x/y', 'http://[0:0:0:0:0:0:0:1]:9000/x');
  });

  test('unparsable input is refused, never thrown', () => {
    expect(a.checkUrl('not a url').allowed).toBe(false);
    expect(a.checkUrl('').allowed).toBe(false);
    expect(a.checkUrl('/relative/path').allowed).toBe(false);
  });

  test('CONNECT: only https entries, by host and port', () => {
    expect(a.checkConnect('api.example.com:443').allowed).toBe(true);
    expect(a.checkConnect('API.EXAMPLE.COM:443').allowed).toBe(true);
    expect(a.checkConnect('api.example.com:8443').allowed).toBe(false);
    expect(a.checkConnect('api.example.com.evil.com:443').allowed).toBe(false);
    expect(a.checkConnect('localhost:8085').allowed).toBe(false); // http entry does not admit a tunnel
    expect(a.checkConnect('api.example.com').allowed).toBe(false);
    expect(a.checkConnect('api.example.com:443/x').allowed).toBe(false);
    expect(a.checkConnect('user@api.example.com:443').allowed).toBe(false);
    expect(a.checkConnect('').allowed).toBe(false);
  });

  test('an empty allowlist admits nothing', () => {
    const none = new EndpointAllowlist([]);
    expect(none.checkUrl('http://localhost:8085/').allowed).toBe(false);
    expect(none.checkConnect('localhost:443').allowed).toBe(false);
  });

  test('bad entries are rejected at construction', () => {
    expect(() => parseEntry('localhost:8085')).toThrow();
    expect(() => parseEntry('ftp://x/')).toThrow(/scheme/);
    expect(() => parseEntry('http://u:p@x/')).toThrow(/credentials/);
    expect(() => parseEntry('http://x/?q=1')).toThrow(/query/);
    expect(parseEntry('https://X.example:443/a/').port).toBe(443);
    expect(parseEntry('https://X.example:443/a/').path).toBe('/a');
    expect(parseEntry('http://x.example').port).toBe(80);
  });
});
