// The GraphQL-over-HTTP spec's server audits (graphql-http): every MUST and
// every SHOULD must pass; MAY notices are printed.
import { serverAudits } from 'graphql-http';
import { env } from './lib.mjs';

let failed = 0;
for (const audit of serverAudits({ url: env.api })) {
  const result = await audit.fn();
  const level = audit.name.split(' ')[0];
  if (result.status === 'ok') continue;
  const body = result.response ? await result.response.text().catch(() => '') : '';
  const line = `${level === 'MAY' ? 'notice' : 'FAIL'} ${audit.name}: ${result.reason} ${body.slice(0, 300)}`;
  if (level === 'MAY') {
    console.log(line);
  } else {
    console.error(line);
    failed++;
  }
}
if (failed > 0) {
  console.error(`${failed} MUST/SHOULD audits failed`);
  process.exit(1);
}
console.log('ok   every MUST and SHOULD audit passes');
