// Realtime with the official JS SDK, three clients at once, public and owner-only topics mixed.
//
//   PB_USERS='{"alice":"pass","bob":"pass"}' node tests/sdk/js/realtime_mix.mjs BASE_URL
//
// * guest: `posts/*` (public), `attachments/*` (owner-only) and `posts/*` with `fields` options
//   (a topic that goes on the same stream as its `attachments/*` through the gateway: the
//   marker after which a missing attachment event is known to be missing);
// * alice (signed in): `posts/*` and `attachments/*`;
// * bob (signed in): `attachments/*` only.
// Alice then creates an attachment of hers and a post, and bob an attachment of his (bob's
// marker). Every client waits for its expected events; the summary line (JSON on stdout) lists
// what each one received, for the test to assert. A failure prints `FAIL <why>` on stderr and
// exits 1. Runs unchanged against PocketBase itself (the control) and the gateway.

import { Buffer } from "node:buffer";
import process from "node:process";

import { EventSource } from "eventsource";
import PocketBase, { BaseAuthStore } from "pocketbase";

globalThis.EventSource ??= EventSource;

const WAIT_MS = Number(process.env.PB_REALTIME_WAIT_MS || 15000);
const MARKER = "posts/*?options=" + encodeURIComponent(JSON.stringify({ query: { fields: "id" } }));

function waitFor(events, predicate, what) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const timer = setInterval(() => {
      const found = events.find(predicate);
      if (found) {
        clearInterval(timer);
        resolve(found);
      } else if (Date.now() - started > WAIT_MS) {
        clearInterval(timer);
        reject(new Error(`${what}: nothing within ${WAIT_MS} ms`));
      }
    }, 10);
  });
}

async function main() {
  const baseUrl = process.argv[2];
  const users = JSON.parse(process.env.PB_USERS || "{}");
  const clients = {
    guest: new PocketBase(baseUrl, new BaseAuthStore()),
    alice: new PocketBase(baseUrl, new BaseAuthStore()),
    bob: new PocketBase(baseUrl, new BaseAuthStore()),
  };
  const received = { guest: [], alice: [], bob: [] };
  for (const pb of Object.values(clients)) pb.autoCancellation(false);
  await clients.alice.collection("users").authWithPassword("alice@postly.test", users.alice);
  await clients.bob.collection("users").authWithPassword("bob@postly.test", users.bob);

  const listen = (name, topic) => (e) =>
    received[name].push({ topic, action: e.action, id: e.record?.id, collection: e.record?.collectionName });
  const subscriptions = {
    guest: ["posts/*", "attachments/*", MARKER],
    alice: ["posts/*", "attachments/*"],
    bob: ["attachments/*"],
  };
  for (const [name, topics] of Object.entries(subscriptions)) {
    for (const topic of topics) {
      await clients[name].realtime.subscribe(topic, listen(name, topic));
    }
  }

  const alice = clients.alice;
  const aliceId = alice.authStore.record.id;
  const bobId = clients.bob.authStore.record.id;
  const form = (owner, title) => {
    const data = new FormData();
    data.append("title", title);
    data.append("owner", owner);
    data.append("file", new Blob([Buffer.from(`for ${title}`)], { type: "text/plain" }), "note.txt");
    return data;
  };
  const mine = await alice.collection("attachments").create(form(aliceId, "alice's"));
  const post = await alice.collection("posts").create({ title: "mixed topics", status: "draft", author: aliceId });
  const bobs = await clients.bob.collection("attachments").create(form(bobId, "bob's"));

  await waitFor(received.alice, (e) => e.topic === "attachments/*" && e.id === mine.id, "alice: her attachment");
  await waitFor(received.alice, (e) => e.topic === "posts/*" && e.id === post.id, "alice: the post");
  await waitFor(received.guest, (e) => e.topic === "posts/*" && e.id === post.id, "guest: the post");
  await waitFor(received.guest, (e) => e.topic === MARKER && e.id === post.id, "guest: the marker");
  await waitFor(received.bob, (e) => e.topic === "attachments/*" && e.id === bobs.id, "bob: his attachment");

  await clients.bob.collection("attachments").delete(bobs.id);
  await alice.collection("attachments").delete(mine.id);
  await alice.collection("posts").delete(post.id);
  for (const pb of Object.values(clients)) await pb.realtime.unsubscribe();
  console.log(JSON.stringify({ ok: true, ids: { alice: mine.id, bob: bobs.id, post: post.id }, received }));
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`FAIL ${err?.stack || err}`);
    process.exit(1);
  },
);
