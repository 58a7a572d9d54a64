/**
 * NODE_SANDBOX_ALLOWED_ENDPOINTS: URL prefixes compared as parsed URLs, never as strings. An entry
 * admits a URL when the scheme, the host (case-insensitive, IDNA/IPv6 normalised by WHATWG URL) and
 * the port (default ports made explicit) are equal and the entry's path is a prefix of the URL's path
 * on a segment boundary (plain HTTP only: CONNECT for https is decided by scheme + host + port, since the
 * path is inside the tunnel): `http://localhost:8085` does not admit `http://localhost:8085.evil.com`, and
 * `http://h/v1` admits `/v1` and `/v1/x` but not `/v10`. Query and fragment of an entry are not allowed.
 */

export interface EndpointEntry {
  readonly scheme: 'http' | 'https';
  readonly host: string;
  readonly port: number;
  /** Path prefix without a trailing slash ('' = any path). */
  readonly path: string;
  readonly source: string;
}

export type AllowDecision = { allowed: true; entry: EndpointEntry } | { allowed: false; reason: string };

const DEFAULT_PORT = { http: 80, https: 443 } as const;

function portOf(u: URL, scheme: 'http' | 'https'): number {
  return u.port === '' ? DEFAULT_PORT[scheme] : Number(u.port);
}

/** Normalises a path: percent-decoding of unreserved characters is left to URL; dot segments are resolved by URL. */
function normPath(p: string): string {
  return p.replace(/\/+$/, '');
}

export function parseEntry(entry: string): EndpointEntry {
  let u: URL;
  try {
    u = new URL(entry.trim());
  } catch {
    throw new Error(`allowed endpoint ${JSON.stringify(entry)} is not an absolute URL`);
  }
  const scheme = u.protocol === 'http:' ? 'http' : u.protocol === 'https:' ? 'https' : undefined;
  if (!scheme) throw new Error(`allowed endpoint ${JSON.stringify(entry)}: scheme must be http or https`);
  if (u.username || u.password) throw new Error(`allowed endpoint ${JSON.stringify(entry)}: credentials are not allowed`);
  if (u.search || u.hash) throw new Error(`allowed endpoint ${JSON.stringify(entry)}: query and fragment are not allowed`);
  if (!u.hostname) throw new Error(`allowed endpoint ${JSON.stringify(entry)}: host missing`);
  return { scheme, host: u.hostname.toLowerCase(), port: portOf(u, scheme), path: normPath(u.pathname), source: entry };
}

export class EndpointAllowlist {
  readonly entries: readonly EndpointEntry[];

  constructor(entries: readonly string[]) {
    this.entries = entries.map(parseEntry);
  }

  get size(): number {
    return this.entries.length;
  }

  /** Checks an absolute http(s) URL (a proxy request line in absolute form). */
  checkUrl(url: string): AllowDecision {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      return { allowed: false, reason: 'not an absolute URL' };
    }
    const scheme = u.protocol === 'http:' ? 'http' : u.protocol === 'https:' ? 'https' : undefined;
    if (!scheme) return { allowed: false, reason: `scheme ${u.protocol} not allowed` };
    if (u.username || u.password) return { allowed: false, reason: 'credentials in URL' };
    const host = u.hostname.toLowerCase();
    const port = portOf(u, scheme);
    const path = u.pathname;
    for (const e of this.entries) {
      if (e.scheme !== scheme || e.host !== host || e.port !== port) continue;
      if (e.path === '' || path === e.path || path.startsWith(e.path + '/')) return { allowed: true, entry: e };
    }
    return { allowed: false, reason: `${scheme}://${u.host}${path} matches no allowed endpoint` };
  }

  /** Checks a CONNECT target (`host:port`): only https entries whose host and port match admit it. */
  checkConnect(authority: string): AllowDecision {
    let u: URL;
    try {
      if (!/^(\[[0-9a-fA-F:.]+\]|[^\s/?#@[\]:]+):\d{1,5}$/.test(authority)) throw new Error('bad authority');
      u = new URL(`https://${authority}/`);
    } catch {
      return { allowed: false, reason: 'CONNECT target is not host:port' };
    }
    const host = u.hostname.toLowerCase();
    const port = portOf(u, 'https');
    for (const e of this.entries) {
      // The path of an https entry cannot be enforced inside the TLS tunnel: scheme + host + port decide.
      if (e.scheme === 'https' && e.host === host && e.port === port) return { allowed: true, entry: e };
    }
    return { allowed: false, reason: `CONNECT ${host}:${port} matches no https endpoint` };
  }
}
