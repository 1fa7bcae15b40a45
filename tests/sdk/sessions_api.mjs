// The official TypeScript SDK (pinned in package.json) against corrald's API, the way a program
// written for Claude Managed Agents uses it with only its baseURL changed: an agent (with the
// agent toolset; updated naming its version, a stale version a ConflictError that is not
// retried), an environment, a session; lists followed page by page; a stream opened before a
// user.message is sent sees it; the event list has it (processed_at null while no worker took
// it); errors map to the SDK's classes (NotFoundError, AuthenticationError, BadRequestError);
// archive and delete.
//
// With CORRAL_EXPECT_AGENT=1 a second stream asks for previews (event_deltas: agent.message):
// each agent.message is announced by an event_start with its id and streamed in event_deltas,
// which the SDK's accumulateManagedAgentsEvent folds into exactly the final event's content.
//
// With CORRAL_EXPECT_AGENT=1 a worker is expected to drive the session (corrald with workers
// and a model): the stream is read until session.status_idle, the agent's reply is checked
// and the user.message must have been processed.
//
// Usage: node sessions_api.mjs BASE_URL API_KEY
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import { accumulateManagedAgentsEvent } from '@anthropic-ai/sdk/lib/sessions/accumulate.mjs';

const [baseURL, apiKey] = process.argv.slice(2);
const expectAgent = process.env.CORRAL_EXPECT_AGENT === '1';
let streamed = [];
const model = 'claude-fake-1';

// Counts the requests the SDK makes (its retries included), by method and path.
const requests = [];
const countingFetch = (url, init) => {
  requests.push(`${init?.method ?? 'GET'} ${new URL(url).pathname}`);
  return fetch(url, init);
};
const client = new Anthropic({ apiKey, baseURL, maxRetries: 2, fetch: countingFetch });

let failed = 0, n = 0;
async function test(name, fn) {
  n++;
  try {
    await fn();
    console.log(`ok ${n} - ${name}`);
  } catch (e) {
    failed++;
    console.log(`not ok ${n} - ${name}\n  ${String((e && e.stack) || e).split('\n').join('\n  ')}`);
  }
}

// Resolves with fn's result, or rejects after ms (a stream that never delivers fails the test
// instead of hanging it).
function within(ms, what, fn) {
  let timer;
  return Promise.race([
    fn().finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
    }),
  ]);
}

async function all(pagePromise, max = 1000) {
  const items = [];
  for await (const item of pagePromise) {
    items.push(item);
    assert.ok(items.length <= max, 'the pages do not end (a cursor came back?)');
  }
  return items;
}

const rfc3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
let agent, environment, session, stream, deltaStream, sent;

await test('agents.create with the agent toolset', async () => {
  agent = await client.beta.agents.create({
    name: 'sdk-agent',
    model,
    system: 'You are terse.',
    tools: [{ type: 'agent_toolset_20260401' }],
    metadata: { suite: 'sdk' },
  });
  assert.match(agent.id, /^agent_[0-9a-z]{26}$/);
  assert.equal(agent.type, 'agent');
  assert.equal(agent.version, 1);
  assert.deepEqual(agent.model, { id: model });
  assert.deepEqual(agent.tools, [
    {
      type: 'agent_toolset_20260401',
      default_config: { enabled: true, permission_policy: { type: 'always_allow' } },
      configs: [],
    },
  ]);
  assert.deepEqual(agent.execution_identity, { type: 'service_account' });
  assert.match(agent.created_at, rfc3339);
  assert.equal(agent.archived_at, null);
});

