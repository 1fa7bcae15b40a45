// Serves the bytes of FILE as a streaming Messages API response (in 7-byte pieces) to the
// official SDK's messages.stream() and prints its finalMessage() as JSON: what the SDK makes of
// exactly those bytes. Usage: node replay.mjs FILE
import http from 'node:http';
import fs from 'node:fs';
import Anthropic from '@anthropic-ai/sdk';

const body = fs.readFileSync(process.argv[2]);
const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'request-id': 'req_replay' });
    let i = 0;
    const next = () => {
      if (i >= body.length) return res.end();
      res.write(body.subarray(i, i + 7));
      i += 7;
      setImmediate(next);
    };
    next();
  });
});
server.listen(0, '127.0.0.1', async () => {
  const client = new Anthropic({ apiKey: 'replay', baseURL: `http://127.0.0.1:${server.address().port}`, maxRetries: 0 });
  try {
    const msg = await client.messages.stream({ model: 'replay', max_tokens: 1, messages: [{ role: 'user', content: 'x' }] }).finalMessage();
    console.log(JSON.stringify(msg));
  } catch (e) {
    console.error(`replay: ${e.message}`);
    process.exitCode = 1;
  }
  server.close();
});
