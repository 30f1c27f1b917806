// What a worker of `serve --workers N` says to its primary, over a real IPC channel to a real child process:
// that it listens, its metrics and readiness when asked (and nothing when asked nonsense), and that leaving
// closes the channel so the worker can exit. The primary's side (forking, aggregating, replacing workers,
// draining) runs whole in test/integration/workers.test.ts.
import { type ChildProcess, fork, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { WorkerMessage } from '../../../src/server/workers.js';

const CHILD = fileURLToPath(new URL('./workers-child.js', import.meta.url));

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
});

/** A worker child, resolved once it told us it listens; `next` waits for its next message. */
async function worker(problems: string[] = []) {
  const child = fork(CHILD, [], {
    env: { ...process.env, SCOPEGATE_TEST_PROBLEMS: JSON.stringify(problems) },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  children.push(child);
  const inbox: WorkerMessage[] = [];
  const waiting: Array<(message: WorkerMessage) => void> = [];
  child.on('message', (message: WorkerMessage) => {
    const taker = waiting.shift();
    if (taker) taker(message);
    else inbox.push(message);
  });
  const next = (timeoutMs = 5_000) =>
    new Promise<WorkerMessage | undefined>((resolve) => {
      const queued = inbox.shift();
      if (queued) return resolve(queued);
      const timer = setTimeout(() => {
        waiting.splice(waiting.indexOf(taker), 1);
        resolve(undefined);
      }, timeoutMs);
      const taker = (message: WorkerMessage) => {
        clearTimeout(timer);
        resolve(message);
      };
      waiting.push(taker);
    });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { child, next, exited, hello: await next() };
}

describe('tellPrimary', () => {
  it('tells the primary the worker listens, with its gRPC address and each policy’s revision', async () => {
    const { hello } = await worker();
    expect(hello).toEqual({
      scopegate: 'listening',
      grpc: '127.0.0.1:9191',
      policies: { inventory: 'rev-1' },
    });
  });

  it('with no primary to tell (no IPC channel) it still resolves, and leaving is a no-op', () => {
    const run = spawnSync(process.execPath, [CHILD], { encoding: 'utf8', timeout: 10_000 });
    expect(run.stderr).toBe('');
    expect(run.stdout).toBe('told no one\n');
    expect(run.status).toBe(0);
  });
});

describe('answerPrimary', () => {
  it('answers a metrics question with its registry as JSON, under the question’s id', async () => {
    const { child, next } = await worker();
    child.send({ scopegate: 'ask', id: 7, question: 'metrics' });
    const answer = await next();
    expect(answer).toMatchObject({ scopegate: 'answer', id: 7 });
    const families = (answer as { answer: Array<{ name: string; values: Array<{ value: number }> }> }).answer;
    const decisions = families.find((family) => family.name === 'scopegate_decisions_total');
    expect(decisions?.values).toContainEqual(
      expect.objectContaining({
        labels: {
          decision: 'allow',
          reason: 'allowed',
          route: 'list_transactions',
          policy: 'inventory',
          transport: 'grpc',
        },
        value: 1,
      }),
    );
  });

  it('answers a readiness question with its problems and notes', async () => {
    const { child, next } = await worker(['no usable keys for https://idp.example/']);
    child.send({ scopegate: 'ask', id: 1, question: 'readiness' });
    expect(await next()).toEqual({
      scopegate: 'answer',
      id: 1,
      answer: { problems: ['no usable keys for https://idp.example/'], notes: [] },
    });
  });

  it('ignores messages that are not questions, or that carry no id', async () => {
    const { child, next } = await worker();
    child.send({ scopegate: 'ask', question: 'metrics' });
    child.send({ scopegate: 'listening', id: 2 });
    child.send('hello');
    expect(await next(300)).toBeUndefined();
    child.send({ scopegate: 'ask', id: 3, question: 'readiness' });
    expect(await next()).toEqual({ scopegate: 'answer', id: 3, answer: { problems: [], notes: [] } });
  });
});

describe('leavePrimary', () => {
  it('closes the IPC channel, and with it the last thing keeping the worker alive: it exits 0', async () => {
    const { child, exited } = await worker();
    const disconnected = new Promise<void>((resolve) => child.once('disconnect', resolve));
    child.send('leave');
    await disconnected;
    expect(await exited).toBe(0);
  });
});
