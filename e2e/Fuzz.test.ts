import { execFileSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { upstreamManifests } from "../functions/gateway/Config.ts"
import { redoclyLint } from "../functions/gateway/testing/redocly.ts"
import { type NpmStart, startNpmStart } from "./testing/npmStart.ts"
import { callApi } from "./testing/platformFlow.ts"

// The schema-fuzzing gate: `npm start`'s embedded platform (scripts/start.ts, PGlite, dev mailbox, in-memory caches) on
// ports of its own, fuzzed by schemathesis through its served /openapi.json, unauthenticated and as an administrator.
// Any server error, undocumented status, wrong content type or response off its schema fails the run.
const ROOT = join(import.meta.dirname, "..")
const ADMIN = "fuzz-admin@example.com"
const PASSWORD = "correct horse battery"
const CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
// Fixed seed and bounded examples: the same ~1,400 requests per run every time; each run takes ~30-40 s here.
const SEED = "20261203"
const MAX_EXAMPLES = "20"

// schemathesis runs here (its reports and caches).
const workDir = mkdtempSync(join(tmpdir(), "platform-fuzz-"))
let platform: NpmStart | undefined
let url = ""
let schemathesis = ""
let adminToken = ""

const api = (method: string, path: string, options: { token?: string; body?: unknown } = {}) =>
  callApi(url, method, path, options)

const eventually = <A>(what: string, attempt: () => Promise<A | undefined>, timeoutMs?: number) =>
  platform!.waitFor(what, attempt, timeoutMs)

// The bootstrap administrator: register, follow the mailed link (the dev mailbox), sign in, wait for `*`.
const administratorToken = async () => {
  expect(
    (await api("POST", "/api/v1/auth/register", { body: { email: ADMIN, password: PASSWORD, name: "Admin" } })).status,
  ).toBe(201)
  const token = await eventually("the verification mail", async () => {
    const { body } = await api("GET", "/_dev/mail")
    const mail = (body.items as Array<{ to: string; text: string }>).filter((m) => m.to.includes(ADMIN)).at(-1)
    return mail === undefined ? undefined : /verify-email\?token=([A-Za-z0-9_-]+)/.exec(mail.text)?.[1]
  })
  expect((await api("POST", "/api/v1/auth/verify-email", { body: { token } })).status).toBe(204)
  const login = await api("POST", "/api/v1/auth/login", { body: { email: ADMIN, password: PASSWORD } })
  expect(login.status).toBe(200)
  const access = login.body.access_token as string
  await eventually("the administrator role", async () => {
    const { status, body } = await api("GET", "/api/v1/users/me/permissions", { token: access })
    return status === 200 && body.items.includes("*") ? true : undefined
  })
  return access
}

const fuzz = (extra: ReadonlyArray<string>) => {
  const args = [
    "run",
    `${url}/openapi.json`,
    "--checks",
    CHECKS,
    "--seed",
    SEED,
    "--max-examples",
    MAX_EXAMPLES,
    // Examples (none in the document), coverage (boundary values of every schema) and fuzzing; the stateful phase
    // (chains of calls) is left out to keep the gate about a minute.
    "--phases",
    "examples,coverage,fuzzing",
    // One worker: two share Hypothesis's caches across threads, which now and then fails inside schemathesis.
    "--workers",
    "1",
    "--request-timeout",
    "15",
    "--no-color",
    ...extra,
  ]
  try {
    const out = execFileSync(schemathesis, args, {
      cwd: workDir,
      encoding: "utf8",
      timeout: 240_000,
      maxBuffer: 64 << 20,
    })
    return { status: 0, out }
  } catch (error) {
    const e = error as { status?: number; stdout?: string; stderr?: string }
    return { status: e.status ?? -1, out: `${e.stdout ?? ""}\n${e.stderr ?? ""}`.slice(-12_000) }
  }
}

beforeAll(async () => {
  // Installs schemathesis (PyPI, pinned) into .infra/schemathesis-venv once; later runs reuse it.
  schemathesis = execFileSync("bash", [join(ROOT, "infra/schemathesis.sh")], {
    encoding: "utf8",
    timeout: 300_000,
  }).trim()
  // The embedded defaults: none of the real servers the other tests use.
  platform = await startNpmStart({
    BOOTSTRAP_ADMIN_EMAIL: ADMIN,
    // No rate limits, so the fuzzer reaches the handlers instead of a wall of 429s; the document follows the
    // configuration (no 429 where no limit applies), which the run checks too.
    RATE_LIMIT_IP_PER_MINUTE: "0",
    RATE_LIMIT_USER_PER_MINUTE: "0",
    GATEWAY_ROUTES: JSON.stringify(
      upstreamManifests().flatMap((m) =>
        m.routes.map((r) => ({ method: r.method, path: r.path, ipPerMinute: 0, userPerMinute: 0 })),
      ),
    ),
  })
  url = platform.url
  adminToken = await administratorToken()
}, 240_000)

afterAll(async () => {
  await platform?.stop()
  rmSync(workDir, { recursive: true, force: true })
}, 30_000)

describe("the served OpenAPI document under schema fuzzing (schemathesis)", () => {
  it("is the document Redocly's recommended lint passes, complete", async () => {
    const { status, body } = await api("GET", "/openapi.json")
    expect(status).toBe(200)
    expect(body["x-unavailable"]).toBeUndefined()
    const { clean, output: lint } = redoclyLint(body)
    expect(clean, lint).toBe(true)
  })

  it("finds nothing without credentials", () => {
    const started = Date.now()
    const run = fuzz([])
    console.log(`schemathesis (anonymous): ${Date.now() - started} ms\n${run.out.split("SUMMARY").at(-1)}`)
    expect(run.status, run.out).toBe(0)
  }, 300_000)

  it("finds nothing as an administrator", () => {
    const started = Date.now()
    const run = fuzz([
      "--header",
      `Authorization: Bearer ${adminToken}`,
      // Destructive operations on the administrator itself: ending all of its sessions or deleting its own account
      // would turn the rest of the run into an unauthenticated one (both are fuzzed in the anonymous run).
      "--exclude-operation-id",
      "sessions.logoutAll",
      "--exclude-operation-id",
      "me.deactivate",
    ])
    console.log(`schemathesis (administrator): ${Date.now() - started} ms\n${run.out.split("SUMMARY").at(-1)}`)
    expect(run.status, run.out).toBe(0)
  }, 300_000)
})
