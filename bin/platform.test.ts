import { spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type NpmStart, startNpmStart } from "../e2e/testing/npmStart.ts"
import { apiAs, freshEmail, PASSWORD, signUp } from "../functions/gateway/console/testing/accounts.ts"
import { type CommandRun, runCommand } from "../shared/testing/command.ts"
import { freePort } from "../shared/testing/ports.ts"
import { allCommands, buildProgram, pathOf } from "./program.ts"

// The real `platform` command (node bin/platform.ts, as `npx platform` runs it) against `npm start`'s platform, each
// person with a config folder of their own (PLATFORM_CONFIG_DIR), signing in the way a script does (--password-stdin).
const BIN = join(import.meta.dirname, "platform.ts")
const ADMIN = freshEmail("cli-admin")

let platform: NpmStart | undefined
let url = ""
let admin: Awaited<ReturnType<typeof signUp>>
const folders: Array<string> = []

/** Runs `platform args` as the person whose config folder is `config`, `input` on its stdin. */
const cli = (config: string, args: ReadonlyArray<string>, input = "", env: Record<string, string> = {}) =>
  runCommand(process.execPath, [BIN, ...args], {
    env: { ...process.env, PLATFORM_URL: url, PLATFORM_CONFIG_DIR: config, NO_COLOR: "1", ...env },
    input,
  })

const configFolder = () => {
  const folder = mkdtempSync(join(tmpdir(), "platform-cli-"))
  folders.push(folder)
  // A folder of its own inside: the CLI creates it (0700), as it does the user's config directory.
  return join(folder, "config")
}

/** A config folder signed in as `email` (with PASSWORD). */
const signedIn = async (email: string) => {
  const config = configFolder()
  const login = await cli(config, ["login", "--email", email, "--password-stdin"], `${PASSWORD}\n`)
  expect(login, login.stderr).toMatchObject({ code: 0 })
  return config
}

const json = <A>(run: CommandRun): A => {
  expect(run.code, run.stderr).toBe(0)
  return JSON.parse(run.stdout) as A
}

const credentials = (config: string) =>
  JSON.parse(readFileSync(join(config, "credentials.json"), "utf8")) as {
    sessions: Record<string, { email: string; accessToken: string; refreshToken: string; expiresAt: string }>
  }

let adminConfig = ""

beforeAll(async () => {
  platform = await startNpmStart({
    BOOTSTRAP_ADMIN_EMAIL: ADMIN,
    RATE_LIMIT_USER_PER_MINUTE: "0",
    RATE_LIMIT_IP_PER_MINUTE: "0",
  })
  url = platform.url
  admin = await signUp(url, ADMIN, "Admin")
  adminConfig = await signedIn(ADMIN)
}, 150_000)

afterAll(async () => {
  await platform?.stop()
  for (const folder of folders) rmSync(folder, { recursive: true, force: true })
}, 30_000)

