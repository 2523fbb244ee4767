// bad.ts — misuses of the bindings that must not compile. Every line marked
// "BAD:" must be reported by tsc, and no other line may be.

import { ConvexHttpClient } from "convex/browser";
import { usePaginatedQuery } from "convex/react";
import { api } from "./convex/_generated/api.js";
import type { Doc, Id } from "./convex/_generated/dataModel.js";

const client = new ConvexHttpClient("http://127.0.0.1:3210");

export async function misuses(workflowId: Id<"workflows">, runId: Id<"runs">) {
  await client.mutation(api.workflows.create, { title: 42 }); // BAD: title is a string
  await client.mutation(api.workflows.create, {}); // BAD: title is required
  await client.mutation(api.workflows.create, { title: "x", color: "red" }); // BAD: unknown field
  await client.query(api.runs.get, { id: workflowId }); // BAD: a workflows id where a runs id is expected
  await client.mutation(api.workflows.remove, { id: runId }); // BAD: a runs id where a workflows id is expected
  await client.query(api.runs.list, { paginationOpts: { numItems: 10 } }); // BAD: cursor is required
  await client.query(api.runs.list, { paginationOpts: { numItems: 1, cursor: null }, status: "done" }); // BAD: not a status
  await client.mutation(api.runs.create, { input: { model: "m" } }); // BAD: prompt is required
  await client.query(api.users.me, { id: runId }); // BAD: users:me takes no arguments
  await client.mutation(api.users.me, {}); // BAD: a query is not a mutation
  const user: Doc<"users"> = await client.query(api.users.me, {}); // BAD: may be null
  const credits: string = (await client.mutation(api.users.getOrCreate, {})).credits; // BAD: a number
  const id: Id<"runs"> = await client.mutation(api.workflows.create, { title: "x" }); // BAD: a workflows id
  await client.query(api.files.getUrl, { storageId: runId }); // BAD: a runs id where a file's is expected
  return { user, credits, id };
}

export function usePages() {
  return usePaginatedQuery(api.workflows.list, {}, { initialNumItems: 5 }); // BAD: not paginated
}
