// The official TypeScript SDK (pinned in package.json) against corral-fake-api: streaming and
// non-streaming replies equal to the scenario, count_tokens, every error status mapped to the
// SDK's error class, a 429 retried after retry-after, a mid-stream error event, timestamps on
// the deltas (stamp) that change nothing. With --dump DIR it also writes each streamed reply's
// finalMessage() as JSON for the C parser's comparison.
// Usage: node messages.mjs BASE_URL API_KEY SCENARIO [--dump DIR]
import assert from 'node:assert/strict';
import fs from 'node:fs';
import Anthropic from '@anthropic-ai/sdk';

const [baseURL, apiKey, scenarioPath] = process.argv.slice(2);
const dumpAt = process.argv.indexOf('--dump');
const dump = dumpAt > 0 ? process.argv[dumpAt + 1] : null;
const scenario = JSON.parse(fs.readFileSync(scenarioPath, 'utf8'));
const client = new Anthropic({ apiKey, baseURL, maxRetries: 2 });
const model = 'claude-fake-1';
let failed = 0, n = 0;

async function test(name, fn) {
  n++;
  try {
    await fn();
    console.log(`ok ${n} - ${name}`);
  } catch (e) {
    failed++;
    console.log(`not ok ${n} - ${name}\n  ${String(e && e.stack || e).split('\n').join('\n  ')}`);
  }
}

// What a scenario turn must come out as (tool ids and the signature are the server's).
function expectTurn(msg, turn) {
  const want = [];
  if (turn.thinking !== undefined) want.push({ type: 'thinking', thinking: turn.thinking });
  if (turn.text !== undefined) want.push({ type: 'text', text: turn.text });
  for (const c of turn.tool_calls ?? []) want.push({ type: 'tool_use', name: c.name, input: c.input });
  assert.equal(msg.content.length, want.length, JSON.stringify(msg.content));
  msg.content.forEach((b, i) => {
    assert.equal(b.type, want[i].type);
    if (b.type === 'thinking') {
      assert.equal(b.thinking, want[i].thinking);
      assert.ok(b.signature.length > 0, 'a signature');
    } else if (b.type === 'text') {
      assert.equal(b.text, want[i].text);
    } else {
      assert.equal(b.name, want[i].name);
      assert.deepEqual(b.input, want[i].input);
      assert.match(b.id, /^toolu_/);
    }
  });
  assert.equal(msg.stop_reason, turn.tool_calls?.length ? 'tool_use' : 'end_turn');
  assert.equal(msg.model, model);
  assert.ok(msg.usage.input_tokens > 0 && msg.usage.output_tokens > 0, JSON.stringify(msg.usage));
}

const first = [{ role: 'user', content: 'What is in the workspace?' }];
let turn1;

await test('messages.stream() of a reply with thinking, text and a tool call', async () => {
  const stream = client.messages.stream({ model, max_tokens: 1024, messages: first });
  let deltas = 0;
  stream.on('text', () => deltas++);
  turn1 = await stream.finalMessage();
  expectTurn(turn1, scenario.turns[0]);
  assert.ok(deltas > 3, `text came in pieces (${deltas})`);
  if (dump) fs.writeFileSync(`${dump}/turn1.json`, JSON.stringify(turn1));
});

const toolUse = () => turn1.content.find((b) => b.type === 'tool_use');
const second = (result) => [...first, { role: 'assistant', content: turn1.content },
  { role: 'user', content: [{ type: 'tool_result', tool_use_id: toolUse().id, content: result }] }];

await test('messages.stream() of the next turn, after the tool result', async () => {
  const msg = await client.messages.stream({ model, max_tokens: 1024, messages: second('a\nb\nc') }).finalMessage();
  expectTurn(msg, scenario.turns[1]);
  if (dump) fs.writeFileSync(`${dump}/turn2.json`, JSON.stringify(msg));
});

await test('a rule keyed on the tool result picks the reply', async () => {
  const msg = await client.messages.stream({ model, max_tokens: 1024, messages: second('ls: permission denied') }).finalMessage();
  expectTurn(msg, scenario.rules[0].reply);
});

await test('stamp: fake_api_sent_ns on the deltas changes nothing in the message', async () => {
  const stream = client.messages.stream({ model, max_tokens: 1024, messages: first },
    { headers: { 'x-fake-api': JSON.stringify({ stamp: 1 }) } });
  let stamped = 0, unstamped = 0;
  stream.on('streamEvent', (ev) => {
    if (ev.type === 'content_block_delta') {
      assert.ok(Number.isInteger(ev.fake_api_sent_ns) && ev.fake_api_sent_ns > 0,
        JSON.stringify(ev));
      stamped++;
    } else {
      assert.equal(ev.fake_api_sent_ns, undefined, JSON.stringify(ev));
      unstamped++;
    }
  });
  const msg = await stream.finalMessage();
  expectTurn(msg, scenario.turns[0]);
  assert.ok(stamped > 3 && unstamped > 3, `${stamped} stamped, ${unstamped} not`);
  const strip = (m) => m.content.map((b) => (b.type === 'tool_use' ? { ...b, id: '' } : b));
  assert.deepEqual(strip(msg), strip(turn1));
  assert.deepEqual(msg.usage, turn1.usage);
});

