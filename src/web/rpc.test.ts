// The typed RPC: calls resolve with the result or reject with the error text, events reach
// the other side's method, unknown and inherited names are refused, bad frames are ignored.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeFrame, encodeEvent, RpcPeer } from './rpc.ts';

interface ServerApi {
  add(a: number, b: number): number;
  fail(): void;
  slow(x: string): Promise<string>;
}
interface ClientApi {
  note(text: string): void;
}

function pair(): { server: RpcPeer<ServerApi, ClientApi>; client: RpcPeer<ClientApi, ServerApi>; notes: string[] } {
  const notes: string[] = [];
  let server: RpcPeer<ServerApi, ClientApi> | null = null;
  const client = new RpcPeer<ClientApi, ServerApi>({ note: (t) => void notes.push(t) }, (text) => void server?.receive(text));
  server = new RpcPeer<ServerApi, ClientApi>({
    add: (a, b) => a + b,
    fail: () => {
      throw new Error('no such thing');
    },
    slow: async (x) => `${x}!`,
  }, (text) => void client.receive(text));
  return { server, client, notes };
}

test('calls resolve with results and reject with error texts', async () => {
  const { client } = pair();
  assert.equal(await client.remote.add(2, 3), 5);
  assert.equal(await client.remote.slow('hi'), 'hi!');
  await assert.rejects(client.remote.fail(), /no such thing/);
});

test('unknown and inherited method names are refused', async () => {
  const { client } = pair();
  const remote = client.remote as unknown as Record<string, () => Promise<unknown>>;
  await assert.rejects(remote.nope(), /unknown method 'nope'/);
  await assert.rejects((remote.toString as unknown as () => Promise<unknown>)(), /unknown method 'toString'/);
});

test('events reach the named method; malformed frames are ignored', async () => {
  const { client, notes } = pair();
  await client.receive(encodeEvent<ClientApi, 'note'>('note', 'hello'));
  await client.receive('{not json');
  await client.receive(JSON.stringify({ t: 'event', name: 'note' }));
  assert.deepEqual(notes, ['hello']);
  assert.equal(decodeFrame('[1]'), null);
});

test('close rejects calls in flight', async () => {
  const sent: string[] = [];
  const peer = new RpcPeer<ClientApi, ServerApi>({ note: () => undefined }, (t) => void sent.push(t));
  const pending = peer.remote.add(1, 1);
  peer.close('gone');
  await assert.rejects(pending, /gone/);
  assert.equal(sent.length, 1);
});
