// workflows.test.mjs — workflows:create/update/get/list/remove (api.md §3
// "workflows") with the real convex client: owner-only rows, the same
// "Workflow not found" for a missing and a foreign id, title bounds, nodes
// and edges stored exactly as given, most recently updated first, the 1 MiB
// document limit with nothing written, argument validation that names the
// field, and no identity → UNAUTHENTICATED.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ConvexClient } from 'convex/browser';
import WebSocket from 'ws';

import { checkAfterEach, startDojo, waitFor } from './lib/dojo.mjs';
import { startIssuer } from './lib/issuer.mjs';
import { api, input, invalidArgument, rejectsWith, signUp } from './lib/app.mjs';

let issuer;
let dojo;

before(async () => {
  issuer = await startIssuer();
  dojo = await startDojo({ issuer, env: { SIGNUP_CREDITS: '10', PRICING: null } });
});
checkAfterEach(() => dojo);
after(() => issuer?.close());

const NOT_FOUND = { code: 'NOT_FOUND', message: 'Workflow not found' };
const NO_IDENTITY = { code: 'UNAUTHENTICATED', message: 'No identity found' };
const MiB = 1024 * 1024;

/** A react-flow graph as the editor saves it: nested objects, arrays, floats,
 *  negative numbers, booleans, nulls, unicode and an empty object. */
function reactFlowGraph() {
  const nodes = [
    {
      id: 'prompt-1',
      type: 'promptNode',
      position: { x: 120.5, y: -40.25 },
      positionAbsolute: { x: 120.5, y: -40.25 },
      data: {
        label: 'Prompt — «renard» 🦊',
        prompt: 'a red fox in the snow,\nwide shot',
        settings: { steps: 30, guidance: 7.5, seed: 2 ** 53 - 1, tiny: 1e-7, negative: -3 },
        tags: ['fox', 'snow', ''],
        extra: {},
        nothing: null,
      },
      width: 280,
      height: 164,
      selected: false,
      dragging: true,
    },
    {
      id: 'model-1',
      type: 'modelNode',
      position: { x: 480, y: 0 },
      data: {
        model: 'flux',
        outputs: [
          [1, 2],
          [3, [4, [5, { deep: [true, false, null] }]]],
        ],
      },
    },
  ];
  const edges = [
    {
      id: 'e-prompt-1-model-1',
      source: 'prompt-1',
      target: 'model-1',
      sourceHandle: 'out',
      targetHandle: null,
      animated: true,
      style: { strokeWidth: 2 },
    },
  ];
  return { nodes, edges };
}

test('create returns an id; get returns the document with title, nodes, edges, owner and updatedAt', async () => {
  const a = await signUp(dojo, issuer);
  const { nodes, edges } = reactFlowGraph();
  const before = Date.now();
  const id = await a.client.mutation(api.createWorkflow, { title: 'Fox', nodes, edges });
  assert.equal(typeof id, 'string');
  const doc = await a.client.query(api.getWorkflow, { id });
  assert.equal(doc._id, id);
  assert.equal(typeof doc._creationTime, 'number');
  assert.equal(doc.title, 'Fox');
  assert.deepEqual(doc.nodes, nodes);
  assert.deepEqual(doc.edges, edges);
  assert.equal(doc.owner, a.tokenIdentifier);
  assert.equal(typeof doc.updatedAt, 'number');
  assert.ok(doc.updatedAt >= before - 5_000 && doc.updatedAt <= Date.now() + 5_000, `updatedAt ${doc.updatedAt}`);
  assert.deepEqual(Object.keys(doc).sort(), ['_creationTime', '_id', 'edges', 'nodes', 'owner', 'title', 'updatedAt']);
});

test('nodes and edges default to [] when not given', async () => {
  const a = await signUp(dojo, issuer);
  const id = await a.client.mutation(api.createWorkflow, { title: 'Empty' });
  const doc = await a.client.query(api.getWorkflow, { id });
  assert.deepEqual(doc.nodes, []);
  assert.deepEqual(doc.edges, []);
});

