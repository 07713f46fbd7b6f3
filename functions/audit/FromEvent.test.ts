import { describe, expect, it } from "vitest"
import * as CloudEvent from "../../shared/CloudEvent.ts"
import { GENESIS_HASH, hashOf } from "./AuditRecord.ts"
import { fromEvent, outcomeOf } from "./FromEvent.ts"

describe("fromEvent", () => {
  it("maps the audit fields to columns and keeps the rest as metadata", () => {
    const event = CloudEvent.make({
      source: "auth",
      type: "auth.session.revoked",
      subject: "u-1",
      data: {
        actor: "a-1",
        target: "s-1",
        ip: "203.0.113.9",
        requestId: "r-1",
        sessionId: "s-1",
        userId: "u-1",
        reason: "logout",
      },
    })
    expect(fromEvent(event)).toEqual({
      id: event.id,
      occurredAt: event.time,
      actorId: "a-1",
      action: "auth.session.revoked",
      targetType: "session",
      targetId: "s-1",
      outcome: "success",
      requestId: "r-1",
      ip: "203.0.113.9",
      metadata: { sessionId: "s-1", userId: "u-1", reason: "logout" },
    })
  })

  it("falls back to the subject and the type's entity, and nulls for unknown who/where", () => {
    const record = fromEvent(
      CloudEvent.make({ source: "identity", type: "identity.user.created", subject: "u-2", data: {} }),
    )
    expect(record).toMatchObject({ actorId: null, targetId: "u-2", targetType: "user", ip: null, requestId: null })
  })

  it("classifies failed and refused attempts as failures", () => {
    expect(outcomeOf("auth.login.failed")).toBe("failure")
    expect(outcomeOf("auth.token.reused")).toBe("failure")
    expect(outcomeOf("auth.login.succeeded")).toBe("success")
    expect(outcomeOf("identity.user.deleted")).toBe("success")
  })

  it("hashes canonically: key order does not matter, every field and the predecessor do", () => {
    const base = fromEvent(CloudEvent.make({ source: "x", type: "x.y.z", data: { a: 1, b: { c: 2, d: 3 } } }))
    const reordered = { ...base, metadata: { b: { d: 3, c: 2 }, a: 1 } }
    expect(hashOf(reordered, GENESIS_HASH)).toBe(hashOf(base, GENESIS_HASH))
    expect(hashOf({ ...base, ip: "1.2.3.4" }, GENESIS_HASH)).not.toBe(hashOf(base, GENESIS_HASH))
    expect(hashOf(base, "f".repeat(64))).not.toBe(hashOf(base, GENESIS_HASH))
  })
})