await test('messages.create() without streaming gives the same reply', async () => {
  const { data: msg, response } = await client.messages.create({ model, max_tokens: 1024, messages: first }).withResponse();
  expectTurn(msg, scenario.turns[0]);
  assert.match(response.headers.get('request-id'), /^req_/);
});

await test('messages.countTokens()', async () => {
  const r = await client.messages.countTokens({ model, messages: first });
  assert.ok(Number.isInteger(r.input_tokens) && r.input_tokens > 0, JSON.stringify(r));
});

async function rejects(promise, cls, status, type) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof cls, `${e?.constructor?.name}: ${e?.message}`);
    if (status !== undefined) assert.equal(e.status, status);
    if (type) assert.equal(e.error?.error?.type, type, JSON.stringify(e.error));
    if (status !== undefined) assert.match(e.requestID ?? '', /^req_/);
    return e;
  }
  assert.fail('no error');
}

const noRetry = new Anthropic({ apiKey, baseURL, maxRetries: 0 });
const fake = (knobs) => ({ headers: { 'x-fake-api': JSON.stringify(knobs) } });

await test('400: a request without max_tokens is a BadRequestError', async () => {
  const e = await rejects(client.messages.create({ model, messages: first }), Anthropic.BadRequestError, 400, 'invalid_request_error');
  assert.match(e.message, /max_tokens/);
});

await test('400: a tool_result that answers no tool_use is a BadRequestError', async () => {
  const msgs = [...first, { role: 'assistant', content: 'ok' },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_nope', content: 'x' }] }];
  const e = await rejects(client.messages.create({ model, max_tokens: 10, messages: msgs }), Anthropic.BadRequestError, 400);
  assert.match(e.message, /tool_use_id/);
});

await test('400: roles out of order are a BadRequestError', async () => {
  await rejects(client.messages.create({ model, max_tokens: 10, messages: [{ role: 'assistant', content: 'hi' }] }), Anthropic.BadRequestError, 400);
});

await test('401: a wrong key is an AuthenticationError', async () => {
  const bad = new Anthropic({ apiKey: 'wrong', baseURL, maxRetries: 0 });
  await rejects(bad.messages.create({ model, max_tokens: 10, messages: first }), Anthropic.AuthenticationError, 401, 'authentication_error');
});

await test('404: an unknown path is a NotFoundError', async () => {
  await rejects(client.post('/v1/nothing-here', { body: {} }), Anthropic.NotFoundError, 404, 'not_found_error');
});

await test('413: a body above the limit is an APIError with status 413', async () => {
  const big = 'x'.repeat(2 << 20);
  await rejects(noRetry.messages.create({ model, max_tokens: 10, messages: [{ role: 'user', content: big }] }), Anthropic.APIError, 413);
});

await test('429 with retry-after-ms is retried by the SDK and succeeds', async () => {
  const t0 = Date.now();
  const msg = await client.messages.create({ model, max_tokens: 1024, messages: first }, fake({ fail_status: 429, fail_attempts: 1, retry_after_ms: 300 }));
  expectTurn(msg, scenario.turns[0]);
  assert.ok(Date.now() - t0 >= 280, 'waited as told');
});

await test('429 with retry-after (seconds) is retried too', async () => {
  const msg = await client.messages.stream({ model, max_tokens: 1024, messages: first }, fake({ fail_status: 429, fail_attempts: 1, retry_after_s: 1 })).finalMessage();
  expectTurn(msg, scenario.turns[0]);
});

await test('429 without retries left is a RateLimitError', async () => {
  await rejects(noRetry.messages.create({ model, max_tokens: 10, messages: first }, fake({ fail_status: 429, retry_after_s: 1 })), Anthropic.RateLimitError, 429, 'rate_limit_error');
});

await test('500 is an InternalServerError', async () => {
  await rejects(noRetry.messages.create({ model, max_tokens: 10, messages: first }, fake({ fail_status: 500 })), Anthropic.InternalServerError, 500, 'api_error');
});

await test('529 is an InternalServerError with overloaded_error', async () => {
  await rejects(noRetry.messages.create({ model, max_tokens: 10, messages: first }, fake({ fail_status: 529 })), Anthropic.InternalServerError, 529, 'overloaded_error');
});

await test('an error event in the middle of a stream is an APIError with its type', async () => {
  const s = noRetry.messages.stream({ model, max_tokens: 1024, messages: first }, fake({ error_after: 3 }));
  const e = await rejects(s.finalMessage(), Anthropic.APIError);
  assert.equal(e.error?.error?.type, 'overloaded_error', JSON.stringify(e.error));
});

await test('a connection dropped in the middle of a stream is an error', async () => {
  const s = noRetry.messages.stream({ model, max_tokens: 1024, messages: first }, fake({ drop_after: 3 }));
  await assert.rejects(s.finalMessage());
});

console.log(`sdk: ${n - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