test('deep nodes and edges round-trip exactly as given, through create and update', async () => {
  const a = await signUp(dojo, issuer);
  const id = await a.client.mutation(api.createWorkflow, { title: 'Deep' });
  const { nodes, edges } = reactFlowGraph();
  let deep = { leaf: 'bottom' };
  for (let i = 0; i < 60; i++) deep = i % 2 ? { level: i, child: deep } : [i, deep];
  const newNodes = [...nodes, { id: 'deep', data: deep }];
  assert.equal(await a.client.mutation(api.updateWorkflow, { id, nodes: newNodes, edges }), null);
  const doc = await a.client.query(api.getWorkflow, { id });
  assert.deepEqual(doc.nodes, newNodes);
  assert.deepEqual(doc.edges, edges);
  assert.equal(doc.title, 'Deep');
});

test('a title of 1 or 200 characters is accepted, counted in characters', async () => {
  const a = await signUp(dojo, issuer);
  for (const title of ['x', 'x'.repeat(200), 'é'.repeat(200)]) {
    const id = await a.client.mutation(api.createWorkflow, { title });
    assert.equal((await a.client.query(api.getWorkflow, { id })).title, title);
  }
});

test('a title of 0 or 201 characters is refused with INVALID_ARGUMENT naming title, and nothing is written', async () => {
  const a = await signUp(dojo, issuer);
  const id = await a.client.mutation(api.createWorkflow, { title: 'Kept' });
  const before = await a.client.query(api.getWorkflow, { id });
  for (const title of ['', 'x'.repeat(201), 'é'.repeat(201)]) {
    await rejectsWith(a.client.mutation(api.createWorkflow, { title }), invalidArgument('title'));
    await rejectsWith(a.client.mutation(api.updateWorkflow, { id, title }), invalidArgument('title'));
  }
  assert.deepEqual(await a.client.query(api.listWorkflows, {}), [before]);
  assert.deepEqual(await a.client.query(api.getWorkflow, { id }), before);
});

test('update changes only the fields given and bumps updatedAt', async () => {
  const a = await signUp(dojo, issuer);
  const { nodes, edges } = reactFlowGraph();
  const id = await a.client.mutation(api.createWorkflow, { title: 'Before', nodes, edges });
  const v1 = await a.client.query(api.getWorkflow, { id });

  await a.client.mutation(api.updateWorkflow, { id, title: 'After' });
  const v2 = await a.client.query(api.getWorkflow, { id });
  assert.equal(v2.title, 'After');
  assert.deepEqual(v2.nodes, nodes);
  assert.deepEqual(v2.edges, edges);
  assert.ok(v2.updatedAt > v1.updatedAt, `updatedAt ${v1.updatedAt} → ${v2.updatedAt}`);
  assert.equal(v2._creationTime, v1._creationTime);
  assert.equal(v2.owner, v1.owner);

  await a.client.mutation(api.updateWorkflow, { id, edges: [] });
  const v3 = await a.client.query(api.getWorkflow, { id });
  assert.deepEqual(v3.edges, []);
  assert.deepEqual(v3.nodes, nodes);
  assert.equal(v3.title, 'After');
  assert.ok(v3.updatedAt > v2.updatedAt);

  // No field but the id: still a save, so updatedAt moves.
  await a.client.mutation(api.updateWorkflow, { id });
  const v4 = await a.client.query(api.getWorkflow, { id });
  assert.ok(v4.updatedAt > v3.updatedAt);
  assert.deepEqual({ ...v4, updatedAt: 0 }, { ...v3, updatedAt: 0 });
});

test("list returns the caller's workflows only, most recently updated first", async () => {
  const a = await signUp(dojo, issuer);
  const b = await signUp(dojo, issuer);
  assert.deepEqual(await a.client.query(api.listWorkflows, {}), []);
  const w1 = await a.client.mutation(api.createWorkflow, { title: 'one' });
  const w2 = await a.client.mutation(api.createWorkflow, { title: 'two' });
  const w3 = await a.client.mutation(api.createWorkflow, { title: 'three' });
  const bw = await b.client.mutation(api.createWorkflow, { title: 'b only' });
  const ids = async (u) => (await u.client.query(api.listWorkflows, {})).map((w) => w._id);

  assert.deepEqual(await ids(a), [w3, w2, w1]);
  await a.client.mutation(api.updateWorkflow, { id: w1, title: 'one, edited' });
  assert.deepEqual(await ids(a), [w1, w3, w2]);
  await a.client.mutation(api.updateWorkflow, { id: w2, nodes: [{ id: 'n' }] });
  assert.deepEqual(await ids(a), [w2, w1, w3]);
  assert.deepEqual(await ids(b), [bw]);

  const docs = await a.client.query(api.listWorkflows, {});
  for (const doc of docs) assert.deepEqual(doc, await a.client.query(api.getWorkflow, { id: doc._id }));
});

