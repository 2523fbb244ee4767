// issuer.mjs — a local OpenID issuer that signs tokens the way Clerk's "convex"
// JWT template does, for the end-to-end tests.
//
// It serves /.well-known/openid-configuration ({issuer, jwks_uri}) and
// /.well-known/jwks.json on 127.0.0.1 (an ephemeral port), counts the requests
// per path (so tests can see when dojo refetches the key set), and can hold a
// path's answers back until released (so a request can be kept in flight).
// Keys are made with jose: one RS256 key (the default, like Clerk), one ES256
// and one EdDSA (Ed25519), each published with its kid; more can be added,
// rotated in, or kept unpublished (a key dojo has never seen).
//
//   const issuer = await startIssuer();
//   const token = await issuer.token({ email: 'ada@example.com', name: 'Ada Lovelace' });
//   ...
//   await issuer.close();

import http from 'node:http';
import { randomBytes, randomUUID } from 'node:crypto';
import * as jose from 'jose';

const DISCOVERY_PATH = '/.well-known/openid-configuration';
const JWKS_PATH = '/.well-known/jwks.json';
const DEFAULT_LIFETIME_S = 60; // Clerk's default token lifetime
const DEFAULT_AZP = 'http://localhost:5173';

const b64url = (value) =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** A new user id shaped like Clerk's. */
export function newSubject() {
  return `user_${randomBytes(12).toString('hex')}`;
}

