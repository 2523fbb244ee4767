// issuer.mjs — the benchmarks' OpenID issuer: one RS256 key (like Clerk's
// default), the discovery document and the key set dojo fetches, and a mint
// endpoint the benchmark scripts ask for real signed tokens.
//
//   node bench/lib/issuer.mjs        prints "issuer http://127.0.0.1:PORT" and serves
//
//   GET /.well-known/openid-configuration   {issuer, jwks_uri}
//   GET /.well-known/jwks.json              {keys: [the public key]}
//   GET /token?sub=S[&email=E][&name=N]     one token (text), valid BENCH_TOKEN_TTL_S
//   GET /tokens?prefix=P&n=N[&from=K]       JSON array: tokens for subjects P<K>..P<K+N-1>,
//                                           each with email P<i>@bench.example
//
// Tokens carry what Clerk's "convex" template carries (iss, sub, aud "convex",
// azp, iat, nbf, exp, jti, and email/name when given). Started by bench/run.sh;
// it runs until killed.

import http from 'node:http';
import { randomUUID } from 'node:crypto';
import * as jose from 'jose';

const TTL_S = Number(process.env.BENCH_TOKEN_TTL_S ?? 3600);
const KID = `bench-rs256-${Date.now().toString(36)}`;

const { privateKey, publicKey } = await jose.generateKeyPair('RS256', { extractable: true });
const publicJwk = { ...(await jose.exportJWK(publicKey)), kid: KID, alg: 'RS256', use: 'sig' };
let issuerUrl = '';

async function mint(sub, { email, name } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    azp: 'http://localhost:5173',
    iss: issuerUrl,
    sub,
    aud: 'convex',
    iat: now,
    nbf: now,
    exp: now + TTL_S,
    jti: randomUUID(),
  };
  if (email) Object.assign(claims, { email, email_verified: true });
  if (name) claims.name = name;
  return new jose.SignJWT(claims).setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: KID }).sign(privateKey);
}

function send(res, status, body, type = 'application/json') {
  res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
}

const server = http.createServer(async (req, res) => {
  try {
    const u = new URL(req.url, 'http://x');
    const q = (k) => u.searchParams.get(k) ?? undefined;
    switch (u.pathname) {
      case '/.well-known/openid-configuration':
        return send(res, 200, { issuer: issuerUrl, jwks_uri: `${issuerUrl}/.well-known/jwks.json` });
      case '/.well-known/jwks.json':
        return send(res, 200, { keys: [publicJwk] });
      case '/token':
        if (!q('sub')) return send(res, 400, { error: 'sub is required' });
        return send(res, 200, await mint(q('sub'), { email: q('email'), name: q('name') }), 'text/plain');
      case '/tokens': {
        const prefix = q('prefix') ?? 'bench_user_';
        const n = Number(q('n') ?? 1);
        const from = Number(q('from') ?? 0);
        const out = [];
        for (let i = from; i < from + n; i++) out.push(await mint(`${prefix}${i}`, { email: `${prefix}${i}@bench.example` }));
        return send(res, 200, out);
      }
      default:
        return send(res, 404, { error: 'not found' });
    }
  } catch (err) {
    send(res, 500, { error: String(err) });
  }
});

server.listen(0, '127.0.0.1', () => {
  issuerUrl = `http://127.0.0.1:${server.address().port}`;
  process.stdout.write(`issuer ${issuerUrl}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