await test('agents.update naming the version; a stale version is a ConflictError, not retried', async () => {
  const updated = await client.beta.agents.update(agent.id, { version: 1, system: 'Be brief.' });
  assert.equal(updated.version, 2);
  assert.equal(updated.system, 'Be brief.');
  const before = requests.length;
  await assert.rejects(client.beta.agents.update(agent.id, { version: 1, name: 'late' }), (e) => {
    assert.ok(e instanceof Anthropic.ConflictError, `${e.constructor.name}: ${e.message}`);
    assert.equal(e.status, 409);
    assert.equal(e.error?.error?.type, 'conflict_error');
    assert.match(e.requestID ?? '', /^req_/);
    return true;
  });
  assert.equal(requests.length - before, 1, `the 409 was sent ${requests.length - before} times`);
  agent = updated;
});

await test('agents.versions.list and agents.retrieve of a version', async () => {
  const versions = await all(client.beta.agents.versions.list(agent.id, { limit: 1 }));
  assert.deepEqual(versions.map((v) => v.version), [2, 1]);
  const v1 = await client.beta.agents.retrieve(agent.id, { version: 1 });
  assert.equal(v1.system, 'You are terse.');
});

await test('agents.list follows next_page to the end', async () => {
  const agents = await all(client.beta.agents.list({ limit: 1 }));
  assert.ok(agents.some((a) => a.id === agent.id));
  assert.equal(new Set(agents.map((a) => a.id)).size, agents.length, 'an agent came twice');
});

await test('environments.create and retrieve', async () => {
  environment = await client.beta.environments.create({
    name: 'sdk-env',
    config: { type: 'cloud', networking: { type: 'unrestricted' } },
  });
  assert.match(environment.id, /^env_[0-9a-z]{26}$/);
  assert.equal(environment.type, 'environment');
  assert.deepEqual(environment.config.networking, { type: 'unrestricted' });
  const again = await client.beta.environments.retrieve(environment.id);
  assert.equal(again.name, 'sdk-env');
});

await test('sessions.create pins the agent; sessions.list finds it', async () => {
  session = await client.beta.sessions.create({
    agent: agent.id,
    environment_id: environment.id,
    title: 'sdk session',
  });
  assert.match(session.id, /^sesn_[0-9a-z]{26}$/);
  assert.equal(session.type, 'session');
  assert.equal(session.status, 'idle');
  assert.equal(session.agent.id, agent.id);
  assert.equal(session.agent.version, 2);
  assert.equal(session.environment_id, environment.id);
  assert.deepEqual(session.vault_ids, []);
  assert.equal(typeof session.usage, 'object');
  const sessions = await all(client.beta.sessions.list({ limit: 1 }));
  assert.ok(sessions.some((s) => s.id === session.id));
});

await test('events.stream opens before anything is sent', async () => {
  stream = await within(10000, 'events.stream', () => client.beta.sessions.events.stream(session.id));
  assert.ok(stream);
  if (expectAgent)
    deltaStream = await within(10000, 'events.stream with event_deltas', () =>
      client.beta.sessions.events.stream(session.id, { event_deltas: ['agent.message'] }));
});

await test('events.send a user.message', async () => {
  const res = await client.beta.sessions.events.send(session.id, {
    events: [{ type: 'user.message', content: [{ type: 'text', text: 'Hello, corral' }] }],
  });
  assert.equal(res.data.length, 1);
  sent = res.data[0];
  assert.equal(sent.type, 'user.message');
  assert.match(sent.id, /^sevt_[0-9a-z]{26}$/);
  assert.equal(sent.processed_at, null);
  assert.deepEqual(sent.content, [{ type: 'text', text: 'Hello, corral' }]);
});

await test('events.list has it', async () => {
  const events = await all(client.beta.sessions.events.list(session.id, { limit: 1 }));
  const mine = events.find((e) => e.id === sent.id);
  assert.ok(mine, `the sent event is not listed: ${JSON.stringify(events)}`);
  assert.equal(mine.type, 'user.message');
  // null until a worker takes it (none may run: this is the API's own test)
  assert.ok(mine.processed_at === null || rfc3339.test(mine.processed_at), mine.processed_at);
  const only = await all(client.beta.sessions.events.list(session.id, { types: ['user.message'] }));
  assert.deepEqual([...new Set(only.map((e) => e.type))], ['user.message']);
});

