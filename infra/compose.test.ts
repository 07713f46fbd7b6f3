// infra/docker-compose.yml and localstack/ say the same facts as the scripts the tests use (infra/lib.sh), and every
// image is pinned to an exact version. The functions' services (profile `functions`) are what scripts/compose.ts
// renders from infra/deploy.ts, and compose-go (the parser of `docker compose`, infra/compose-check) loads and
// validates the whole file: the Compose schema and the model's consistency. No Docker engine is needed.
import { execFile } from "node:child_process"
import { createPrivateKey, createPublicKey } from "node:crypto"
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { manifests } from "../functions/registry.ts"
import { PROFILE, render, SECRETS_DIR, writeSecrets } from "../scripts/compose.ts"
import { plan } from "./deploy.ts"

const compose = readFileSync("infra/docker-compose.yml", "utf8")
const lib = readFileSync("infra/lib.sh", "utf8")
const libDefault = (key: string) => new RegExp(`${key}="\\$\\{${key}:-([^}]+)\\}"`).exec(lib)?.[1]

describe("docker compose and LocalStack", () => {
  it("pins every image to an exact version", () => {
    const images = [...compose.matchAll(/^\s*image:\s*(\S+)/gm)].map((m) => m[1]!)
    expect(images.length).toBeGreaterThanOrEqual(4)
    // Postgres versions are major.minor (15.13): exact; a bare major (postgres:15) floats.
    for (const image of images) expect(image, image).toMatch(/:v?\d+\.\d+(\.\d+)?(-[a-z0-9]+)?$/)
  })

  it("serves each store on the port and with the names infra/lib.sh uses", () => {
    for (const [key, inner] of [
      ["PG_PORT", 5432],
      ["REDIS_PORT", 6379],
      ["S3_PORT", 4566],
      ["STRIPE_MOCK_PORT", 12111],
    ] as const) {
      const port = libDefault(key)
      expect(port, key).toBeDefined()
      expect(compose, key).toContain(`127.0.0.1:${port}:${inner}`)
    }
    expect(compose).toContain(`image: stripe/stripe-mock:${libDefault("STRIPE_MOCK_VERSION")}`)
    const bucket = libDefault("S3_BUCKET")
    expect(readFileSync("localstack/init/ready.d/10-buckets.sh", "utf8")).toContain(`S3_BUCKET:-${bucket}`)
    expect(readFileSync("localstack/README.md", "utf8")).toContain(`\`${bucket}\``)
    expect(readFileSync("localstack/README.md", "utf8")).toContain(`127.0.0.1:${libDefault("S3_PORT")}`)
  })
})

// ---------------------------------------------------------------- every function in Docker

/** What compose-go prints for a loaded project (`docker compose config --format json`), the parts checked here. */
interface Service {
  readonly image?: string
  readonly profiles?: ReadonlyArray<string>
  readonly ports?: ReadonlyArray<{ readonly host_ip?: string; readonly target: number; readonly published: string }>
  readonly environment?: Record<string, string | null>
  readonly depends_on?: Record<string, { readonly condition: string; readonly required: boolean }>
  readonly healthcheck?: { readonly test: ReadonlyArray<string> }
  readonly read_only?: boolean
  readonly user?: string
  readonly build?: { readonly context: string; readonly dockerfile: string; readonly args: Record<string, string> }
  readonly env_file?: ReadonlyArray<{ readonly path: string }>
}
interface Project {
  readonly services: Record<string, Service>
}

const INFRA = ["localstack", "postgres", "redis", "redpanda", "stripe-mock"]
const FUNCTIONS_FILE = "infra/docker-compose.functions.yml"
// Go on PATH, else where the Go tarball installs it (as infra/up.sh and infra/k8s-tools.sh look for it).
const go = process.env.GO ?? (existsSync("/usr/local/go/bin/go") ? "/usr/local/go/bin/go" : "go")

const exec = (file: string, args: ReadonlyArray<string>, timeout = 30_000) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((done) => {
    execFile(file, [...args], { timeout, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) =>
      done({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr }),
    )
  })

let work = ""
let check = ""
/** Loads compose files with compose-go; throws its error when the files are not valid. */
const load = async (args: ReadonlyArray<string>): Promise<Project> => {
  const run = await exec(check, args)
  if (run.code !== 0) throw new Error(`compose-check ${args.join(" ")}: ${run.stderr}`)
  return JSON.parse(run.stdout) as Project
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "compose-check-"))
  check = join(work, "compose-check")
  // go.sum is checked as committed (-mod=readonly): a missing or changed sum fails the build.
  const built = await exec(
    go,
    ["build", "-C", "infra/compose-check", "-mod=readonly", "-buildvcs=false", "-o", check, "."],
    300_000,
  )
  if (built.code !== 0) throw new Error(`go build infra/compose-check failed:\n${built.stderr}`)
}, 310_000)

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true })
})

