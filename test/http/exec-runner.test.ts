/** NODE_RUNNER=exec: any program that speaks the runner protocol — here the Python reference runner. */
import { afterAll, describe, expect, it } from '@jest/globals';
import { checkEnvelopeSignature } from '../../supervisor/crypto/envelope.js';
import { pythonRunnerCommand } from '../../supervisor/runners/runner-command.js';
import { startTestNode, parseSse, type TestNode } from '../helpers/test-node.js';

let t: TestNode;
afterAll(async () => t?.stop());

describe('NODE_RUNNER=exec with the Python reference runner', () => {
  it('serves signed /infer and /infer/stream through the sandboxed Python runner', async () => {
    t = await startTestNode({ NODE_RUNNER: 'exec', NODE_RUNNER_EXEC: JSON.stringify(pythonRunnerCommand()) });
    expect(t.node.runner.ready).toBe(true);
    const model = t.node.runner.listModels()[0]!.id;
    const r = await t.post('/infer', t.sign(t.request({ modelId: model, prompt: 'hello from python', maxTokens: 8 })));
    expect(r.status).toBe(200);
    expect(checkEnvelopeSignature(r.json.response)).toBeNull();
    expect(r.json.response.payload.output).not.toContain('hello from python');
    expect(r.json.metering.payload.outputTokens).toBe(r.json.response.payload.usage.outputTokens);
    const s = await t.post('/infer/stream', t.sign(t.request({ modelId: model, prompt: 'stream from python', maxTokens: 6 })));
    expect(s.status).toBe(200);
    const frames = parseSse(s.text);
    const final = frames.find((f) => f.event === 'final')!;
    expect(final).toBeDefined();
    expect(checkEnvelopeSignature(final.data.response)).toBeNull();
    expect(frames.filter((f) => f.event === 'chunk').length).toBeGreaterThanOrEqual(1);
    expect(frames.filter((f) => f.event === 'chunk').map((f) => f.data.delta).join('')).toBe(final.data.response.payload.output);
  }, 60_000);
});
