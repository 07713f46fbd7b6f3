// A caller's watch of a function's instances when its connection to the real etcd breaks (a fault proxy in front of
// it: the shared etcd keeps running): what changed meanwhile is there once it reconnects, also when etcd compacted
// away the revisions the watch would have resumed from.
import { Etcd3 } from "etcd3"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { acquireClient, InstanceWatch, servicesKey } from "./EtcdRegistry.ts"
import { deletePrefix, etcdEndpoints as endpoints, testPrefix, within } from "./testing/etcdRegistry.ts"
import { type FaultProxy, faultProxy } from "./testing/faultProxy.ts"

const prefix = testPrefix()
const key = servicesKey(prefix, "demo")
const record = (port: number) =>
  JSON.stringify({ http: `http://127.0.0.1:${port}`, startedAt: new Date().toISOString() })

describe.skipIf(endpoints.length === 0)("a watch of the instances across a broken connection (real etcd)", () => {
  let direct: Etcd3
  let proxy: FaultProxy
  let watch: InstanceWatch
  let release: () => void
  const ports = () => watch.instances.map((i) => new URL(i.http).port).sort()

  beforeAll(async () => {
    direct = new Etcd3({ hosts: endpoints })
    const target = new URL(endpoints[0]!)
    proxy = await faultProxy({ host: target.hostname, port: Number(target.port) })
    const held = acquireClient([proxy.via(endpoints[0]!)])
    release = held.release
    await direct.put(`${key}a`).value(record(1001))
    watch = await InstanceWatch.open(await held.client, key)
  })

  afterAll(async () => {
    await watch?.close()
    release?.()
    await proxy?.close()
    direct.close()
    await deletePrefix(prefix)
  })

  it("resumes after a reconnect with what changed while it was cut off", async () => {
    expect(ports()).toEqual(["1001"])
    await proxy.set("down")
    await direct.put(`${key}b`).value(record(1002))
    await direct.delete().key(`${key}a`).exec()
    expect(ports()).toEqual(["1001"])
    await proxy.set("pass")
    await within("the changes made while cut off", () => ports().join() === "1002", 10_000)
  })

  it("reads the set again when the revisions it would resume from were compacted away", async () => {
    await proxy.set("down")
    await direct.put(`${key}c`).value(record(1003))
    const removed = await direct.delete().key(`${key}b`).exec()
    // Compacted up to now: the watch cannot resume from its revision, etcd cancels it.
    await direct.kv.compact({ revision: removed.header.revision, physical: true })
    await direct.put(`${key}d`).value(record(1004))
    await proxy.set("pass")
    await within("the set after compaction", () => ports().join() === "1003,1004", 10_000)
    // And it keeps following: a change after that arrives too.
    await direct.delete().key(`${key}c`).exec()
    await within("a change after the new watch", () => ports().join() === "1004", 10_000)
  })
})
