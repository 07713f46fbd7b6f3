// Receipts: the mail's content, and the addresses from identity's real gRPC server (a fresh schema of the real
// Postgres) called as billing's service identity: a known customer's address, none for an unknown one, a failure
// when identity cannot be reached.
import { randomUUID } from "node:crypto"
import { Effect, Exit, Layer, Option } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { IdentityServiceClient } from "../../proto/gen/identity/v1/identity.ts"
import * as GrpcClient from "../../shared/GrpcClient.ts"
import { GrpcServer } from "../../shared/GrpcServer.ts"
import * as Kernel from "../../shared/Kernel.ts"
import { ServiceIdentity } from "../../shared/ServiceIdentity.ts"
import { freshSchema, type Running, start } from "../../shared/testing/harness.ts"
import { AdminGuard } from "../identity/AdminGuard.ts"
import { DomainLive } from "../identity/App.ts"
import { IdentityGrpc } from "../identity/Grpc.ts"
import { manifest as identityManifest } from "../identity/module.ts"
import { ReceiptRecipients, receiptMail } from "./Receipts.ts"

describe("receiptMail", () => {
  it("says what was paid, in major units with the currency's exponent, text and HTML (escaped)", () => {
    const mail = receiptMail("ada@example.com", {
      number: "2026-000042",
      total: 123456,
      currency: "KWD",
      periodStart: new Date("2026-01-31T10:00:00Z"),
      periodEnd: new Date("2026-02-28T10:00:00Z"),
      paidAt: new Date("2026-01-31T10:00:01Z"),
      lines: [
        { description: "Pro <monthly>", amount: 123000, quantity: 1 },
        { description: "Seats", amount: 228, quantity: 2 },
      ],
    })
    expect(mail.to).toBe("ada@example.com")
    expect(mail.subject).toBe("Receipt for invoice 2026-000042: 123.456 KWD paid")
    expect(mail.text).toContain("Invoice 2026-000042, 2026-01-31 to 2026-02-28")
    expect(mail.text).toContain("Pro <monthly>: 123.000 KWD")
    expect(mail.text).toContain("Seats × 2: 0.228 KWD")
    expect(mail.html).toContain("Pro &lt;monthly&gt;")
    expect(mail.html).not.toContain("<monthly>")
  })
})

describe("ReceiptRecipients.identity (identity's gRPC server)", () => {
  const kernel = { service: "identity", version: "test", logLevel: "warn" as const }
  let server: Running<GrpcServer>
  let recipients: Running<ReceiptRecipients>
  let userId: string
  const email = `receipts-${randomUUID().slice(0, 8)}@example.com`

  beforeAll(async () => {
    server = await start(
      GrpcServer.layer({ port: 0, host: "127.0.0.1", services: [IdentityGrpc] }).pipe(
        // Identity accepts billing as a caller (what billing's dependsOn on identity gives in the platform).
        Layer.provide(ServiceIdentity.layerDev("identity", ["auth", "billing"])),
        Layer.provide(DomainLive),
        Layer.provide(AdminGuard.layerTest),
        Layer.provide(
          Kernel.database({ ...kernel, db: freshSchema("identity_receipts"), migrations: identityManifest.migrations }),
        ),
        Layer.provide(Kernel.base(kernel)),
      ),
    )
    const address = `127.0.0.1:${(await Effect.runPromise(Effect.provideContext(Effect.service(GrpcServer), server.context))).port}`
    const created = await Effect.runPromise(
      GrpcClient.make(IdentityServiceClient, { address, retries: 0 }).pipe(
        Effect.flatMap((client) => client.call("createUser", { email, name: "Ada" })),
        Effect.provide(ServiceIdentity.layerDev("auth")),
        Effect.scoped,
      ),
    )
    userId = created.user!.id
    recipients = await start(
      ReceiptRecipients.identity({ address }).pipe(Layer.provide(ServiceIdentity.layerDev("billing"))),
    )
  }, 60_000)
  afterAll(async () => {
    await recipients?.close()
    await server?.close()
  })

  const emailOf = (id: string) =>
    Effect.runPromiseExit(
      Effect.provideContext(
        Effect.flatMap(Effect.service(ReceiptRecipients), (r) => r.emailOf(id)),
        recipients.context,
      ),
    )

  it("answers a customer's address, and none for an account identity does not know", async () => {
    expect(await emailOf(userId)).toEqual(Exit.succeed(Option.some(email)))
    expect(await emailOf(randomUUID())).toEqual(Exit.succeed(Option.none()))
  })

  it("fails when identity cannot be reached (the receipt is skipped, the payment is not)", async () => {
    const down = await start(
      ReceiptRecipients.identity({ address: "127.0.0.1:1" }).pipe(Layer.provide(ServiceIdentity.layerDev("billing"))),
    )
    try {
      const exit = await Effect.runPromiseExit(
        Effect.provideContext(
          Effect.flatMap(Effect.service(ReceiptRecipients), (r) => r.emailOf(userId)),
          down.context,
        ),
      )
      expect(Exit.isFailure(exit)).toBe(true)
    } finally {
      await down.close()
    }
  }, 30_000)
})
