// A scripted user session with the official PocketBase JS SDK (npm `pocketbase`).
//
//   node tests/sdk/js/session.mjs http://127.0.0.1:8090      (or PB_BASE_URL=... node session.mjs)
//   node tests/sdk/js/session.mjs --part=crud URL             (all | crud | realtime)
//   node tests/sdk/js/session.mjs --sessions=rolling URL      (a gateway with rolling sessions)
//
// Realtime runs after the CRUD steps, with a post of its own; `--part=crud` / `--part=realtime`
// run one half (each with its own signup, login and logout).
//
// Runs against anything that speaks PocketBase's API and holds the postly schema
// (examples/postly/pb_schema.json): PocketBase itself (the control) or the generated gateway.
// With `--sessions=rolling` the session also asserts the gateway's rolling keys: the token is
// the gateway's key (never a PocketBase HS256 token), it changes on refresh, and logout calls
// `POST /api/hapta/logout`, after which the old key is refused.
// Each step asserts what it got; the first failure prints `FAIL <step>: <why>` on stderr and
// exits 1 (2 for a usage error). On success it prints one JSON summary line on stdout.
//
// Needs `npm ci` in tests/sdk/js (pocketbase + the `eventsource` polyfill the SDK's README
// recommends for Node, which has no global EventSource before v22).

import { Buffer } from "node:buffer";
import { randomBytes } from "node:crypto";
import process from "node:process";

import { EventSource } from "eventsource";
import PocketBase, { BaseAuthStore, ClientResponseError } from "pocketbase";

globalThis.EventSource ??= EventSource;

const REALTIME_WAIT_MS = Number(process.env.PB_REALTIME_WAIT_MS || 10000);
// A 1x1 red PNG: PocketBase sniffs the content, so it must be a real image.
const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC",
  "base64",
);

// Which steps each --part runs (signup, login and logout always: every part needs a user).
const CRUD = ["create-with-file", "list-expand-filter", "update", "delete", "auth-refresh"];
const PARTS = {
  all: ["signup", "login", ...CRUD, "realtime", "logout"],
  crud: ["signup", "login", ...CRUD, "logout"],
  realtime: ["signup", "login", "realtime", "logout"],
};

class StepFailure extends Error {}

function check(condition, message) {
  if (!condition) throw new StepFailure(message);
}

// JSON with object keys sorted: PocketBase's key order is not part of its contract
// (`fields=` picks keys in arbitrary order).
function canonical(value) {
  return JSON.stringify(value, (_key, v) =>
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, v[k]]))
      : v,
  );
}

function equal(actual, expected, what) {
  const a = canonical(actual);
  const e = canonical(expected);
  check(a === e, `${what}: expected ${e}, got ${a}`);
}

// A rolling-session key: JWT-shaped (the SDK reads its exp), but not a PocketBase token.
function checkSessionKey(token) {
  const header = JSON.parse(Buffer.from(token.split(".")[0], "base64url").toString("utf8"));
  check(header.alg !== "HS256", `a PocketBase token reached the client: ${token.slice(0, 20)}...`);
  check(header.typ === "hapta-session", `not a session key: ${JSON.stringify(header)}`);
}

