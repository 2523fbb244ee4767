// good.ts — how the Karate AI web app uses the bindings `dojo codegen` writes.
// Everything here must compile with `tsc --strict`; the @ts-expect-error lines
// must each be an error (tsc fails when one is not).

import { ConvexHttpClient } from "convex/browser";
import { useMutation, usePaginatedQuery, useQuery } from "convex/react";
import type {
  FunctionArgs,
  FunctionReturnType,
  GenericDataModel,
  GenericQueryCtx,
  PaginationResult,
} from "convex/server";
import { api, internal } from "./convex/_generated/api.js";
import type { DataModel, Doc, Id, TableNames } from "./convex/_generated/dataModel.js";

/** Compiles only when A and B are the same type. */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function assertType<T extends true>(): T | undefined {
  return undefined;
}

const client = new ConvexHttpClient("http://127.0.0.1:3210");

export async function httpClient(): Promise<number> {
  const me: Doc<"users"> | null = await client.query(api.users.me, {});
  const meAgain = await client.query(api.users.me);
  assertType<Equal<typeof meAgain, Doc<"users"> | null>>();
  const user = await client.mutation(api.users.getOrCreate, {});
  const credits: number = user.credits;
  const token: string = user.tokenIdentifier;
  const email: string | undefined = user.email;

  const workflowId: Id<"workflows"> = await client.mutation(api.workflows.create, { title: "x" });
  await client.mutation(api.workflows.create, { title: "graph", nodes: [{ id: "n1" }], edges: [] });
  await client.mutation(api.workflows.update, { id: workflowId, title: "renamed" });
  const workflow = await client.query(api.workflows.get, { id: workflowId });
  if (workflow) {
    const title: string = workflow.title;
    const updatedAt: number = workflow.updatedAt;
    const sameId: Id<"workflows"> = workflow._id;
    void title, updatedAt, sameId;
  }
  const all: Doc<"workflows">[] = await client.query(api.workflows.list, {});
  const removed: null = await client.mutation(api.workflows.remove, { id: workflowId });

  const runId: Id<"runs"> = await client.mutation(api.runs.create, {
    input: { model: "flux-schnell", prompt: "a cat in a gi", settings: { steps: 4 } },
    workflowId,
  });
  const run = await client.query(api.runs.get, { id: runId });
  if (run) {
    const status: "queued" | "processing" | "completed" | "failed" = run.status;
    const owner: Id<"users"> = run.userId;
    const output: string | undefined = run.output;
    const model: string = run.input.model;
    void status, owner, output, model;
  }
  const page = await client.query(api.runs.list, {
    paginationOpts: { numItems: 10, cursor: null },
    status: "completed",
    workflowId,
  });
  assertType<Equal<typeof page, PaginationResult<Doc<"runs">>>>();
  const next = await client.query(api.runs.list, {
    paginationOpts: { numItems: 10, cursor: page.continueCursor },
  });
  const ledger = await client.query(api.transactions.list, {
    paginationOpts: { numItems: 50, cursor: null },
  });
  const kinds: ("grant" | "run" | "refund" | "signup")[] = ledger.page.map((t) => t.kind);
  await client.mutation(api.runs.cancel, { id: runId });

  void me, token, email, all, removed, next, kinds;
  return credits;
}

export function useDashboard(workflowId: Id<"workflows">) {
  const me = useQuery(api.users.me);
  assertType<Equal<typeof me, Doc<"users"> | null | undefined>>();
  const workflow = useQuery(api.workflows.get, { id: workflowId });
  const skipped = useQuery(api.runs.get, "skip");
  const createRun = useMutation(api.runs.create);
  const { results, status, loadMore } = usePaginatedQuery(
    api.runs.list,
    { workflowId, status: "processing" },
    { initialNumItems: 20 },
  );
  assertType<Equal<typeof results, Doc<"runs">[]>>();
  const ledger = usePaginatedQuery(api.transactions.list, {}, { initialNumItems: 10 });
  const amounts: number[] = ledger.results.map((t) => t.amount);
  return {
    me,
    workflow,
    skipped,
    start: () => createRun({ input: { model: "m", prompt: "p" } }),
    more: () => loadMore(20),
    status,
    amounts,
  };
}

// Files (api.md §9): the upload flow, and a run's stored output.
export async function files(runId: Id<"runs">, file: Blob): Promise<string | null> {
  const uploadUrl: string = await client.mutation(api.files.generateUploadUrl, {});
  const res = await fetch(uploadUrl, { method: "POST", headers: { "Content-Type": file.type }, body: file });
  const { storageId } = (await res.json()) as { storageId: Id<"_storage"> };
  const url: string | null = await client.query(api.files.getUrl, { storageId });
  const meta = await client.query(api.files.getMetadata, { storageId });
  const size: number | undefined = meta?.size;
  const sha: string | undefined = meta?.sha256;
  const removed: null = await client.mutation(api.files.remove, { storageId });
  const run = await client.query(api.runs.get, { id: runId });
  const stored: Id<"_storage"> | undefined = run?.outputStorageId;
  void size, sha, removed, stored;
  return url;
}
assertType<Equal<FunctionArgs<typeof internal.runs.complete>, { id: Id<"runs">; workerId: string; output?: string; storageId?: Id<"_storage"> }>>();
assertType<Equal<FunctionReturnType<typeof internal.runs.queue>, { queued: number; processing: number; oldestQueuedAt: number | null }>>();

// Internal functions are typed too, and kept apart from the public ones.
assertType<Equal<FunctionArgs<typeof internal.runs.claim>, { workerId: string; leaseSeconds?: number }>>();
assertType<Equal<FunctionReturnType<typeof internal.runs.claim>, Doc<"runs"> | null>>();
assertType<Equal<typeof internal.admin.grantCredits._visibility, "internal">>();
assertType<Equal<FunctionReturnType<typeof internal.admin.grantCredits>["balance"], number>>();
// @ts-expect-error runs:claim is internal: not part of `api`
void api.runs.claim;
// @ts-expect-error users:me is public: not part of `internal`
void internal.users;
// @ts-expect-error system functions are never generated
void api._system;
// @ts-expect-error system tables are never generated
export type EnvDoc = Doc<"_env">;

// The data model fits convex's generic server types.
assertType<DataModel extends GenericDataModel ? true : false>();
assertType<Equal<TableNames, "users" | "workflows" | "runs" | "transactions">>();
export async function serverSide(ctx: GenericQueryCtx<DataModel>, userId: Id<"users">) {
  const runs = await ctx.db
    .query("runs")
    .withIndex("by_user", (q) => q.eq("userId", userId))
    .order("desc")
    .take(10);
  const typed: Doc<"runs">[] = runs;
  const user = await ctx.db.get(userId);
  const balance: number | undefined = user?.credits;
  return { typed, balance };
}