describe("platform, the admin CLI, against npm start", () => {
  it("signs in from stdin, keeps the session in a 0600 file, and says who is signed in", async () => {
    const config = configFolder()
    const refused = await cli(config, ["login", "--email", ADMIN, "--password-stdin"], "not the password\n")
    expect(refused.code).toBe(3)
    expect(refused.stderr).toContain("wrong email or password")
    expect(refused.stdout).toBe("")

    const login = await cli(config, ["login", "--email", ADMIN, "--password-stdin"], `${PASSWORD}\n`)
    expect(login.code, login.stderr).toBe(0)
    expect(login.stdout).toContain(`Signed in to ${url} as ${ADMIN}`)
    expect(statSync(join(config, "credentials.json")).mode & 0o777).toBe(0o600)
    expect(statSync(config).mode & 0o777).toBe(0o700)
    expect(credentials(config).sessions[url]?.email).toBe(ADMIN)
    // The password is nowhere in the file.
    expect(readFileSync(join(config, "credentials.json"), "utf8")).not.toContain(PASSWORD)

    const whoami = await cli(config, ["whoami"])
    expect(whoami.code, whoami.stderr).toBe(0)
    expect(whoami.stdout).toContain(ADMIN)
    const me = json<{ user: { id: string; email: string }; permissions: Array<string> }>(
      await cli(config, ["--json", "whoami"]),
    )
    expect(me.user).toMatchObject({ id: admin.id, email: ADMIN })
    expect(me.permissions).toEqual(["*"])

    // No terminal to ask on and no --password-stdin: a usage error, not a hang.
    expect((await cli(config, ["login", "--email", ADMIN])).code).toBe(2)
  })

  it("exits 3 when not signed in, 2 on a wrong command line, 7 when the platform cannot be reached", async () => {
    const nobody = configFolder()
    const whoami = await cli(nobody, ["whoami"])
    expect(whoami.code).toBe(3)
    expect(whoami.stderr).toContain("not signed in")
    expect(whoami.stderr).toContain("platform login")

    const unknown = await cli(nobody, ["frobnicate"])
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain("unknown command 'frobnicate'")
    expect((await cli(adminConfig, ["users", "list", "--limit", "0"])).code).toBe(2)
    expect((await cli(adminConfig, ["audit", "tail", "--since", "last tuesday"])).code).toBe(2)
    expect((await cli(adminConfig, ["users", "disable"])).code).toBe(2)
    expect((await cli(adminConfig, ["users"])).code).toBe(2)

    const closed = `http://127.0.0.1:${await freePort()}`
    const unreachable = await cli(nobody, ["--url", closed, "login", "--email", ADMIN, "--password-stdin"], PASSWORD)
    expect(unreachable.code).toBe(7)
    expect(unreachable.stderr).toContain(`cannot reach ${closed}`)
  })

  it("answers --help for every command", async () => {
    const commands = allCommands(buildProgram())
    expect(commands.length).toBeGreaterThan(20)
    for (const command of commands) {
      const path = pathOf(command)
      const help = await cli(adminConfig, [...path, "--help"])
      expect(help.code, `platform ${path.join(" ")} --help: ${help.stderr}`).toBe(0)
      expect(help.stdout).toContain(`Usage: platform${path.length === 0 ? "" : ` ${path.join(" ")}`}`)
    }
    expect((await cli(adminConfig, ["--help"])).stdout).toContain("Exit codes:")
    // Help asked for is not an error; a group without its command is a usage error (with the group's help).
    expect((await cli(adminConfig, ["help", "roles"])).code).toBe(0)
    const bare = await cli(adminConfig, [])
    expect(bare.code).toBe(2)
    expect(bare.stderr).toContain("Usage: platform")
  })

  it("lists, searches, disables and enables users", async () => {
    const victim = await signUp(url, freshEmail("cli-victim"), "Victim Person")
    const victimConfig = await signedIn(victim.email)

    const listed = json<{ items: Array<{ id: string }>; nextCursor: string | null }>(
      await cli(adminConfig, ["--json", "users", "list", "--email", victim.email.toUpperCase()]),
    )
    expect(listed.items.map((u) => u.id)).toEqual([victim.id])
    const all = json<{ items: Array<{ id: string }> }>(await cli(adminConfig, ["users", "list", "--all", "--json"]))
    expect(all.items.map((u) => u.id)).toEqual(expect.arrayContaining([victim.id, admin.id]))
    const table = await cli(adminConfig, ["users", "list"])
    expect(table.stdout).toContain(victim.email)

    const search = await cli(adminConfig, ["users", "search", "victim pers"])
    expect(search.code, search.stderr).toBe(0)
    expect(search.stdout).toContain(victim.email)
    expect(search.stdout).not.toContain(ADMIN)

    const disabled = await cli(adminConfig, ["users", "disable", victim.email])
    expect(disabled.code, disabled.stderr).toBe(0)
    expect(((await apiAs(url, admin.token).get(`/api/v1/users/${victim.id}`)) as { status: string }).status).toBe(
      "disabled",
    )
    // Their sessions ended, and they cannot sign in again.
    expect((await cli(victimConfig, ["whoami"])).code).toBe(3)
    const again = await cli(configFolder(), ["login", "--email", victim.email, "--password-stdin"], PASSWORD)
    expect(again.code).toBe(3)
    expect(again.stderr).toContain("wrong email or password")

    expect((await cli(adminConfig, ["users", "enable", victim.id])).code).toBe(0)
    await signedIn(victim.email)

    const missing = await cli(adminConfig, ["users", "disable", "nobody-here@example.com"])
    expect(missing.code).toBe(5)
    expect(missing.stderr).toContain("no user with the email nobody-here@example.com")
  })

  it("refuses a signed-in user without the permission with exit code 4 and the reason", async () => {
    const someone = await signUp(url, freshEmail("cli-someone"))
    const config = await signedIn(someone.email)
    const refused = await cli(config, ["users", "list"])
    expect(refused.code).toBe(4)
    expect(refused.stderr).toContain("identity.user.read")
    // --json: the problem+json on stderr, nothing on stdout.
    const quiet = await cli(config, ["--json", "audit", "verify"])
    expect(quiet.code).toBe(4)
    expect(quiet.stdout).toBe("")
    expect(JSON.parse(quiet.stderr)).toMatchObject({ code: "forbidden", status: 403 })
  })

  it("creates roles, grants and revokes them (by name and email), and says why a role is refused", async () => {
    const member = await signUp(url, freshEmail("cli-member"))
    const name = `editors-${Date.now()}`
    const created = json<{ id: string; permissions: Array<string> }>(
      await cli(adminConfig, [
        "--json",
        "roles",
        "create",
        name,
        "--permission",
        "blog.post.create",
        "--permission",
        "blog.post.publish",
        "--description",
        "Writers",
      ]),
    )
    expect(created.permissions).toEqual(["blog.post.create", "blog.post.publish"])

    const roles = async () =>
      ((await apiAs(url, admin.token).get(`/api/v1/users/${member.id}/roles`)) as { items: Array<{ id: string }> })
        .items
    expect((await cli(adminConfig, ["roles", "grant", name, member.email])).code).toBe(0)
    expect((await roles()).map((r) => r.id)).toEqual([created.id])
    expect((await cli(adminConfig, ["roles", "of", member.email])).stdout).toContain(name)
    expect((await cli(adminConfig, ["roles", "revoke", created.id, member.id])).code).toBe(0)
    expect(await roles()).toEqual([])
    expect((await cli(adminConfig, ["roles", "list"])).stdout).toContain(name)

    const taken = await cli(adminConfig, ["roles", "create", name, "-p", "blog.post.create"])
    expect(taken.code).toBe(6)
    expect(taken.stderr).toContain("already exists")
    const invalid = await cli(adminConfig, ["roles", "create", `${name}-x`, "-p", "Not A Permission"])
    expect(invalid.code).toBe(6)
    expect(invalid.stderr).toContain("permissions.0:")
    const unknownRole = await cli(adminConfig, ["roles", "grant", "no-such-role", member.email])
    expect(unknownRole.code).toBe(5)
  })

  it("tails the audit log with filters, follows it, and verifies its chain", async () => {
    const name = `audited-${Date.now()}`
    expect((await cli(adminConfig, ["roles", "create", name, "-p", "blog.post.create"])).code).toBe(0)
    const tail = await platform!.waitFor("the role's audit record", async () => {
      const run = await cli(adminConfig, ["audit", "tail", "--action", "authz.role.created", "--actor", ADMIN])
      return run.stdout.includes("authz.role.created") ? run : undefined
    })
    expect(tail.code).toBe(0)
    const page = json<{ items: Array<{ action: string; actorId: string }> }>(
      await cli(adminConfig, ["--json", "audit", "tail", "--action", "authz.role.created", "--since", "10m"]),
    )
    expect(page.items.length).toBeGreaterThan(0)
    for (const record of page.items) expect(record).toMatchObject({ action: "authz.role.created", actorId: admin.id })

    // --follow: records that arrive later are printed as they come, one JSON object a line.
    const follower = spawn(
      process.execPath,
      [BIN, "--json", "audit", "tail", "--follow", "--interval", "0.5", "--action", "authz.role.deleted"],
      { env: { ...process.env, PLATFORM_URL: url, PLATFORM_CONFIG_DIR: adminConfig } },
    )
    let followed = ""
    follower.stdout.on("data", (chunk) => {
      followed += chunk
    })
    try {
      const role = (await apiAs(url, admin.token).post("/api/v1/roles", {
        name: `${name}-gone`,
        permissions: ["blog.post.create"],
      })) as { id: string }
      await fetch(`${url}/api/v1/roles/${role.id}`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${admin.token}` },
      })
      const line = await platform!.waitFor("the followed record", async () =>
        followed
          .split("\n")
          .filter((l) => l !== "")
          .map((l) => JSON.parse(l) as { action: string; targetId: string })
          .find((r) => r.targetId === role.id),
      )
      expect(line.action).toBe("authz.role.deleted")
    } finally {
      follower.kill()
    }

    const verified = await cli(adminConfig, ["audit", "verify"])
    expect(verified.code, verified.stderr).toBe(0)
    expect(verified.stdout).toMatch(/^ok: \d+ records/)
    expect(json<{ ok: boolean }>(await cli(adminConfig, ["--json", "audit", "verify", "--full"])).ok).toBe(true)
  })

  it("lists and publishes blog posts, now or at a time", async () => {
    const api = apiAs(url, admin.token)
    const post = (await api.post("/api/v1/blog/posts", { title: `CLI post ${Date.now()}`, body: "Hello" })) as {
      id: string
      slug: string
    }
    const drafts = await cli(adminConfig, ["blog", "list", "--status", "draft"])
    expect(drafts.stdout).toContain(post.slug)

    const published = await cli(adminConfig, ["blog", "publish", post.slug])
    expect(published.code, published.stderr).toBe(0)
    expect(published.stdout).toContain("is now published")
    expect(((await api.get(`/api/v1/blog/posts/${post.id}`)) as { status: string }).status).toBe("published")
    const everyone = json<{ items: Array<{ id: string }> }>(
      await cli(adminConfig, ["--json", "blog", "list", "--published"]),
    )
    expect(everyone.items.map((p) => p.id)).toContain(post.id)

    // Published already: scheduling it is a conflict the platform explains.
    const conflict = await cli(adminConfig, ["blog", "publish", post.id, "--at", "2h"])
    expect(conflict.code).toBe(6)
    expect(conflict.stderr).toContain("unpublish")
    expect((await cli(adminConfig, ["blog", "unpublish", post.id])).code).toBe(0)
    const scheduled = json<{ status: string; publishAt: string }>(
      await cli(adminConfig, ["--json", "blog", "publish", post.id, "--at", "2h"]),
    )
    expect(scheduled.status).toBe("scheduled")
    expect(Date.parse(scheduled.publishAt) - Date.now()).toBeGreaterThan(3_600_000)

    expect((await cli(adminConfig, ["blog", "publish", "00000000-0000-4000-8000-000000000000"])).code).toBe(5)
  })

  it("shows billing plans and subscriptions, and the analytics overview", async () => {
    const api = apiAs(url, admin.token)
    const code = `cli-${Date.now()}`
    const plan = (await api.post("/api/v1/billing/plans", {
      code,
      name: "CLI plan",
      amount: 1999,
      currency: "EUR",
      interval: "month",
    })) as { id: string }
    await fetch(`${url}/api/v1/billing/payment-method`, {
      method: "PUT",
      headers: { authorization: `Bearer ${admin.token}`, "content-type": "application/json" },
      body: JSON.stringify({ token: "tok_visa" }),
    })
    const subscription = (await api.post("/api/v1/billing/subscriptions", { planId: plan.id })) as { id: string }

    const plans = await cli(adminConfig, ["billing", "plans"])
    expect(plans.code, plans.stderr).toBe(0)
    expect(plans.stdout).toContain(code)
    expect(plans.stdout).toContain("19.99 EUR")
    const subscriptions = json<{ items: Array<{ id: string }> }>(
      await cli(adminConfig, ["--json", "billing", "subscriptions", "--all", "--customer", ADMIN]),
    )
    expect(subscriptions.items.map((s) => s.id)).toEqual([subscription.id])
    expect((await cli(adminConfig, ["billing", "subscriptions", "--status", "active"])).stdout).toContain(
      subscription.id,
    )

    const overview = json<{ signups: number; subscriptions: { active: number } }>(
      await cli(adminConfig, ["--json", "analytics", "overview", "--from", "1d"]),
    )
    expect(overview.signups).toBeGreaterThanOrEqual(1)
    const human = await cli(adminConfig, ["analytics", "overview"])
    expect(human.stdout).toContain("sign-ups")
    const tooLong = await cli(adminConfig, ["analytics", "overview", "--from", "500d"])
    expect(tooLong.code).toBe(6)
    expect(tooLong.stderr).toContain("400 days")
  })

  it("refreshes a refused access token with the refresh token, and signs out", async () => {
    const config = await signedIn(ADMIN)
    const file = join(config, "credentials.json")
    const before = credentials(config).sessions[url]!
    // An access token the gateway refuses (as an expired one is): the CLI refreshes once and goes on.
    writeFileSync(file, JSON.stringify({ sessions: { [url]: { ...before, accessToken: "not-a-token" } } }), {
      mode: 0o600,
    })
    const whoami = await cli(config, ["whoami"])
    expect(whoami.code, whoami.stderr).toBe(0)
    expect(whoami.stdout).toContain(ADMIN)
    const after = credentials(config).sessions[url]!
    expect(after.accessToken).not.toBe("not-a-token")
    expect(after.refreshToken).not.toBe(before.refreshToken)
    expect(statSync(file).mode & 0o777).toBe(0o600)

    const logout = await cli(config, ["logout"])
    expect(logout.code, logout.stderr).toBe(0)
    expect(credentials(config).sessions[url]).toBeUndefined()
    expect((await cli(config, ["whoami"])).code).toBe(3)
    // The session ended at the platform too: its refresh token is refused.
    const refresh = await fetch(`${url}/api/v1/auth/refresh`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ refresh_token: after.refreshToken }),
    })
    expect(refresh.status).toBe(401)
  })
})
