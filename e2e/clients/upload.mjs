// apollo-upload-client's UploadHttpLink with its defaults: the voice
// recordings go up as GraphQL multipart requests; the narration is then
// followed by polling and its audio downloaded from the signed link.
import { ApolloClient, InMemoryCache, gql } from '@apollo/client';
import UploadHttpLink from 'apollo-upload-client/UploadHttpLink.mjs';
import { env, queries, step, codeOf, assert } from './lib.mjs';

const client = new ApolloClient({
  link: new UploadHttpLink({ uri: env.api, headers: { authorization: `Bearer ${env.token}` } }),
  cache: new InMemoryCache(),
});

// wav is one second of a 440 Hz tone, 16 kHz mono PCM.
function wav(name) {
  const rate = 16000;
  const samples = new Int16Array(rate).map((_, i) => Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / rate)));
  const header = Buffer.alloc(44);
  header.write('RIFF', 0);
  header.writeUInt32LE(36 + samples.byteLength, 4);
  header.write('WAVEfmt ', 8);
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20);
  header.writeUInt16LE(1, 22);
  header.writeUInt32LE(rate, 24);
  header.writeUInt32LE(rate * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36);
  header.writeUInt32LE(samples.byteLength, 40);
  return new File([header, Buffer.from(samples.buffer)], name, { type: 'audio/wav' });
}

let generation;

await step('upload: not audio is BAD_USER_INPUT', async () => {
  const err = await client
    .mutate({
      mutation: gql`mutation ($f: [Upload!]!) { createVoiceSample(input: { samples: $f }) { id } }`,
      variables: { f: [new File(['hello'], 'notes.txt', { type: 'text/plain' })] },
    })
    .then(() => assert.fail('accepted a text file'), (e) => e);
  assert.equal(codeOf(err), 'BAD_USER_INPUT', `error ${err}`);
});

await step('upload: createVoiceSample', async () => {
  const { data } = await client.mutate({
    mutation: gql`mutation ($f: [Upload!]!) { createVoiceSample(input: { samples: $f }) { id verificationPhrase verified } }`,
    variables: { f: [wav('sample-1.wav'), wav('sample-2.wav')] },
  });
  assert.ok(data.createVoiceSample.verificationPhrase);
  assert.equal(data.createVoiceSample.verified, false);
});

await step('upload: verifyVoiceSample', async () => {
  const { data } = await client.mutate({
    mutation: gql`mutation ($r: Upload!) { verifyVoiceSample(recording: $r) { verified } }`,
    variables: { r: wav('phrase.wav') },
  });
  assert.equal(data.verifyVoiceSample.verified, true);
});

await step('mutation in the verified voice', async () => {
  const { data } = await client.mutate({ mutation: gql(queries.start), variables: { storyId: env.story } });
  generation = data.startGeneration.id;
});

await step('query until COMPLETED, then the audio', async () => {
  for (;;) {
    const { data } = await client.query({ query: gql(queries.generation), variables: { id: generation }, fetchPolicy: 'network-only' });
    const g = data.generation;
    assert.notEqual(g.status, 'FAILED');
    if (g.status === 'COMPLETED') {
      const audio = await fetch(g.resultUrl);
      assert.equal(audio.status, 200);
      assert.match(audio.headers.get('content-type'), /^audio\//);
      assert.ok((await audio.arrayBuffer()).byteLength > 44);
      return;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
});
