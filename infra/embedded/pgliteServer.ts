import { createServer, type Server, type Socket } from "node:net"
import type { PGlite } from "@electric-sql/pglite"

// Wire-protocol constants (PostgreSQL frontend/backend protocol 3.0).
const SSL_REQUEST = 80877103
const GSSENC_REQUEST = 80877104
const CANCEL_REQUEST = 80877102
const PROTOCOL_3 = 196608
// Messages that end a unit of work: Sync closes an extended-protocol cycle, Query is a whole simple query.
const SYNC = 0x53
const QUERY = 0x51
const TERMINATE = 0x58

/**
 * A PostgreSQL wire-protocol server in front of one PGlite session, for many pg clients at once (the embedded
 * default of `npm start`: every function's pool talks to it).
 *
 * Why not `@electric-sql/pglite-socket`'s server: it queues single protocol messages, so two clients' extended-query
 * cycles (Parse, Bind, Execute, Sync) interleave on the one session and clobber each other's unnamed statement and
 * portal ("bind message supplies 1 parameters, but prepared statement requires 2") as soon as several functions poll
 * at once. Here a client's messages are buffered up to their Sync (or a simple Query) and run as one unit; while a
 * client's transaction is open, only that client's units run (everyone else waits for its COMMIT or ROLLBACK).
 */
export class PgliteServer {
  private server: Server | undefined
  private readonly sockets = new Set<Socket>()
  private readonly queue: Array<{ readonly owner: Socket; readonly run: () => Promise<void> }> = []
  private draining = false
  // The client whose transaction is open on the session, if any.
  private owner: Socket | undefined

  private readonly db: PGlite
  private readonly options: { readonly host: string; readonly port: number }

  constructor(db: PGlite, options: { readonly host: string; readonly port: number }) {
    this.db = db
    this.options = options
  }

  /** Listens; resolves once the port is bound. */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server = createServer((socket) => this.accept(socket))
      this.server.once("error", reject)
      this.server.listen(this.options.port, this.options.host, () => resolve())
    })
  }

  /** Closes every client connection and the listener. */
  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy()
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()))
  }

  private accept(socket: Socket) {
    socket.setNoDelay(true)
    this.sockets.add(socket)
    let buffer = Buffer.alloc(0)
    let started = false
    let pending: Array<Buffer> = []
    socket.on("data", (chunk) => {
      buffer = Buffer.concat([buffer, chunk])
      while (true) {
        if (!started) {
          // Untyped messages before startup: length, then a code (SSL/GSS negotiation, cancel, or the startup itself).
          if (buffer.length < 8) return
          const length = buffer.readInt32BE(0)
          if (buffer.length < length) return
          const code = buffer.readInt32BE(4)
          const message = buffer.subarray(0, length)
          buffer = buffer.subarray(length)
          if (code === SSL_REQUEST || code === GSSENC_REQUEST) socket.write("N")
          else if (code === CANCEL_REQUEST) socket.end()
          else if (code === PROTOCOL_3) {
            started = true
            this.enqueue(socket, [Buffer.from(message)])
          } else socket.destroy()
          continue
        }
        if (buffer.length < 5) return
        const length = 1 + buffer.readInt32BE(1)
        if (buffer.length < length) return
        const type = buffer[0]!
        const message = Buffer.from(buffer.subarray(0, length))
        buffer = buffer.subarray(length)
        if (type === TERMINATE) {
          socket.end()
          return
        }
        pending.push(message)
        if (type === SYNC || type === QUERY) {
          this.enqueue(socket, pending)
          pending = []
        }
      }
    })
    const gone = () => {
      if (!this.sockets.delete(socket)) return
      // A client that leaves inside its transaction must not leave the session in it.
      if (this.owner === socket) {
        this.owner = undefined
        void this.db
          .exec("ROLLBACK")
          .catch(() => {})
          .finally(() => this.drain())
      } else this.drain()
    }
    socket.on("close", gone)
    socket.on("error", gone)
  }

  private enqueue(socket: Socket, messages: Array<Buffer>) {
    const unit = Buffer.concat(messages)
    this.queue.push({
      owner: socket,
      run: async () => {
        await this.db.runExclusive(() =>
          this.db.execProtocolRawStream(new Uint8Array(unit), {
            onRawData: (data) => {
              if (data.length > 0 && socket.writable) socket.write(Buffer.from(data))
            },
          }),
        )
        this.owner = this.db.isInTransaction() ? socket : undefined
      },
    })
    this.drain()
  }

  // Runs queued units one at a time; while a transaction is open, only its owner's units.
  private drain() {
    if (this.draining) return
    this.draining = true
    void (async () => {
      try {
        while (true) {
          const index = this.owner === undefined ? 0 : this.queue.findIndex((unit) => unit.owner === this.owner)
          if (index < 0 || this.queue.length === 0) return
          const [unit] = this.queue.splice(index, 1)
          if (!unit || !this.sockets.has(unit.owner)) continue
          await unit.run().catch((error: unknown) => {
            unit.owner.destroy(error instanceof Error ? error : new Error(String(error)))
          })
        }
      } finally {
        this.draining = false
      }
    })()
  }
}
