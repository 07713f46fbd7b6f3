// The etcd side of the service registry, as plain promises over the etcd3 client (imported only with
// SERVICE_REGISTRY=etcd): an instance's registration under a lease, and a live view of a function's instances.
import { Schema } from "effect"
import type { Etcd3, IKeyValue, Lease, Watcher } from "etcd3"

/** Where a function's instances are registered: `<prefix>services/<name>/`. */
export const servicesKey = (prefix: string, name: string) => `${prefix}services/${name}/`

/** The target of a function's gRPC instances: `etcd://<host:port,...><prefix><name>` (the endpoints as the authority). */
export const etcdTarget = (endpoints: ReadonlyArray<string>, prefix: string, name: string) =>
  `etcd://${endpoints.map((e) => new URL(e).host).join(",")}${prefix}${name}`

/** What an `etcd://` target says: the endpoints, the key prefix and the function's name. */
export const parseTarget = (target: { readonly authority?: string | undefined; readonly path: string }) => {
  const endpoints = (target.authority ?? "").split(",").filter((host) => host.length > 0)
  const slash = target.path.lastIndexOf("/")
  const name = target.path.slice(slash + 1)
  if (endpoints.length === 0 || name.length === 0) throw new Error(`not an etcd target: ${JSON.stringify(target)}`)
  return {
    endpoints: endpoints.map((host) => `http://${host}`),
    prefix: `/${target.path.slice(0, slash + 1)}`,
    name,
  }
}

/** What an instance writes under its key: where it answers HTTP (an origin) and gRPC (`host:port`), and since when. */
export const InstanceRecord = Schema.Struct({
  http: Schema.String,
  grpc: Schema.optional(Schema.String),
  startedAt: Schema.String,
})
export type InstanceRecord = typeof InstanceRecord.Type

const decodeRecord = Schema.decodeUnknownOption(Schema.fromJsonString(InstanceRecord))

/** One live instance: its id (the last segment of its key) and its record. */
export interface Instance extends InstanceRecord {
  readonly id: string
}

/** One etcd client per endpoint list in the process, shared by the registry's watches and the gRPC resolver. */
const clients = new Map<string, { client: Promise<Etcd3>; users: number }>()

/** The shared client of `endpoints` (`http://host:port` each); `release` closes it with its last user. */
export const acquireClient = (endpoints: ReadonlyArray<string>) => {
  const key = endpoints.join(",")
  let entry = clients.get(key)
  if (entry === undefined) {
    // Watches reconnect at most a second apart (etcd3's default backs off up to 30 s): a registry back from a broken
    // connection is followed again at once, as gRPC channels reconnect (shared/GrpcClient.ts).
    const client = Promise.all([import("etcd3"), import("cockatiel")]).then(
      ([{ Etcd3 }, { ExponentialBackoff }]) =>
        new Etcd3({
          hosts: [...endpoints],
          dialTimeout: 2_000,
          faultHandling: { watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 1_000 }).next() },
        }),
    )
    entry = { client, users: 0 }
    clients.set(key, entry)
  }
  entry.users++
  const held = entry
  let released = false
  return {
    client: held.client,
    release: () => {
      if (released) return
      released = true
      if (--held.users === 0) {
        clients.delete(key)
        void held.client.then((client) => client.close())
      }
    },
  }
}

/**
 * The live instances under a key prefix: a first read, then a watch from the revision after it. When the watch
 * reconnects (etcd restarted, the connection broke) the set is read again, so nothing missed while it was away stays.
 */
export class InstanceWatch {
  private readonly live = new Map<string, Instance>()
  private readonly listeners = new Set<(instances: ReadonlyArray<Instance>) => void>()
  private watcher: Watcher | undefined
  private closed = false

  private readonly client: Etcd3
  private readonly keyPrefix: string

  private constructor(client: Etcd3, keyPrefix: string) {
    this.client = client
    this.keyPrefix = keyPrefix
  }

  /** Opens the watch once the first read answered (its instances are known when this resolves). */
  static async open(client: Etcd3, keyPrefix: string): Promise<InstanceWatch> {
    const watch = new InstanceWatch(client, keyPrefix)
    await watch.follow()
    return watch
  }

