import { existsSync, mkdirSync } from "node:fs"
import { join } from "node:path"
import { PGlite } from "@electric-sql/pglite"
import { PgliteServer } from "./pgliteServer.ts"
import { readTemplate } from "./template.ts"

/** A running embedded Postgres (PGlite behind its wire-protocol socket server). */
export interface EmbeddedPostgres {
  readonly url: string
  stop(): Promise<void>
}

/**
 * Starts PGlite with its data in `dataDir`, served on 127.0.0.1:`port` to many pg clients (multiplexed onto one
 * session, a client's extended-query cycle at a time: transactions are serialised, so never hold one across a call
 * to another service). A new data folder is restored from the template `npm ci` made (infra/embedded/template.ts).
 */
export const startEmbeddedPostgres = async (dataDir: string, port: number): Promise<EmbeddedPostgres> => {
  mkdirSync(dataDir, { recursive: true })
  // A new data folder starts from the installed template (no initdb) when there is one.
  const template = existsSync(join(dataDir, "PG_VERSION")) ? undefined : readTemplate()
  const db = await PGlite.create({ dataDir, ...(template ? { loadDataDir: template } : {}) })
  const server = new PgliteServer(db, { port, host: "127.0.0.1" })
  await server.start()
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    stop: async () => {
      await server.stop()
      await db.close()
    },
  }
}
