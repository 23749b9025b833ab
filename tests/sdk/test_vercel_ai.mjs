// The Vercel AI SDK's default OpenAI provider (`openai(model)`, which
// speaks the Responses API) against a running Tollgate, on models of the
// three provider kinds. Run by tests/sdk/run (copied beside its
// node_modules in target/sdk-node) with TOLLGATE_URL and
// TOLLGATE_ADMIN_TOKEN. The last line is "N passed, N failed".

import { createOpenAI } from '@ai-sdk/openai';
import { generateText, streamText } from 'ai';

const URL = process.env.TOLLGATE_URL.replace(/\/$/, '');
const ADMIN = process.env.TOLLGATE_ADMIN_TOKEN;
// gpt-native: served natively by a provider that speaks Responses.
const MODELS = ['gpt-native', 'gpt-4o-mini', 'claude-test', 'gemini-test'];
const REPLY = 'Hello! I am a mock model and this is my answer.';

async function api(method, path, body) {
  const response = await fetch(URL + path, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return [response.status, await response.json()];
}

function assert(ok, what) {
  if (!ok) throw new Error(what);
}

const [, org] = await api('POST', '/api/v1/organizations', { name: 'vercel-ai', billing_mode: 'tokens' });
await api('POST', `/api/v1/organizations/${org.id}/credits/grants`, { amount: 1000000 });
const [, key] = await api('POST', `/api/v1/organizations/${org.id}/api-keys`, { name: 'vercel' });
const openai = createOpenAI({ baseURL: `${URL}/v1`, apiKey: key.key });

const checks = {
  async generate_text() {
    for (const model of MODELS) {
      const r = await generateText({ model: openai(model), system: 'Be brief', prompt: 'Say hello', maxRetries: 0 });
      assert(r.text === REPLY, `${model}: ${r.text}`);
      assert(r.usage.inputTokens === 10 && r.usage.outputTokens === 11, `${model}: ${JSON.stringify(r.usage)}`);
    }
  },
  async stream_text() {
    for (const model of MODELS) {
      const s = streamText({ model: openai(model), prompt: 'Say hello', maxRetries: 0 });
      let text = '';
      for await (const piece of s.textStream) text += piece;
      assert(text === REPLY, `${model}: ${text}`);
      const usage = await s.usage;
      assert(usage.outputTokens === 11, `${model}: ${JSON.stringify(usage)}`);
    }
  },
};

let passed = 0;
let failed = 0;
for (const [name, check] of Object.entries(checks)) {
  try {
    await check();
    passed += 1;
    console.log(`ok    ${name}`);
  } catch (e) {
    failed += 1;
    console.log(`FAIL  ${name}: ${e.stack ?? e}`);
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