  // Reads the set, then watches from the revision after that read. A reconnect (the connection broke, etcd
  // restarted) reads the set again; a watch etcd cancelled (its revision compacted away while disconnected) is
  // followed again from a new read, retried every second until etcd answers.
  private async follow(): Promise<void> {
    const revision = await this.read()
    const watcher = await this.client
      .watch()
      .prefix(this.keyPrefix)
      .startRevision(String(revision + 1))
      .create()
    if (this.closed) return void (await watcher.cancel())
    this.watcher = watcher
    let lost = false
    watcher.on("put", (kv) => this.apply(kv, "put"))
    watcher.on("delete", (kv) => this.apply(kv, "delete"))
    watcher.on("disconnected", () => {
      lost = true
    })
    watcher.on("connected", () => {
      if (!lost) return
      lost = false
      this.read().catch(() => {})
    })
    watcher.on("error", () => {
      if (this.closed || this.watcher !== watcher) return
      this.watcher = undefined
      watcher.cancel().catch(() => {})
      const again = () => {
        if (!this.closed) this.follow().catch(() => setTimeout(again, 1_000).unref())
      }
      again()
    })
  }

  /** The live instances, oldest first. */
  get instances(): ReadonlyArray<Instance> {
    return [...this.live.values()].sort((a, b) => a.startedAt.localeCompare(b.startedAt) || a.id.localeCompare(b.id))
  }

  /** Calls `listener` on every change of the set; the returned function stops it. */
  subscribe(listener: (instances: ReadonlyArray<Instance>) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  async close(): Promise<void> {
    this.closed = true
    this.listeners.clear()
    await this.watcher?.cancel()
  }

  // Events that came while a read was under way: those newer than the read are applied again over its answer.
  private pending: Array<{ readonly kv: IKeyValue; readonly kind: "put" | "delete" }> | undefined

  // Reads the whole set (replacing what was known); returns the revision it was read at.
  private async read(): Promise<number> {
    this.pending = []
    try {
      const response = await this.client.getAll().prefix(this.keyPrefix).exec()
      const revision = Number(response.header.revision)
      this.live.clear()
      for (const kv of response.kvs) this.store(kv)
      for (const event of this.pending) if (Number(event.kv.mod_revision) > revision) this.change(event.kv, event.kind)
      this.changed()
      return revision
    } finally {
      this.pending = undefined
    }
  }

  private apply(kv: IKeyValue, kind: "put" | "delete") {
    this.pending?.push({ kv, kind })
    this.change(kv, kind)
    this.changed()
  }

  private change(kv: IKeyValue, kind: "put" | "delete") {
    if (kind === "delete") this.live.delete(this.idOf(kv))
    else this.store(kv)
  }

  private store(kv: IKeyValue) {
    const record = decodeRecord(kv.value.toString())
    // A value that is not an instance record (written by hand, another version) is left out, not fatal.
    if (record._tag === "Some") this.live.set(this.idOf(kv), { id: this.idOf(kv), ...record.value })
  }

  private idOf(kv: IKeyValue) {
    return kv.key.toString().slice(this.keyPrefix.length)
  }

  private changed() {
    const instances = this.instances
    for (const listener of this.listeners) listener(instances)
  }
}

/**
 * Registers an instance: its record under `<keyPrefix><instanceId>`, attached to a lease of `ttlSeconds` that etcd3
 * keeps alive. Should the lease be lost (the process was paused or cut off longer than the TTL), the instance registers
 * again under a new lease. `revoke` removes the key at once (graceful shutdown).
 */
export const register = async (
  client: Etcd3,
  key: string,
  record: InstanceRecord,
  ttlSeconds: number,
  onLost: (error: unknown) => void,
): Promise<{ readonly revoke: () => Promise<void> }> => {
  let current: Lease | undefined
  let revoked = false
  const grant = async () => {
    const lease = client.lease(ttlSeconds)
    current = lease
    let held = false
    lease.on("lost", (error) => {
      // A grant that failed is the caller's failure (or the retry's), not a lost registration.
      if (!held || revoked || current !== lease) return
      onLost(error)
      // Again under a new lease, retried until etcd answers (a paused process, an etcd restart).
      const retry = () => {
        if (revoked) return
        grant().catch(() => setTimeout(retry, 1_000).unref())
      }
      retry()
    })
    try {
      await lease.put(key).value(JSON.stringify(record))
      held = true
    } catch (error) {
      current = undefined
      await lease.revoke().catch(() => {})
      throw error
    }
  }
  await grant()
  return {
    revoke: async () => {
      revoked = true
      await current?.revoke()
    },
  }
}