function describe(err) {
  if (err instanceof ClientResponseError && err.status === 0) {
    const cause = err.originalError?.cause || err.originalError;
    return `no HTTP answer (${cause?.code || cause?.message || err.message})`;
  }
  if (err instanceof ClientResponseError) {
    return `HTTP ${err.status} from ${err.url}: ${JSON.stringify(err.response)}`;
  }
  return err?.stack || String(err);
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new StepFailure(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// What GET /api/realtime answers (status, content type, first bytes), for a failure message.
async function probeRealtime(baseUrl) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 3000);
  try {
    const resp = await fetch(new URL("/api/realtime", baseUrl), { signal: controller.signal });
    const reader = resp.body?.getReader();
    const first = reader ? await reader.read() : { value: undefined };
    const text = first.value ? Buffer.from(first.value).toString("utf8", 0, 200) : "";
    return `GET /api/realtime answered ${resp.status} ${resp.headers.get("content-type")}: ${text.trim()}`;
  } catch (err) {
    return `GET /api/realtime failed: ${err?.message || err}`;
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}

async function main() {
  const args = process.argv.slice(2);
  const partArg = args.find((a) => a.startsWith("--part="));
  const part = partArg ? partArg.slice("--part=".length) : "all";
  const rolling = args.includes("--sessions=rolling");
  const baseUrl = args.find((a) => !a.startsWith("--")) || process.env.PB_BASE_URL;
  if (!baseUrl || !PARTS[part]) {
    console.error(`usage: node session.mjs [--part=${Object.keys(PARTS).join("|")}] BASE_URL`);
    console.error("       (or set PB_BASE_URL)");
    process.exit(2);
  }
  const wanted = new Set(PARTS[part]);
  const url = new URL(baseUrl);
  if (!["127.0.0.1", "localhost", "[::1]"].includes(url.hostname)) {
    console.error(`refusing a non-local target: ${baseUrl}`);
    process.exit(2);
  }

  const pb = new PocketBase(baseUrl, new BaseAuthStore());
  pb.autoCancellation(false);
  const steps = [];
  const summary = { ok: false, baseUrl, sdk: "pocketbase-js", part, steps };
  let current = "start";

  async function step(name, fn) {
    if (!wanted.has(name)) return;
    current = name;
    const started = performance.now();
    const detail = await fn();
    steps.push({ name, ms: Math.round(performance.now() - started), ...(detail || {}) });
  }

  const suffix = randomBytes(5).toString("hex");
  const email = `js-${suffix}@postly.test`;
  const password = `js-pass-${suffix}`;
  let user;
  let post;
  let unsubscribe = null;
  const realtimeEvents = [];

  try {
    await step("signup", async () => {
      user = await pb.collection("users").create({
        email,
        password,
        passwordConfirm: password,
        name: "JS SDK",
        emailVisibility: true,
      });
      check(/^[a-z0-9]{15}$/.test(user.id), `new user id looks wrong: ${user.id}`);
      equal(user.email, email, "signup email");
      equal(user.name, "JS SDK", "signup name");
      check(!("password" in user) && !("tokenKey" in user), "signup response leaks password/tokenKey");
      check(!pb.authStore.isValid, "signing up must not log in");
      return { user: user.id };
    });

    await step("login", async () => {
      const auth = await pb.collection("users").authWithPassword(email, password);
      check(typeof auth.token === "string" && auth.token.split(".").length === 3, "no JWT token");
      if (rolling) checkSessionKey(auth.token);
      equal(auth.record.id, user.id, "logged-in record id");
      check(pb.authStore.isValid, "authStore is not valid after login");
      equal(pb.authStore.record?.id, user.id, "authStore record id");
      let refused = false;
      try {
        await new PocketBase(baseUrl, new BaseAuthStore())
          .collection("users")
          .authWithPassword(email, "wrong-password-123");
      } catch (err) {
        refused = err instanceof ClientResponseError && err.status === 400;
      }
      check(refused, "a wrong password must be refused with 400");
    });

    await step("create-with-file", async () => {
      const form = new FormData();
      form.append("title", `JS SDK post ${suffix}`);
      form.append("status", "draft");
      form.append("author", user.id);
      form.append("tags", "python");
      form.append("tags", "go");
      form.append("views", "1");
      form.append("meta", JSON.stringify({ sdk: "js", n: 1 }));
      form.append("cover", new Blob([PNG], { type: "image/png" }), "cover.png");
      post = await pb.collection("posts").create(form);
      equal(post.title, `JS SDK post ${suffix}`, "created title");
      equal(post.author, user.id, "created author");
      equal(post.tags, ["python", "go"], "created tags");
      equal(post.views, 1, "created views (number from multipart text)");
      equal(post.meta, { sdk: "js", n: 1 }, "created meta");
      check(/^cover_[a-z0-9]+\.png$/.test(post.cover), `stored cover name: ${post.cover}`);
      check(!("moderationNote" in post), "hidden field moderationNote is in the response");

      const fileUrl = pb.files.getURL(post, post.cover);
      const resp = await fetch(fileUrl);
      equal(resp.status, 200, `GET ${fileUrl} status`);
      equal(resp.headers.get("content-type"), "image/png", "file content-type");
      const body = Buffer.from(await resp.arrayBuffer());
      check(body.equals(PNG), `downloaded file differs (${body.length} bytes, sent ${PNG.length})`);
      return { post: post.id, cover: post.cover };
    });

    await step("list-expand-filter", async () => {
      const page = await pb.collection("posts").getList(1, 30, {
        filter: pb.filter("author = {:author} && title ~ {:title}", {
          author: user.id,
          title: suffix,
        }),
        expand: "author",
        sort: "-created",
      });
      equal(page.page, 1, "list page");
      equal(page.perPage, 30, "list perPage");
      equal(page.totalItems, 1, "list totalItems");
      equal(page.items.map((r) => r.id), [post.id], "listed ids");
      equal(page.items[0].expand?.author?.id, user.id, "expand.author.id");
      equal(page.items[0].expand?.author?.email, email, "expand.author.email (visible)");

      const seeded = await pb.collection("posts").getList(1, 2, {
        filter: "status = 'published'",
        expand: "author",
        sort: "created",
        skipTotal: true,
      });
      equal(seeded.items.length, 2, "published seed posts on a 2-item page");
      check(
        seeded.items.every((r) => r.status === "published" && r.expand?.author?.id === r.author),
        "seeded published posts with their expanded author",
      );
      equal(seeded.totalItems, -1, "skipTotal totalItems");
    });

    await step("update", async () => {
      const updated = await pb
        .collection("posts")
        .update(post.id, { title: `JS SDK edited ${suffix}`, "views+": 4, "tags-": "go" });
      equal(updated.id, post.id, "updated id");
      equal(updated.title, `JS SDK edited ${suffix}`, "updated title");
      equal(updated.views, 5, "views after views+ 4");
      equal(updated.tags, ["python"], "tags after tags- go");
      equal(updated.cover, post.cover, "cover kept");
      const again = await pb.collection("posts").getOne(post.id, { fields: "id,title,views" });
      equal(again, { id: post.id, title: updated.title, views: 5 }, "re-read with fields");
    });

    await step("delete", async () => {
      const ok = await pb.collection("posts").delete(post.id);
      equal(ok, true, "delete result");
      let status = 0;
      try {
        await pb.collection("posts").getOne(post.id);
      } catch (err) {
        status = err instanceof ClientResponseError ? err.status : -1;
      }
      equal(status, 404, "getOne after delete");
    });

    await step("auth-refresh", async () => {
      const before = pb.authStore.token;
      const auth = await pb.collection("users").authRefresh();
      check(typeof auth.token === "string" && auth.token.split(".").length === 3, "no refreshed JWT");
      equal(auth.record.id, user.id, "refreshed record id");
      equal(auth.record.email, email, "refreshed record email");
      check(pb.authStore.isValid, "authStore invalid after refresh");
      if (rolling) {
        checkSessionKey(auth.token);
        check(auth.token !== before, "the session key did not change on refresh");
      }
      return { tokenChanged: auth.token !== before };
    });

    await step("realtime", async () => {
      let resolveCreated;
      const created = new Promise((resolve) => {
        resolveCreated = resolve;
      });
      const title = `JS SDK realtime ${suffix}`;
      try {
        unsubscribe = await pb.collection("posts").subscribe("*", (event) => {
          realtimeEvents.push({ action: event.action, id: event.record?.id });
          if (event.action === "create" && event.record?.title === title) resolveCreated(event);
        });
      } catch (err) {
        throw new StepFailure(`subscribe failed (${describe(err)}); ${await probeRealtime(baseUrl)}`);
      }
      check(pb.realtime.isConnected, "realtime is not connected after subscribe");
      check(pb.realtime.clientId, "realtime has no clientId");
      const live = await pb.collection("posts").create({ title, status: "draft", author: user.id });
      const event = await withTimeout(created, REALTIME_WAIT_MS, "realtime create event");
      equal(event.record.id, live.id, "realtime event record id");
      equal(event.record.author, user.id, "realtime event record author");
      await unsubscribe();
      unsubscribe = null;
      await pb.collection("posts").delete(live.id);
      return { post: live.id, events: realtimeEvents.length };
    });

    await step("logout", async () => {
      const key = pb.authStore.token;
      if (rolling) {
        await pb.send("/api/hapta/logout", { method: "POST" });
        const stale = new PocketBase(baseUrl, new BaseAuthStore());
        stale.authStore.save(key, pb.authStore.record);
        let staleStatus = 0;
        try {
          await stale.collection("users").authRefresh();
        } catch (err) {
          staleStatus = err instanceof ClientResponseError ? err.status : -1;
        }
        equal(staleStatus, 401, "auth-refresh with the logged-out key");
      }
      pb.authStore.clear();
      check(!pb.authStore.isValid && pb.authStore.token === "", "authStore not cleared");
      let status = 0;
      try {
        await pb.collection("posts").create({ title: "guest post", status: "draft", author: user.id });
      } catch (err) {
        status = err instanceof ClientResponseError ? err.status : -1;
      }
      equal(status, 400, "a guest create (createRule needs auth) after logout");
      let refreshStatus = 0;
      try {
        await pb.collection("users").authRefresh();
      } catch (err) {
        refreshStatus = err instanceof ClientResponseError ? err.status : -1;
      }
      equal(refreshStatus, 401, "auth-refresh without a token");
    });
  } catch (err) {
    const why = err instanceof StepFailure ? err.message : describe(err);
    console.error(`FAIL ${current}: ${why}`);
    summary.failedStep = current;
    summary.error = why;
    console.log(JSON.stringify(summary));
    process.exit(1);
  } finally {
    if (unsubscribe) await unsubscribe().catch(() => {});
    await pb.realtime.unsubscribe().catch(() => {});
  }

  summary.ok = true;
  summary.realtimeEvents = realtimeEvents;
  console.log(JSON.stringify(summary));
  process.exit(0);
}

main().catch((err) => {
  console.error(`FAIL unexpected: ${describe(err)}`);
  process.exit(1);
});