test('remove deletes the workflow: get returns null and it leaves the list', async () => {
  const a = await signUp(dojo, issuer);
  const keep = await a.client.mutation(api.createWorkflow, { title: 'keep' });
  const gone = await a.client.mutation(api.createWorkflow, { title: 'gone' });
  assert.equal(await a.client.mutation(api.removeWorkflow, { id: gone }), null);
  assert.equal(await a.client.query(api.getWorkflow, { id: gone }), null);
  assert.deepEqual(
    (await a.client.query(api.listWorkflows, {})).map((w) => w._id),
    [keep],
  );
});

test('a missing workflow id: update and remove are NOT_FOUND "Workflow not found", get is null', async () => {
  const a = await signUp(dojo, issuer);
  const id = await a.client.mutation(api.createWorkflow, { title: 'short-lived' });
  await a.client.mutation(api.removeWorkflow, { id });
  await rejectsWith(a.client.mutation(api.updateWorkflow, { id, title: 'again' }), NOT_FOUND);
  await rejectsWith(a.client.mutation(api.removeWorkflow, { id }), NOT_FOUND);
  assert.equal(await a.client.query(api.getWorkflow, { id }), null);
  assert.deepEqual(await a.client.query(api.listWorkflows, {}), []);
});

test('another user\'s workflow: the same "Workflow not found" as a missing one, get is null, and it is unchanged', async () => {
  const a = await signUp(dojo, issuer);
  const b = await signUp(dojo, issuer);
  const { nodes, edges } = reactFlowGraph();
  const id = await a.client.mutation(api.createWorkflow, { title: "A's", nodes, edges });
  const missing = await b.client.mutation(api.createWorkflow, { title: 'b, removed' });
  await b.client.mutation(api.removeWorkflow, { id: missing });
  const before = await a.client.query(api.getWorkflow, { id });

  const foreignUpdate = await rejectsWith(
    b.client.mutation(api.updateWorkflow, { id, title: 'stolen', nodes: [] }),
    NOT_FOUND,
  );
  const missingUpdate = await rejectsWith(
    b.client.mutation(api.updateWorkflow, { id: missing, title: 'x' }),
    NOT_FOUND,
  );
  assert.deepEqual(foreignUpdate.data, missingUpdate.data, 'a foreign id is answered like a missing one');
  await rejectsWith(b.client.mutation(api.removeWorkflow, { id }), NOT_FOUND);
  assert.equal(await b.client.query(api.getWorkflow, { id }), null);
  assert.deepEqual(await b.client.query(api.listWorkflows, {}), []);

  assert.deepEqual(await a.client.query(api.getWorkflow, { id }), before);
  assert.deepEqual(await a.client.query(api.listWorkflows, {}), [before]);
});

test('a document over 1 MiB is refused with INVALID_ARGUMENT and nothing is written', async () => {
  const a = await signUp(dojo, issuer);
  const id = await a.client.mutation(api.createWorkflow, { title: 'small', nodes: [{ id: 'n1' }] });
  const before = await a.client.query(api.getWorkflow, { id });
  const huge = [{ id: 'big', data: { blob: 'x'.repeat(MiB + 1024) } }];
  await rejectsWith(a.client.mutation(api.createWorkflow, { title: 'huge', nodes: huge }), {
    code: 'INVALID_ARGUMENT',
  });
  await rejectsWith(a.client.mutation(api.updateWorkflow, { id, title: 'renamed', edges: huge }), {
    code: 'INVALID_ARGUMENT',
  });
  // Nodes and edges that are each under 1 MiB but together over it.
  const half = [{ id: 'half', data: 'y'.repeat(MiB / 2 + 1024) }];
  await rejectsWith(a.client.mutation(api.createWorkflow, { title: 'halves', nodes: half, edges: half }), {
    code: 'INVALID_ARGUMENT',
  });
  assert.deepEqual(await a.client.query(api.listWorkflows, {}), [before]);
  assert.deepEqual(await a.client.query(api.getWorkflow, { id }), before);
  // An update that tips a big workflow over the limit names the field it sets.
  const bigId = await a.client.mutation(api.createWorkflow, { title: 'big nodes', nodes: half });
  const tipping = [{ id: 'tip', data: 'z'.repeat(MiB / 2) }];
  const err = await rejectsWith(a.client.mutation(api.updateWorkflow, { id: bigId, edges: tipping }), {
    code: 'INVALID_ARGUMENT',
  });
  assert.match(err.message, /Invalid argument `edges`: document too large/);
});

