// A typed user session against the postly schema, written against the generated `types.ts`
// (`hapta-gen build`). tests/sdk/test_typescript_types.py copies both into a temporary directory,
// compiles them with `tsc --strict` and runs the result with node:
//
//   node typed_session.js BASE_URL
//
// It signs up and logs in, creates a post from a `PostsCreate` body, lists it with `expand`
// typed by `PostsExpand`, updates it with modifier keys from `PostsUpdate`, and deletes it.
// Each step checks what it got; the first failure prints `FAIL <step>: <why>` on stderr and
// exits 1. On success it prints one JSON summary line on stdout.

import PocketBase, { BaseAuthStore } from "pocketbase"

import {
  Collections,
  type PostsCreate,
  type PostsExpand,
  type PostsResponse,
  type PostsStatus,
  type PostsUpdate,
  type TypedPocketBase,
  type UsersCreate,
  type UsersResponse,
} from "./types.js"

// Node's globals this script uses (the test compiles without @types/node).
declare const process: { argv: string[]; exit(code: number): never }

class StepFailure extends Error {}

function check(condition: boolean, message: string): asserts condition {
  if (!condition) throw new StepFailure(message)
}

function same(actual: unknown, expected: unknown, what: string): void {
  const a = JSON.stringify(actual)
  const e = JSON.stringify(expected)
  check(a === e, `${what}: expected ${e}, got ${a}`)
}

async function main(baseUrl: string): Promise<void> {
  const pb = new PocketBase(baseUrl, new BaseAuthStore()) as TypedPocketBase
  pb.autoCancellation(false)
  const steps: string[] = []
  let current = "start"
  async function step(name: string, fn: () => Promise<void>): Promise<void> {
    current = name
    await fn()
    steps.push(name)
  }

  const suffix = crypto.randomUUID().slice(0, 10)
  const email = `ts-${suffix}@postly.test`
  const password = `ts-pass-${suffix}`
  let user: UsersResponse | undefined
  let post: PostsResponse | undefined

  try {
    await step("signup", async () => {
      const body: UsersCreate = { email, password, passwordConfirm: password, name: "TS types", emailVisibility: true }
      const created = await pb.collection("users").create(body)
      user = created
      same(created.name, "TS types", "signup name")
      await pb.collection(Collections.Users).authWithPassword(email, password)
      check(pb.authStore.isValid, "not logged in")
    })

    await step("create", async () => {
      check(user !== undefined, "no user")
      const status: PostsStatus = "draft"
      const body: PostsCreate = { title: `TS post ${suffix}`, status, author: user.id, tags: ["python", "go"], views: 1 }
      const created = await pb.collection("posts").create(body)
      post = created
      same([created.title, created.status, created.tags, created.views], [body.title, "draft", ["python", "go"], 1], "created")
    })

    await step("list-expand", async () => {
      check(user !== undefined && post !== undefined, "no post")
      const page = await pb.collection("posts").getList<PostsResponse<PostsExpand>>(1, 10, {
        filter: pb.filter("id = {:id}", { id: post.id }),
        expand: "author",
      })
      same(page.items.map((r) => r.id), [post.id], "listed ids")
      const author: UsersResponse | undefined = page.items[0].expand.author
      same(author?.id, user.id, "expand.author.id")
      same(author?.email, email, "expand.author.email")
    })

    await step("update-modifiers", async () => {
      check(post !== undefined, "no post")
      const body: PostsUpdate = { title: `TS edited ${suffix}`, "views+": 4, "tags-": "go", "+tags": ["news"] }
      const updated = await pb.collection("posts").update(post.id, body)
      same([updated.title, updated.views, updated.tags], [body.title, 5, ["news", "python"]], "updated")
    })

    await step("delete", async () => {
      check(post !== undefined, "no post")
      same(await pb.collection("posts").delete(post.id), true, "deleted")
    })
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err)
    const detail = (err as { response?: unknown }).response
    console.error(`FAIL ${current}: ${why}${detail ? " " + JSON.stringify(detail) : ""}`)
    console.log(JSON.stringify({ ok: false, failedStep: current, steps }))
    process.exit(1)
  }
  console.log(JSON.stringify({ ok: true, baseUrl, steps, post: post?.id, user: user?.id }))
}

const baseUrl = process.argv[2]
if (!baseUrl) {
  console.error("usage: node typed_session.js BASE_URL")
  process.exit(2)
}
await main(baseUrl)
