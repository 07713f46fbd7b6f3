import { execFileSync } from "node:child_process"
import { existsSync } from "node:fs"

// Starts the real servers the tests use (idempotent) and exports their addresses to every test worker.
export default function setup() {
  if (process.env.SKIP_INFRA !== "1") execFileSync("bash", ["infra/up.sh"], { stdio: "inherit" })
  if (!existsSync(".env.test")) throw new Error("infra/up.sh did not write .env.test")
  process.loadEnvFile(".env.test")
}