test('a document just under 1 MiB is stored whole', async () => {
  const a = await signUp(dojo, issuer);
  const nodes = [{ id: 'big', data: { blob: 'z'.repeat(MiB - 64 * 1024) } }];
  const id = await a.client.mutation(api.createWorkflow, { title: 'almost 1 MiB', nodes });
  const doc = await a.client.query(api.getWorkflow, { id });
  assert.equal(doc.nodes[0].data.blob.length, MiB - 64 * 1024);
  assert.deepEqual(doc.nodes, nodes);
});

test('an id of another table is refused with INVALID_ARGUMENT naming id', async () => {
  const a = await signUp(dojo, issuer);
  const runId = await a.client.mutation(api.createRun, { input: input() });
  const wf = await a.client.mutation(api.createWorkflow, { title: 'untouched' });
  const before = await a.client.query(api.getWorkflow, { id: wf });
  for (const id of [runId, a.user._id, 'not-an-id']) {
    await rejectsWith(a.client.query(api.getWorkflow, { id }), invalidArgument('id'));
    await rejectsWith(a.client.mutation(api.updateWorkflow, { id, title: 'x' }), invalidArgument('id'));
    await rejectsWith(a.client.mutation(api.removeWorkflow, { id }), invalidArgument('id'));
  }
  assert.deepEqual(await a.client.query(api.listWorkflows, {}), [before]);
  assert.equal((await a.client.query(api.getRun, { id: runId }))._id, runId);
});

test('unknown fields are refused with INVALID_ARGUMENT naming the field, and nothing is written', async () => {
  const a = await signUp(dojo, issuer);
  const b = await signUp(dojo, issuer);
  const id = await a.client.mutation(api.createWorkflow, { title: 'mine' });
  const before = await a.client.query(api.getWorkflow, { id });
  await rejectsWith(a.client.mutation(api.createWorkflow, { title: 't', color: 'red' }), invalidArgument('color'));
  // The owner and updatedAt are the server's to set.
  await rejectsWith(
    a.client.mutation(api.createWorkflow, { title: 't', owner: b.tokenIdentifier }),
    invalidArgument('owner'),
  );
  await rejectsWith(a.client.mutation(api.updateWorkflow, { id, owner: b.tokenIdentifier }), invalidArgument('owner'));
  await rejectsWith(a.client.mutation(api.updateWorkflow, { id, updatedAt: 1 }), invalidArgument('updatedAt'));
  await rejectsWith(a.client.query(api.getWorkflow, { id, extra: true }), invalidArgument('extra'));
  await rejectsWith(a.client.query(api.listWorkflows, { owner: b.tokenIdentifier }), invalidArgument('owner'));
  assert.deepEqual(await a.client.query(api.listWorkflows, {}), [before]);
  assert.deepEqual(await b.client.query(api.listWorkflows, {}), []);
});

test('missing or mistyped arguments are refused with INVALID_ARGUMENT naming the field', async () => {
  const a = await signUp(dojo, issuer);
  const id = await a.client.mutation(api.createWorkflow, { title: 'mine' });
  await rejectsWith(a.client.mutation(api.createWorkflow, {}), invalidArgument('title'));
  await rejectsWith(a.client.mutation(api.createWorkflow, { title: 42 }), invalidArgument('title'));
  await rejectsWith(a.client.mutation(api.createWorkflow, { title: 't', nodes: { a: 1 } }), invalidArgument('nodes'));
  await rejectsWith(a.client.mutation(api.createWorkflow, { title: 't', edges: 'none' }), invalidArgument('edges'));
  await rejectsWith(a.client.mutation(api.updateWorkflow, { title: 't' }), invalidArgument('id'));
  await rejectsWith(a.client.mutation(api.updateWorkflow, { id, nodes: null }), invalidArgument('nodes'));
  await rejectsWith(a.client.query(api.getWorkflow, {}), invalidArgument('id'));
  assert.equal((await a.client.query(api.listWorkflows, {})).length, 1);
});