/** The compose files in a scratch infra/ folder, with the env files `scripts/compose.ts secrets` writes. */
const withSecrets = () => {
  const dir = join(work, "stack", "infra")
  if (!existsSync(dir)) {
    mkdirSync(dir, { recursive: true })
    for (const file of ["docker-compose.yml", "docker-compose.functions.yml"])
      copyFileSync(`infra/${file}`, join(dir, file))
    writeSecrets(join(dir, SECRETS_DIR.slice("infra/".length)))
  }
  return join(dir, "docker-compose.yml")
}

describe("every function in Docker (profile functions)", () => {
  const plans = plan()
  const names = manifests.map((m) => m.name)

  it("is what scripts/compose.ts renders from infra/deploy.ts (run `npm run compose:render` after a change)", () => {
    expect(readFileSync(FUNCTIONS_FILE, "utf8")).toBe(render())
    expect(compose).toMatch(/^include:\n {2}- docker-compose\.functions\.yml$/m)
  })

  it("plain `docker compose up` loads, valid, and starts the infrastructure only: no profile, no secrets needed", async () => {
    const project = await load(["infra/docker-compose.yml"])
    expect(Object.keys(project.services).sort()).toEqual(INFRA)
    for (const name of INFRA) expect(project.services[name]!.profiles ?? [], name).toEqual([])
  })

  it("loads, valid, with every profile and the generated env files, a service per function", async () => {
    const project = await load(["-profile", "*", withSecrets()])
    expect(Object.keys(project.services).sort()).toEqual([...INFRA, ...names].sort())
    for (const name of names) {
      const s = project.services[name]!
      expect(s.profiles, name).toEqual([PROFILE])
      expect(s.image, name).toBe(`platform/${name}:local`)
      expect(s.build?.dockerfile, name).toBe("infra/Dockerfile")
      expect(s.build?.args, name).toEqual({ FUNCTION: name })
      expect(resolve(s.build!.context), name).toBe(resolve(work, "stack"))
      expect(s.read_only, name).toBe(true)
      expect(s.user, name).toBe("65532:65532")
      expect(s.healthcheck?.test, name).toEqual(["CMD", "/nodejs/bin/node", "/app/healthcheck.mjs"])
    }
  })

  it("publishes only the gateway, on the host's loopback; the other functions are on the compose network only", async () => {
    const project = await load(["-profile", "*", withSecrets()])
    const published = Object.entries(project.services)
      .filter(([name, s]) => !INFRA.includes(name) && (s.ports ?? []).length > 0)
      .map(([name]) => name)
    const gateway = plans.find((p) => p.public)!
    expect(published).toEqual([gateway.name])
    expect(project.services[gateway.name]!.ports).toEqual([
      expect.objectContaining({
        host_ip: "127.0.0.1",
        target: gateway.ports.http,
        published: String(gateway.ports.http),
      }),
    ])
  })

  it("gives each function the plan's ports and peers, by service name, and waits for them and its stores", async () => {
    const project = await load(["-profile", "*", withSecrets()])
    const env = (name: string) => project.services[name]!.environment ?? {}
    for (const p of plans) {
      const own = env(p.name)
      expect(own.HTTP_PORT, p.name).toBe(String(p.ports.http))
      expect(own.GRPC_PORT, p.name).toBe(p.ports.grpc === undefined ? undefined : String(p.ports.grpc))
      for (const peer of p.peers) {
        // The peer's service listens where the address points.
        const served = env(peer.dependency)[peer.http ? "HTTP_PORT" : "GRPC_PORT"]
        const expected = peer.http ? `http://${peer.dependency}:${served}${peer.path}` : `${peer.dependency}:${served}`
        expect(own[peer.key], `${p.name} ${peer.key}`).toBe(expected)
      }
      const waits = project.services[p.name]!.depends_on ?? {}
      for (const dep of p.manifest.dependsOn)
        expect(waits[dep]?.condition, `${p.name} -> ${dep}`).toBe("service_healthy")
      for (const [dep, how] of Object.entries(waits)) {
        expect(how.condition, `${p.name} -> ${dep}`).toBe("service_healthy")
        expect(project.services[dep], `${p.name} -> ${dep}`).toBeDefined()
      }
      const stores = {
        DATABASE_URL: "postgres",
        REDIS_URL: "redis",
        KAFKA_BROKERS: "redpanda",
        S3_ENDPOINT: "localstack",
      }
      for (const [key, store] of Object.entries(stores)) {
        if (own[key] !== undefined) expect(own[key], `${p.name} ${key}`).toContain(`${store}:`)
        if (own[key] !== undefined) expect(waits[store]?.condition, `${p.name} -> ${store}`).toBe("service_healthy")
      }
      // Every required setting and store secret of the plan is given (the development fallbacks aside: SMTP_URL).
      for (const key of ["DATABASE_URL", "REDIS_URL", "KAFKA_BROKERS", "SERVICE_KEY", "SERVICE_PUBLIC_KEYS"]) {
        if (key !== "DATABASE_URL" || p.secrets.some((s) => s.key === key))
          expect(own[key], `${p.name} ${key}`).toBeTruthy()
      }
      for (const s of p.secrets.filter((s) => s.local)) expect(own[s.key], `${p.name} ${s.key}`).toBeTruthy()
    }
  })

  it("takes each function's service key from its own env file, never from the committed files", async () => {
    const project = await load(["-profile", "*", withSecrets()])
    const rendered = readFileSync(FUNCTIONS_FILE, "utf8")
    for (const key of ["SERVICE_KEY", "SERVICE_PUBLIC_KEYS", "KEY_ENCRYPTION_KEY"]) expect(rendered).not.toContain(key)
    const keys = new Set<string>()
    for (const name of names) {
      const env = project.services[name]!.environment ?? {}
      const publicKeys = JSON.parse(env.SERVICE_PUBLIC_KEYS!) as Record<string, string>
      expect(Object.keys(publicKeys).sort(), name).toEqual([...names].sort())
      // The function's private key is the one whose public half every other function gets.
      const publicHalf = createPublicKey(
        createPrivateKey({ key: Buffer.from(env.SERVICE_KEY!, "base64"), format: "der", type: "pkcs8" }),
      )
      expect(publicHalf.export({ format: "der", type: "spki" }).toString("base64"), name).toBe(publicKeys[name])
      keys.add(env.SERVICE_KEY!)
    }
    expect(keys.size).toBe(names.length)
  })

  it("`scripts/compose.ts secrets` writes once: a second run keeps the keys; a partial set is refused", () => {
    const dir = join(work, "secrets-once")
    expect(writeSecrets(dir).sort()).toEqual(names.map((n) => `${n}.env`).sort())
    const before = readFileSync(join(dir, "auth.env"), "utf8")
    expect(writeSecrets(dir)).toEqual([])
    expect(readFileSync(join(dir, "auth.env"), "utf8")).toBe(before)
    expect(readFileSync(join(dir, ".gitignore"), "utf8")).toMatch(/^\*$/m)
    rmSync(join(dir, "blog.env"))
    expect(() => writeSecrets(dir)).toThrow(/blog\.env/)
  })

  it("compose-check refuses what docker compose refuses: a schema error, an undefined dependency, a cycle", async () => {
    const write = (name: string, text: string) => {
      const file = join(work, name)
      writeFileSync(file, text)
      return file
    }
    const cases = [
      ["services:\n  a:\n    image: x:1.0\n    restart_policy: always\n", /services\.a\.restart_policy/],
      ["services:\n  a:\n    image: x:1.0\n    depends_on: [b]\n", /depends on undefined service "b"/],
      [
        "services:\n  a:\n    image: x:1.0\n    depends_on: [b]\n  b:\n    image: x:1.0\n    depends_on: [a]\n",
        /cycle/,
      ],
    ] as const
    for (const [index, [text, error]] of cases.entries()) {
      const run = await exec(check, [write(`bad-${index}.yml`, text)])
      expect(run.code, text).toBe(1)
      expect(run.stderr, text).toMatch(error)
    }
    // The functions need their env files: without them the profile is refused (plain `up` is not, above).
    const bare = join(work, "bare")
    mkdirSync(bare)
    for (const file of ["docker-compose.yml", "docker-compose.functions.yml"])
      copyFileSync(`infra/${file}`, join(bare, file))
    const missing = await exec(check, ["-profile", PROFILE, join(bare, "docker-compose.yml")])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toMatch(/env file .*\.env not found/)
  })
})
