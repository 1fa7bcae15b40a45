// The official TypeScript SDK's finalMessage() of one streamed request, as JSON on stdout, for
// the comparison with corral's C client (tests/integration/model_client.sh).
// Usage: node final.mjs BASE_URL API_KEY BODY.json
import fs from 'node:fs';
import Anthropic from '@anthropic-ai/sdk';

const [baseURL, apiKey, bodyPath] = process.argv.slice(2);
const client = new Anthropic({ apiKey, baseURL, maxRetries: 0 });
const body = JSON.parse(fs.readFileSync(bodyPath, 'utf8'));
const message = await client.messages.stream(body).finalMessage();
process.stdout.write(JSON.stringify(message) + '\n');