await test(`the stream delivers it${expectAgent ? ', then the agent until idle' : ''}`, async () => {
  const seen = [];
  await within(expectAgent ? 60000 : 10000, 'the stream', async () => {
    for await (const ev of stream) {
      seen.push(ev);
      if (!expectAgent && ev.id === sent.id) break;
      if (expectAgent && ev.type === 'session.status_idle') break;
    }
  });
  const mine = seen.find((e) => e.id === sent.id);
  assert.ok(mine, `not streamed: ${JSON.stringify(seen.map((e) => e.type))}`);
  assert.equal(mine.type, 'user.message');
  assert.ok(!seen.some((e) => e.type === 'ping'), 'a ping reached the caller');
  if (expectAgent) {
    const types = seen.map((e) => e.type);
    for (const t of ['session.status_running', 'agent.message', 'agent.tool_use',
      'agent.tool_result', 'session.status_idle'])
      assert.ok(types.includes(t), `no ${t}: ${JSON.stringify(types)}`);
    const reply = seen.find((e) => e.type === 'agent.message');
    assert.ok(reply.content.some((b) => b.type === 'text' && b.text.length > 0));
    const use = seen.find((e) => e.type === 'agent.tool_use');
    const result = seen.find((e) => e.type === 'agent.tool_result');
    assert.equal(use.name, 'bash');
    assert.equal(result.tool_use_id, use.id);
    assert.ok(!result.is_error, JSON.stringify(result));
    assert.match(result.content[0].text, /hello from the sandbox/);
    const idle = seen.at(-1);
    assert.equal(idle.stop_reason?.type, 'end_turn');
    streamed = seen;
  }
});

if (expectAgent) {
  await test('a stream with event_deltas previews each agent.message before it comes', async () => {
    const seen = [];
    await within(60000, 'the stream with event_deltas', async () => {
      for await (const ev of deltaStream) {
        seen.push(ev);
        if (ev.type === 'session.status_idle') break;
      }
    });
    assert.ok(!streamed.some((e) => e.type === 'event_start' || e.type === 'event_delta'),
      'a stream that did not ask for previews got some');
    const messages = seen.filter((e) => e.type === 'agent.message');
    assert.equal(messages.length, streamed.filter((e) => e.type === 'agent.message').length);
    for (const final of messages) {
      const at = seen.indexOf(final);
      const start = seen.findIndex((e) => e.type === 'event_start' && e.event.id === final.id);
      assert.ok(start >= 0 && start < at, `no event_start before agent.message ${final.id}`);
      assert.equal(seen[start].event.type, 'agent.message');
      const deltas = seen.filter((e) => e.type === 'event_delta' && e.event_id === final.id);
      assert.ok(deltas.length > 0, `no event_delta for ${final.id}`);
      assert.ok(deltas.every((d) => seen.indexOf(d) > start && seen.indexOf(d) < at),
        'a delta outside its preview');
      // The SDK's own fold of the preview: what it shows before the final event is that
      // event's content.
      let snapshot;
      for (const e of seen.slice(start, at)) snapshot = accumulateManagedAgentsEvent(snapshot, e);
      assert.equal(snapshot.id, final.id);
      assert.deepEqual(snapshot.content, final.content);
      assert.deepEqual(accumulateManagedAgentsEvent(snapshot, final).content, final.content);
    }
    assert.deepEqual(seen.filter((e) => !e.type.startsWith('event_')).map((e) => e.id),
      streamed.map((e) => e.id), 'the previews stream has the same events besides');
  });

  await test('events.list returns the events the stream delivered', async () => {
    const listed = await all(client.beta.sessions.events.list(session.id));
    const from = listed.findIndex((e) => e.id === sent.id);
    const ids = (v) => v.filter((e) => e.type !== 'lease.acquired').map((e) => `${e.type} ${e.id}`);
    assert.deepEqual(ids(listed.slice(from, from + streamed.length + 8)).slice(0, ids(streamed).length),
      ids(streamed));
  });
}

