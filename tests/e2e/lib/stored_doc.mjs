// stored_doc.mjs — what a tool writing around dojo does to a stored
// document, for the tests that tamper with the database behind dojo's back
// (a balance the ledger does not account for, a rename from outside the
// servers). Documents are kept as src/store/doc_codec.h's bytes in the
// `data` column, and fields an index or guard names also in a `k_<field>`
// column in src/store/key_codec.h's bytes; this reads and rewrites the top
// level of such a document, in the same encoding, as hex for raw SQL.

const DOC_VERSION = 0xd1;
const T = { NULL: 0, FALSE: 1, TRUE: 2, INT: 3, REAL: 4, STRING: 5, ARRAY: 6, OBJECT: 7, ID: 8, CT: 9 };
const SMALL_INT = 0x80;
const SHORT_STRING = 0xc0;

function readVarint(buf, at) {
  let v = 0n;
  let shift = 0n;
  for (;;) {
    const b = buf[at++];
    v |= BigInt(b & 0x7f) << shift;
    if (!(b & 0x80)) return [v, at];
    shift += 7n;
  }
}

function varint(v) {
  let n = BigInt(v);
  const out = [];
  while (n >= 0x80n) {
    out.push(Number(n & 0x7fn) | 0x80);
    n >>= 7n;
  }
  out.push(Number(n));
  return out;
}

/** Where the value at `at` ends. */
function skipValue(buf, at) {
  const tag = buf[at++];
  if (tag >= SHORT_STRING) return at + (tag - SHORT_STRING);
  if (tag >= SMALL_INT) return at;
  switch (tag) {
    case T.NULL: case T.FALSE: case T.TRUE: case T.ID: case T.CT: return at;
    case T.INT: return readVarint(buf, at)[1];
    case T.REAL: return at + 8;
    case T.STRING: { const [n, p] = readVarint(buf, at); return p + Number(n); }
    case T.ARRAY: {
      let [n, p] = readVarint(buf, at);
      for (; n > 0n; n--) p = skipValue(buf, p);
      return p;
    }
    case T.OBJECT: {
      let [n, p] = readVarint(buf, at);
      for (; n > 0n; n--) {
        const [k, q] = readVarint(buf, p);
        p = skipValue(buf, q + Number(k));
      }
      return p;
    }
    default: throw new Error(`stored_doc: unknown tag ${tag}`);
  }
}

/** A JSON value (numbers: integers stay integers) in the document encoding. */
function encodeValue(v) {
  if (v === null) return [T.NULL];
  if (v === false) return [T.FALSE];
  if (v === true) return [T.TRUE];
  if (typeof v === 'number' && Number.isInteger(v)) {
    if (v >= 0 && v < 64) return [SMALL_INT + v];
    const i = BigInt(v);
    return [T.INT, ...varint(i >= 0n ? i << 1n : ((-i) << 1n) - 1n)];
  }
  if (typeof v === 'number') {
    const b = Buffer.alloc(8);
    b.writeDoubleLE(v);
    return [T.REAL, ...b];
  }
  if (typeof v === 'string') {
    const bytes = [...Buffer.from(v, 'utf8')];
    return bytes.length < 64 ? [SHORT_STRING + bytes.length, ...bytes] : [T.STRING, ...varint(bytes.length), ...bytes];
  }
  if (Array.isArray(v)) return [T.ARRAY, ...varint(v.length), ...v.flatMap(encodeValue)];
  const entries = Object.entries(v);
  return [
    T.OBJECT,
    ...varint(entries.length),
    ...entries.flatMap(([k, x]) => {
      const key = [...Buffer.from(k, 'utf8')];
      return [...varint(key.length), ...key, ...encodeValue(x)];
    }),
  ];
}

/** The stored bytes (hex) with top-level `field` set to value (added when absent). */
export function withField(hex, field, value) {
  const buf = Buffer.from(hex.trim(), 'hex');
  if (buf[0] !== DOC_VERSION || buf[1] !== T.OBJECT) throw new Error('stored_doc: not a stored document');
  let [n, p] = readVarint(buf, 2);
  const entries = [];
  let found = false;
  for (; n > 0n; n--) {
    const [k, q] = readVarint(buf, p);
    const key = buf.subarray(q, q + Number(k)).toString('utf8');
    const end = skipValue(buf, q + Number(k));
    const encoded = key === field ? encodeValue(value) : [...buf.subarray(q + Number(k), end)];
    found ||= key === field;
    entries.push([key, encoded]);
    p = end;
  }
  if (!found) entries.push([field, encodeValue(value)]);
  const out = [DOC_VERSION, T.OBJECT, ...varint(entries.length)];
  for (const [k, encoded] of entries) {
    const key = [...Buffer.from(k, 'utf8')];
    out.push(...varint(key.length), ...key, ...encoded);
  }
  return Buffer.from(out).toString('hex');
}

/** A number's bytes in a key column (key_codec.h), hex. */
export function numberKey(v) {
  const b = Buffer.alloc(8);
  b.writeDoubleBE(v === 0 ? 0 : v);
  const bits = b.readBigUInt64BE();
  const ordered = bits >> 63n ? ~bits & 0xffffffffffffffffn : bits | (1n << 63n);
  const out = Buffer.alloc(8);
  out.writeBigUInt64BE(ordered);
  return `10${out.toString('hex')}`;
}

/**
 * The SQL that sets a top-level field of one stored document, as a tool
 * writing around dojo would: `run(sql)` runs SQL on the database and
 * returns what it printed (sqlite3, or psql -At); `postgres` picks the
 * dialect; `table` may carry a schema ("s_1.users"); `keyed` says the field
 * also has a k_<field> column (an integer value) to keep in step.
 */
export async function setFieldSql({ run, postgres, table, id, field, value, keyed = false }) {
  const hexOf = postgres ? "encode(data, 'hex')" : 'hex(data)';
  const hex = String(await run(`SELECT ${hexOf} FROM ${table} WHERE id = '${id}'`)).trim();
  if (!hex) throw new Error(`stored_doc: no document ${id} in ${table}`);
  const bytes = (h) => (postgres ? `decode('${h}', 'hex')` : `x'${h}'`);
  const key = keyed ? `, "k_${field}" = ${bytes(numberKey(value))}` : '';
  return `UPDATE ${table} SET data = ${bytes(withField(hex, field, value))}${key} WHERE id = '${id}'`;
}