test('without an identity every workflow function fails with "No identity found" (UNAUTHENTICATED)', async () => {
  const a = await signUp(dojo, issuer);
  const id = await a.client.mutation(api.createWorkflow, { title: "A's" });
  const before = await a.client.query(api.getWorkflow, { id });
  const anonymous = dojo.httpClient();
  await rejectsWith(anonymous.mutation(api.createWorkflow, { title: 'anon' }), NO_IDENTITY);
  await rejectsWith(anonymous.mutation(api.updateWorkflow, { id, title: 'anon' }), NO_IDENTITY);
  await rejectsWith(anonymous.query(api.getWorkflow, { id }), NO_IDENTITY);
  await rejectsWith(anonymous.query(api.listWorkflows, {}), NO_IDENTITY);
  await rejectsWith(anonymous.mutation(api.removeWorkflow, { id }), NO_IDENTITY);
  assert.deepEqual(await a.client.query(api.getWorkflow, { id }), before);
});

test('an identity without a user row can still keep workflows (they belong to the tokenIdentifier)', async () => {
  const a = await signUp(dojo, issuer, { create: false });
  const id = await a.client.mutation(api.createWorkflow, { title: 'before signup' });
  assert.equal((await a.client.query(api.getWorkflow, { id })).owner, a.tokenIdentifier);
  assert.equal(await a.client.query(api.me, {}), null, 'no user was created');
});

test('removing a workflow leaves its runs and their workflowId; a new run on it is "Workflow not found"', async () => {
  const a = await signUp(dojo, issuer);
  const wf = await a.client.mutation(api.createWorkflow, { title: 'graph' });
  const runId = await a.client.mutation(api.createRun, { input: input(), workflowId: wf });
  await a.client.mutation(api.removeWorkflow, { id: wf });
  const run = await a.client.query(api.getRun, { id: runId });
  assert.equal(run.workflowId, wf);
  const byWorkflow = await a.client.query(api.listRuns, {
    workflowId: wf,
    paginationOpts: { numItems: 10, cursor: null },
  });
  assert.deepEqual(
    byWorkflow.page.map((r) => r._id),
    [runId],
  );
  const credits = (await a.client.query(api.me, {})).credits;
  await rejectsWith(a.client.mutation(api.createRun, { input: input(), workflowId: wf }), NOT_FOUND);
  assert.equal((await a.client.query(api.me, {})).credits, credits, 'nothing was charged');
});

test('a subscribed workflows:list follows create, update and remove', async () => {
  const a = await signUp(dojo, issuer);
  const ws = new ConvexClient(dojo.url, {
    webSocketConstructor: WebSocket,
    logger: false,
    unsavedChangesWarning: false,
  });
  try {
    await new Promise((resolve) =>
      ws.setAuth(
        async () => a.token,
        (ok) => ok && resolve(),
      ),
    );
    let latest;
    const unsubscribe = ws.onUpdate(api.listWorkflows, {}, (v) => (latest = v));
    await waitFor(() => Array.isArray(latest) && latest.length === 0, { what: 'the empty list' });
    const w1 = await a.client.mutation(api.createWorkflow, { title: 'first' });
    const w2 = await a.client.mutation(api.createWorkflow, { title: 'second' });
    await waitFor(() => latest.map((w) => w._id).join() === [w2, w1].join(), { what: 'both workflows' });
    await a.client.mutation(api.updateWorkflow, { id: w1, title: 'first, renamed' });
    await waitFor(() => latest[0]?._id === w1 && latest[0].title === 'first, renamed', { what: 'the rename' });
    await a.client.mutation(api.removeWorkflow, { id: w2 });
    await waitFor(() => latest.length === 1 && latest[0]._id === w1, { what: 'the removal' });
    unsubscribe();
  } finally {
    await ws.close();
  }
});