if (expectAgent) {
  await test('the session after its turn: processed, idle, usage counted', async () => {
    const events = await all(client.beta.sessions.events.list(session.id));
    const mine = events.find((e) => e.id === sent.id);
    assert.match(mine.processed_at ?? '', rfc3339);
    const s = await client.beta.sessions.retrieve(session.id);
    assert.equal(s.status, 'idle');
    assert.ok(s.usage.output_tokens > 0, JSON.stringify(s.usage));
  });
}

await test('an unknown session is a NotFoundError', async () => {
  await assert.rejects(client.beta.sessions.retrieve('sesn_0000000000000000000000000z'), (e) => {
    assert.ok(e instanceof Anthropic.NotFoundError, `${e.constructor.name}: ${e.message}`);
    assert.equal(e.error?.error?.type, 'not_found_error');
    return true;
  });
});

await test('a wrong key is an AuthenticationError', async () => {
  const wrong = new Anthropic({ apiKey: 'sk-corral-wrong', baseURL, maxRetries: 0 });
  await assert.rejects(wrong.beta.agents.list(), (e) => {
    assert.ok(e instanceof Anthropic.AuthenticationError, `${e.constructor.name}: ${e.message}`);
    return true;
  });
  await assert.rejects(
    wrong.beta.sessions.events.send(session.id, {
      events: [{ type: 'user.message', content: [{ type: 'text', text: 'no' }] }],
    }),
    (e) => e instanceof Anthropic.AuthenticationError,
  );
});

await test('a bad event is a BadRequestError naming the field, and nothing is appended', async () => {
  const before = (await all(client.beta.sessions.events.list(session.id))).length;
  await assert.rejects(
    client.beta.sessions.events.send(session.id, {
      events: [
        { type: 'user.message', content: [{ type: 'text', text: 'fine' }] },
        { type: 'user.message', content: [{ type: 'text', text: 42 }] },
      ],
    }),
    (e) => {
      assert.ok(e instanceof Anthropic.BadRequestError, `${e.constructor.name}: ${e.message}`);
      assert.match(e.message, /events\[1\]\.content\[0\]\.text/);
      return true;
    },
  );
  if (!expectAgent) {
    // (with a worker the log may grow on its own)
    const after = (await all(client.beta.sessions.events.list(session.id))).length;
    assert.equal(after, before);
  }
});

await test('sessions.update', async () => {
  const s = await client.beta.sessions.update(session.id, { title: 'renamed', metadata: { k: 'v' } });
  assert.equal(s.title, 'renamed');
  assert.deepEqual(s.metadata, { k: 'v' });
});

await test('sessions.archive, then events are refused', async () => {
  const s = await client.beta.sessions.archive(session.id);
  assert.match(s.archived_at ?? '', rfc3339);
  await assert.rejects(
    client.beta.sessions.events.send(session.id, {
      events: [{ type: 'user.message', content: [{ type: 'text', text: 'late' }] }],
    }),
    (e) => e instanceof Anthropic.BadRequestError && /archived/.test(e.message),
  );
});

await test('sessions.delete, then it is not found', async () => {
  const d = await client.beta.sessions.delete(session.id);
  assert.deepEqual(d, { id: session.id, type: 'session_deleted' });
  await assert.rejects(client.beta.sessions.retrieve(session.id), (e) => e instanceof Anthropic.NotFoundError);
});

await test('environments.delete and agents.archive', async () => {
  const d = await client.beta.environments.delete(environment.id);
  assert.deepEqual(d, { id: environment.id, type: 'environment_deleted' });
  const a = await client.beta.agents.archive(agent.id);
  assert.match(a.archived_at ?? '', rfc3339);
});

console.log(`sdk: ${n - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
