// proxy.mjs — a TCP proxy in front of dojo that can cut a connection at a
// chosen moment: armed with cutAfterNextClientWrite(), it forwards the
// client's next chunk to the server and then destroys both sockets before
// anything more comes back — so the server runs what it received (a
// mutation) but the client never hears the answer and has to reconnect.

import net from 'node:net';

export async function startProxy(targetUrl) {
  const target = new URL(targetUrl);
  const pairs = new Set();
  let armed = false;
  let cuts = 0;
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    const pair = { client, upstream };
    pairs.add(pair);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on('data', (chunk) => {
      upstream.write(chunk);
      if (armed) {
        armed = false;
        cuts += 1;
        // Let the chunk reach the server, answer nothing.
        upstream.pause();
        client.pause();
        setTimeout(drop, 50);
        upstream.removeAllListeners('data');
      }
    });
    upstream.on('data', (chunk) => client.write(chunk));
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', drop);
    upstream.on('close', drop);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    cutAfterNextClientWrite() {
      armed = true;
    },
    get cuts() {
      return cuts;
    },
    async close() {
      for (const p of pairs) {
        p.client.destroy();
        p.upstream.destroy();
      }
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
