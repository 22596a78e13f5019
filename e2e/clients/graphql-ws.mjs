// graphql-ws's client with its defaults.
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { env, queries, step, codeOf, followToCompletion, assert } from './lib.mjs';

const client = createClient({
  url: env.ws,
  webSocketImpl: WebSocket, // Node 20 has no global WebSocket
  connectionParams: { Authorization: `Bearer ${env.token}` },
});

// run sends one operation and gives each result to onResult.
const run = (query, variables, onResult) =>
  new Promise((resolve, reject) => {
    client.subscribe({ query, variables }, { next: onResult, error: reject, complete: resolve });
  });

let generation;

await step('query', async () => {
  let data;
  await run(queries.stories, {}, (r) => (data = r.data));
  assert.ok(data.stories.nodes.some((s) => s.id === env.story));
});

await step('mutation', async () => {
  await run(queries.start, { storyId: env.story }, (r) => (generation = r.data.startGeneration.id));
});

await step('subscription to COMPLETED', () =>
  followToCompletion((onEvent) => run(queries.progress, { id: generation }, (r) => onEvent(r.data.generationProgress))));

await step('error code: someone else\'s generation, subscribed', async () => {
  // The protocol allows the error as an error message or as a result with
  // errors; either way it must be NOT_FOUND and carry no data.
  let result;
  const err = await run(queries.progress, { id: env.otherGeneration }, (r) => (result = r)).then(() => result?.errors, (e) => e);
  assert.equal(codeOf(err), 'NOT_FOUND', `error ${JSON.stringify(err)}`);
  assert.equal(result?.data ?? null, null, `data ${JSON.stringify(result?.data)}`);
});

await step('error code: bad token closes with 4403', async () => {
  const bad = createClient({
    url: env.ws,
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: 'Bearer not-a-token' },
    retryAttempts: 0,
  });
  const err = await new Promise((resolve) => {
    bad.subscribe({ query: queries.stories }, { next() {}, error: resolve, complete: () => resolve(null) });
  });
  assert.equal(err?.code, 4403, `closed with ${err?.code} ${err?.reason}`);
  await bad.dispose();
});

await client.dispose();
