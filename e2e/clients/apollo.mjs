// @apollo/client 4 with its defaults: HttpLink alone (subscriptions then
// use Apollo's multipart HTTP protocol), or with LINK=ws, split so that
// subscriptions go over graphql-ws through GraphQLWsLink.
import { ApolloClient, InMemoryCache, HttpLink, gql, split } from '@apollo/client';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { getMainDefinition } from '@apollo/client/utilities';
import { createClient as createWSClient } from 'graphql-ws';
import WebSocket from 'ws';
import { env, queries, step, codeOf, followToCompletion, assert } from './lib.mjs';

const overWebsocket = process.env.LINK === 'ws';

function newClient(token) {
  const http = new HttpLink({ uri: env.api, headers: { authorization: `Bearer ${token}` } });
  if (!overWebsocket) return { client: new ApolloClient({ link: http, cache: new InMemoryCache() }), close() {} };
  const ws = createWSClient({
    url: env.ws,
    webSocketImpl: WebSocket, // Node 20 has no global WebSocket
    connectionParams: { Authorization: `Bearer ${token}` },
  });
  const link = split(
    ({ query }) => {
      const def = getMainDefinition(query);
      return def.kind === 'OperationDefinition' && def.operation === 'subscription';
    },
    new GraphQLWsLink(ws),
    http,
  );
  return { client: new ApolloClient({ link, cache: new InMemoryCache() }), close: () => ws.dispose() };
}

const { client, close } = newClient(env.token);
let generation;

// subscribe runs a subscription to its end, giving each event's data to
// onEvent; errors, of the stream or in a result, reject.
function subscribe(c, query, variables, onEvent) {
  return new Promise((resolve, reject) => {
    c.subscribe({ query: gql(query), variables }).subscribe({
      next: (res) => (res.error ? reject(res.error) : onEvent(res.data)),
      error: reject,
      complete: resolve,
    });
  });
}

await step('query', async () => {
  const { data } = await client.query({ query: gql(queries.stories) });
  assert.ok(data.stories.nodes.some((s) => s.id === env.story));
});

await step('mutation', async () => {
  const { data } = await client.mutate({ mutation: gql(queries.start), variables: { storyId: env.story } });
  generation = data.startGeneration.id;
});

await step(`subscription to COMPLETED (${overWebsocket ? 'GraphQLWsLink' : 'HttpLink, multipart'})`, () =>
  followToCompletion((onEvent) => subscribe(client, queries.progress, { id: generation }, (d) => onEvent(d.generationProgress))));

await step('error code: someone else\'s generation, subscribed', async () => {
  const err = await subscribe(client, queries.progress, { id: env.otherGeneration }, () => {}).then(
    () => assert.fail('the subscription completed'),
    (e) => e,
  );
  assert.equal(codeOf(err), 'NOT_FOUND', `error ${err}`);
});

await step('error code: validation', async () => {
  const err = await client.query({ query: gql(queries.invalid) }).then(() => assert.fail('no error'), (e) => e);
  assert.equal(codeOf(err), 'GRAPHQL_VALIDATION_FAILED', `error ${err}`);
});

await step('error code: bad token', async () => {
  const bad = newClient('not-a-token');
  const err = await bad.client.query({ query: gql(queries.stories) }).then(() => assert.fail('no error'), (e) => e);
  assert.equal(codeOf(err), 'UNAUTHENTICATED', `error ${err}`);
  await bad.close();
});

await close();