export async function startIssuer() {
  const keys = new Map(); // kid -> {kid, alg, privateKey, publicJwk, published}
  const current = new Map(); // alg -> kid used when a token names no kid
  const requests = new Map(); // path -> count
  const held = new Map(); // path -> {waiters: [fn]} while answers are held back
  let counter = 0;

  async function addKey({ alg = 'RS256', kid, publish = true, makeCurrent = true } = {}) {
    kid ??= `${alg.toLowerCase()}-${++counter}-${randomBytes(3).toString('hex')}`;
    const { privateKey, publicKey } = await jose.generateKeyPair(alg, { extractable: true });
    const publicJwk = { ...(await jose.exportJWK(publicKey)), kid, alg, use: 'sig' };
    keys.set(kid, { kid, alg, privateKey, publicJwk, published: publish });
    if (makeCurrent) current.set(alg, kid);
    return kid;
  }

  for (const alg of ['RS256', 'ES256', 'EdDSA']) await addKey({ alg });

  function jwks() {
    return { keys: [...keys.values()].filter((k) => k.published).map((k) => k.publicJwk) };
  }

  async function answer(res, status, body) {
    res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
    res.end(JSON.stringify(body));
  }

  const server = http.createServer(async (req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    requests.set(path, (requests.get(path) ?? 0) + 1);
    const hold = held.get(path);
    if (hold) await new Promise((resolve) => hold.waiters.push(resolve));
    if (path === DISCOVERY_PATH) {
      return answer(res, 200, { issuer: issuer.url, jwks_uri: `${issuer.url}${JWKS_PATH}` });
    }
    if (path === JWKS_PATH) return answer(res, 200, jwks());
    return answer(res, 404, { error: 'not found' });
  });
  server.keepAliveTimeout = 1000;
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  server.unref(); // a test file that forgets close() still ends

  const issuer = {
    /** The issuer URL, no trailing slash: what tokens carry in iss. */
    url: `http://127.0.0.1:${server.address().port}`,
    discoveryPath: DISCOVERY_PATH,
    jwksPath: JWKS_PATH,

    /** How many requests a path has received. */
    requestCount(path = JWKS_PATH) {
      return requests.get(path) ?? 0;
    },

    /** Adds a key; returns its kid. publish: false keeps it out of the JWKS. */
    addKey,

    /** Publishes (or unpublishes) a key made with addKey. */
    publishKey(kid, published = true) {
      keys.get(kid).published = published;
    },

    /** A new key for alg becomes the signing key; the old one stays published
     *  unless retireOld. Returns the new kid. */
    async rotate(alg = 'RS256', { retireOld = false } = {}) {
      const old = current.get(alg);
      const kid = await addKey({ alg });
      if (retireOld && old) keys.get(old).published = false;
      return kid;
    },

    /** The signing key (kid) currently used for alg. */
    currentKid(alg = 'RS256') {
      return current.get(alg);
    },

    /** Holds back every answer on path until the returned release() is called. */
    hold(path = JWKS_PATH) {
      const hold = { waiters: [] };
      held.set(path, hold);
      return () => {
        held.delete(path);
        for (const resolve of hold.waiters.splice(0)) resolve();
      };
    },

    /** The claims a Clerk "convex" template token would carry for this user. */
    claims(user = {}, opts = {}) {
      const now = Math.floor(Date.now() / 1000);
      // expiresIn is an option; it is also taken from user for convenience.
      const { sub = newSubject(), email, name, expiresIn = opts.expiresIn, ...custom } = user;
      const [given, ...family] = (name ?? '').split(' ');
      const iat = opts.iat ?? now;
      const claims = {
        azp: DEFAULT_AZP,
        exp: opts.exp ?? now + (expiresIn ?? DEFAULT_LIFETIME_S),
        iat,
        iss: opts.iss ?? issuer.url,
        jti: randomUUID().replaceAll('-', '').slice(0, 20),
        nbf: opts.nbf ?? iat,
        sub,
        aud: opts.aud === undefined ? 'convex' : opts.aud,
      };
      if (name !== undefined) {
        claims.name = name;
        claims.given_name = given;
        claims.family_name = family.join(' ') || undefined;
      }
      if (email !== undefined) {
        claims.email = email;
        claims.email_verified = true;
        claims.picture = `https://img.clerk.com/${sub}.png`;
      }
      Object.assign(claims, custom);
      for (const k of Object.keys(claims)) {
        if (claims[k] === undefined || claims[k] === null) delete claims[k];
      }
      return claims;
    },

    /**
     * A signed token like Clerk's "convex" template:
     *   user: {sub, email, name, ...custom claims} (a claim set to null is left out)
     *   opts: {alg ('RS256' | 'ES256' | 'EdDSA' | 'HS256' | 'none'), kid, expiresIn (s),
     *          exp, iat, nbf (absolute s), aud (null: none), iss, header (merged into
     *          the JOSE header; a null value removes a field)}
     */
    async token(user = {}, opts = {}) {
      const claims = issuer.claims(user, opts);
      const alg = opts.alg ?? 'RS256';
      if (alg === 'none') {
        const header = withOverrides({ alg: 'none', typ: 'JWT' }, opts.header);
        return `${b64url(header)}.${b64url(claims)}.`;
      }
      let key;
      let kid = opts.kid;
      if (alg.startsWith('HS')) {
        key = randomBytes(32);
      } else {
        kid ??= current.get(alg);
        const k = keys.get(kid);
        if (!k) throw new Error(`issuer: no key ${kid} for ${alg}`);
        key = k.privateKey;
      }
      const header = withOverrides({ alg, typ: 'JWT', ...(kid ? { kid } : {}) }, opts.header);
      return new jose.CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
        .setProtectedHeader(header)
        .sign(key);
    },

    async close() {
      for (const path of [...held.keys()]) held.get(path).waiters.splice(0).forEach((f) => f());
      held.clear();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  return issuer;
}

function withOverrides(header, overrides = {}) {
  const out = { ...header, ...overrides };
  for (const k of Object.keys(out)) if (out[k] === null) delete out[k];
  return out;
}

/** The token with its payload replaced (the signature left as it was). */
export function tamperPayload(token, change) {
  const [h, p, s] = token.split('.');
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
  return `${h}.${b64url(change(claims) ?? claims)}.${s}`;
}
