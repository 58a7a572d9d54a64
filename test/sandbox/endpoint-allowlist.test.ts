import { describe, expect, test } from '@jest/globals';
import { EndpointAllowlist, parseEntry } from '../../supervisor/sandbox/endpoint-allowlist.js';

describe('EndpointAllowlist: URLs compared parsed, never as strings', () => {
  const a = new EndpointAllowlist(['http://localhost:8085', 'https://api.example.com/v1', 'http://10.0.0.5/models/', 'http://[::1]:9000/x']);
  const ok = (u: string) => a.checkUrl(u).allowed;

  test('admits the exact origin and any path under it', () => {
    expect(ok('http://localhost:8085')).toBe(true);
    expect(ok('http://localhost:8085/')).toBe(true);
    expect(ok('http://localhost:8085/v1/chat?x=1')).toBe(true);
    expect(ok('HTTP://LOCALHOST:8085/a')).toBe(true);
  });

  test('a host that merely shares a prefix string is refused', () => {
    expect(ok('http://localhost:8085.evil.com/')).toBe(false);
    expect(ok('http://localhost:80850/')).toBe(false);
    expect(ok('http://localhost.evil.com:8085/')).toBe(false);
    expect(ok('http://localhost:8085@evil.com/')).toBe(false);
    expect(ok('http://evil.com/?http://localhost:8085')).toBe(false);
    expect(ok('http://evil.com#http://localhost:8085')).toBe(false);
  });

  test('scheme and port must match; default ports are explicit', () => {
    expect(ok('https://localhost:8085/')).toBe(false);
    expect(ok('http://localhost:8086/')).toBe(false);
    expect(ok('http://localhost/')).toBe(false);
    expect(ok('http://10.0.0.5:80/models/x')).toBe(true);
    expect(ok('http://10.0.0.5:8080/models/x')).toBe(false);
    expect(ok('https://api.example.com:443/v1/x')).toBe(true);
    expect(ok('http://api.example.com/v1/x')).toBe(false);
    expect(ok('ftp://localhost:8085/')).toBe(false);
  });

  test('path prefixes match on a segment boundary', () => {
    expect(ok('https://api.example.com/v1')).toBe(true);
    expect(ok('https://api.example.com/v1/')).toBe(true);
    expect(ok('https://api.example.com/v1/models')).toBe(true);
    expect(ok('https://api.example.com/v10')).toBe(false);
    expect(ok('https://api.example.com/v1x/models')).toBe(false);
    expect(ok('https://api.example.com/')).toBe(false);
    expect(ok('http://10.0.0.5/models')).toBe(true);
    expect(ok('http://10.0.0.5/modelsx')).toBe(false);
  });

  test('dot segments are resolved before matching', () => {
    expect(ok('https://api.example.com/v1/../admin')).toBe(false);
    expect(ok('https://api.example.com/v1/%2e%2e/admin')).toBe(false);
    expect(ok('https://api.example.com/v1/./models')).toBe(true);
  });

  test('credentials in the URL are refused; IPv6 literals compare normalised', () => {
    expect(ok('http://user:pw@localhost:8085/')).toBe(false);
    expect(ok('http://[::1]:9000/x/y')).toBe(true);
    expect(ok('http://[0:0:0:0:0:0:0:1]:9000/x')).toBe(true);
    expect(ok('http://[::2]:9000/x')).toBe(false);
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
