// fmt.mjs — turns the JSON a Node benchmark printed into the figures of its
// result line (used by bench/run.sh and bench/callgrind.sh).
//
//   node bench/lib/fmt.mjs rtt-write|rtt-noop|fanout|precision|field:NAME JSON

const [kind, text] = process.argv.slice(2);
const r = JSON.parse(text);
const f = (x, d = 1) => Number(x).toFixed(d);
const rtt = (x) =>
  `p50 ${f(x.p50Ms, 2)} ms, p99 ${f(x.p99Ms, 2)} ms, max ${f(x.maxMs, 2)} ms (${x.n} sequential, ${f(x.perSecond, 0)}/s)`;

const formats = {
  'rtt-write': () => rtt(r.write),
  'rtt-noop': () => rtt(r.noop),
  fanout: () =>
    `last of ${r.sessions} after ${f(r.maxMs)} ms: p50 ${f(r.p50Ms)} ms, p99 ${f(r.p99Ms)} ms, max ${f(r.maxMs)} ms; ` +
    `server stamped pushes at ${f(r.serverFirstMs)}..${f(r.serverLastMs)} ms; grant answered in ${f(r.grantMs)} ms`,
  precision: () =>
    `${r.pushed} of ${r.sessions} sessions pushed (${r.others} besides the granted user; 1 in all is right), ` +
    `the granted user's push received after ${f(r.targetMs)} ms (server stamp ${f(r.targetServerMs)} ms)`,
};
if (kind.startsWith('field:')) console.log(r[kind.slice(6)]);
else if (formats[kind]) console.log(formats[kind]());
else {
  console.error(`fmt.mjs: unknown kind ${kind}`);
  process.exit(2);
}
