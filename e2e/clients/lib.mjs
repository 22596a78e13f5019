// Shared by the client scripts: the server's addresses and tokens from the
// environment (set by e2e_test.go), checks that fail the script, and the
// GraphQL documents every client runs.
import assert from 'node:assert/strict';

export const env = {
  api: must('API'), // http://127.0.0.1:PORT/graphql
  ws: must('API').replace(/^http/, 'ws'),
  token: must('TOKEN'),
  otherToken: must('OTHER_TOKEN'), // another user's, for isolation checks
  otherGeneration: must('OTHER_GENERATION'), // a generation of that other user
  story: must('STORY'), // the id of a story to narrate
};

function must(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run these scripts through e2e_test.go`);
  return v;
}

// A rejected promise nobody handles is a client misbehaving (urql logged
// AbortErrors this way when every request was answered as a stream).
process.on('unhandledRejection', (err) => {
  console.error('unhandled rejection:', err);
  process.exit(1);
});

export const queries = {
  stories: `query Stories { stories(first: 5) { nodes { id title } } }`,
  start: `mutation Start($storyId: ID!) { startGeneration(storyId: $storyId) { id status } }`,
  progress: `subscription Progress($id: ID!) { generationProgress(id: $id) { id status progress resultUrl } }`,
  generation: `query Generation($id: ID!) { generation(id: $id) { id status progress resultUrl } }`,
  invalid: `query Invalid { nope }`,
};

// step runs one named check and says so; the first failure ends the script.
export async function step(name, fn) {
  const started = Date.now();
  try {
    await withTimeout(fn(), 60_000, name);
  } catch (err) {
    console.error(`FAIL ${name}:`, err);
    process.exit(1);
  }
  console.log(`ok   ${name} (${Date.now() - started} ms)`);
}

export function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// codeOf is the extensions.code of the first GraphQL error of err, in the
// shapes the clients give them: urql's CombinedError, Apollo's
// CombinedGraphQLErrors, graphql-ws's and graphql-sse's error arrays.
export function codeOf(err) {
  const errors = err?.graphQLErrors ?? err?.errors ?? (Array.isArray(err) ? err : undefined);
  return errors?.[0]?.extensions?.code;
}

// followToCompletion subscribes through subscribe(onEvent) -> Promise that
// settles when the stream completes, and checks the events end COMPLETED
// with an audio link, in order.
export async function followToCompletion(subscribe) {
  const seen = [];
  await subscribe((progress) => seen.push(progress));
  assert.ok(seen.length > 0, 'no event');
  const last = seen[seen.length - 1];
  assert.equal(last.status, 'COMPLETED', `events ${JSON.stringify(seen)} do not end COMPLETED`);
  assert.match(last.resultUrl, /\/audio\//, 'a completed generation has an audio link');
  for (let i = 1; i < seen.length; i++) {
    assert.ok(seen[i].progress >= seen[i - 1].progress, `progress went backwards: ${JSON.stringify(seen)}`);
  }
  return seen;
}

export { assert };
