// graphql-sse's client with its defaults (distinct connections mode).
import { createClient } from 'graphql-sse';
import { env, queries, step, codeOf, followToCompletion, assert } from './lib.mjs';

const newClient = (token) => createClient({ url: env.api, headers: { Authorization: `Bearer ${token}` }, retryAttempts: 0 });
const client = newClient(env.token);

const run = (c, query, variables, onResult) =>
  new Promise((resolve, reject) => {
    c.subscribe({ query, variables }, { next: onResult, error: reject, complete: resolve });
  });

let generation;

await step('query', async () => {
  let data;
  await run(client, queries.stories, {}, (r) => (data = r.data));
  assert.ok(data.stories.nodes.some((s) => s.id === env.story));
});

await step('mutation', async () => {
  await run(client, queries.start, { storyId: env.story }, (r) => (generation = r.data.startGeneration.id));
});

await step('subscription to COMPLETED', () =>
  followToCompletion((onEvent) => run(client, queries.progress, { id: generation }, (r) => onEvent(r.data.generationProgress))));

await step('error code: someone else\'s generation, subscribed', async () => {
  let errors;
  await run(client, queries.progress, { id: env.otherGeneration }, (r) => (errors = r.errors));
  assert.equal(codeOf(errors), 'NOT_FOUND', `errors ${JSON.stringify(errors)}`);
});

await step('error code: bad token (401, readable body)', async () => {
  const err = await run(newClient('not-a-token'), queries.stories, {}, () => {}).then(() => assert.fail('no error'), (e) => e);
  assert.equal(err.response?.status, 401, `error ${err}`);
  const body = await err.response.json();
  assert.equal(codeOf(body), 'UNAUTHENTICATED', `body ${JSON.stringify(body)}`);
});

client.dispose();
