// infra/docker-compose.yml and localstack/ say the same facts as the scripts the tests use (infra/lib.sh), and every
// image is pinned to an exact version.
import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"

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
