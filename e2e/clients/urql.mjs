// @urql/core with its default fetch options, and subscriptionExchange over
// graphql-ws, as urql's documentation sets it up.
import { Client, cacheExchange, fetchExchange, subscriptionExchange } from '@urql/core';
import { createClient as createWSClient } from 'graphql-ws';
import { pipe, subscribe, onEnd } from 'wonka';
import WebSocket from 'ws';
import { env, queries, step, codeOf, followToCompletion, assert } from './lib.mjs';

// Records the type of every answer, to prove queries and mutations come back
// as JSON, not as event streams; it changes nothing else.
const answered = [];
const observingFetch = async (...args) => {
  const res = await fetch(...args);
  answered.push(res.headers.get('content-type'));
  return res;
};

function newClient(token) {
  const ws = createWSClient({
    url: env.ws,
    webSocketImpl: WebSocket, // Node 20 has no global WebSocket
    connectionParams: { Authorization: `Bearer ${token}` },
  });
  const client = new Client({
    url: env.api,
    fetch: observingFetch,
    fetchOptions: { headers: { Authorization: `Bearer ${token}` } },
    exchanges: [
      cacheExchange,
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query || '' };
          return {
            subscribe(sink) {
              const unsubscribe = ws.subscribe(input, sink);
              return { unsubscribe };
            },
          };
        },
      }),
    ],
  });
  return { client, ws };
}

const { client, ws } = newClient(env.token);
let generation;

await step('query', async () => {
  const res = await client.query(queries.stories, {}).toPromise();
  assert.equal(res.error, undefined);
  assert.ok(res.data.stories.nodes.some((s) => s.id === env.story));
});

await step('mutation', async () => {
  const res = await client.mutation(queries.start, { storyId: env.story }).toPromise();
  assert.equal(res.error, undefined);
  generation = res.data.startGeneration.id;
});

await step('subscription to COMPLETED (subscriptionExchange over graphql-ws)', () =>
  followToCompletion((onEvent) => new Promise((resolve, reject) => {
    pipe(
      client.subscription(queries.progress, { id: generation }),
      onEnd(resolve),
      subscribe((res) => (res.error ? reject(res.error) : onEvent(res.data.generationProgress))),
    );
  })));

await step('queries and mutations answered as JSON', async () => {
  assert.ok(answered.length >= 2);
  for (const type of answered) assert.match(type, /^application\/(graphql-response\+)?json/);
});

await step('error code: validation', async () => {
  const res = await client.query(queries.invalid, {}).toPromise();
  assert.equal(codeOf(res.error), 'GRAPHQL_VALIDATION_FAILED');
});

await step('error code: someone else\'s generation', async () => {
  const res = await client.query(queries.generation, { id: env.otherGeneration }, { requestPolicy: 'network-only' }).toPromise();
  assert.equal(res.data.generation, null);
});

await step('error code: bad token', async () => {
  const bad = newClient('not-a-token');
  const res = await bad.client.query(queries.stories, {}).toPromise();
  assert.equal(codeOf(res.error), 'UNAUTHENTICATED', `error ${res.error}`);
  await bad.ws.dispose();
});

await ws.dispose();
