import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { IdentityServiceClient } from "../../proto/gen/identity/v1/identity.ts"
import * as GrpcClient from "../../shared/GrpcClient.ts"
import { GrpcServer } from "../../shared/GrpcServer.ts"
import * as Kernel from "../../shared/Kernel.ts"
import { ServiceIdentity } from "../../shared/ServiceIdentity.ts"
import { freshSchema } from "../../shared/testing/harness.ts"
import { AdminGuard } from "./AdminGuard.ts"
import { DomainLive } from "./App.ts"
import { IdentityGrpc } from "./Grpc.ts"
import { manifest } from "./module.ts"

// Identity's gRPC server on an ephemeral port over a fresh schema of the real Postgres, called through the kernel client.
const kernel = { service: "identity", version: "test", logLevel: "warn" as const }
const ServerLive = GrpcServer.layer({ port: 0, host: "127.0.0.1", services: [IdentityGrpc] }).pipe(
  Layer.provide(ServiceIdentity.layerDev("identity", ["auth"])),
  Layer.provide(DomainLive),
  Layer.provide(AdminGuard.layerTest),
  Layer.provide(Kernel.database({ ...kernel, db: freshSchema("identity_grpc"), migrations: manifest.migrations })),
  Layer.provide(Kernel.base(kernel)),
)

const client = Effect.flatMap(Effect.service(GrpcServer), (server) =>
  GrpcClient.make(IdentityServiceClient, { address: `127.0.0.1:${server.port}`, retries: 0 }).pipe(
    Effect.provide(ServiceIdentity.layerDev("auth")),
  ),
)

layer(ServerLive, { timeout: 60_000 })("identity gRPC", (it) => {
  it.effect("CreateUser then GetUser round-trips a user", () =>
    Effect.gen(function* () {
      const identity = yield* client
      const email = `grpc-${Date.now()}@example.com`
      const { user } = yield* identity.call("createUser", { email, name: "Lin" })
      const fetched = yield* identity.call("getUser", { id: user!.id }, { idempotent: true })
      assert.deepStrictEqual(fetched.user, user)
      assert.strictEqual(fetched.user?.status, "active")
    }).pipe(Effect.scoped),
  )

  it.effect("a second account with the same email in another case is EmailTaken", () =>
    Effect.gen(function* () {
      const identity = yield* client
      const email = `dup-${Date.now()}@example.com`
      yield* identity.call("createUser", { email, name: "One" })
      const error = yield* Effect.flip(identity.call("createUser", { email: email.toUpperCase(), name: "Two" }))
      assert.strictEqual(error._tag, "EmailTaken")
    }).pipe(Effect.scoped),
  )

  it.effect("a NUL character in any text is ValidationFailed naming the field, before the database", () =>
    Effect.gen(function* () {
      const identity = yield* client
      const error = yield* Effect.flip(
        identity.call("verifyCredentials", { email: "a\u0000@example.com", password: "correct horse battery" }),
      )
      assert.strictEqual(error._tag, "ValidationFailed")
      assert.deepStrictEqual((error as { errors?: unknown }).errors, [
        { path: "email", message: "must not contain NUL characters (U+0000)" },
      ])
    }).pipe(Effect.scoped),
  )

  it.effect("an unknown id is NotFound; a malformed one is ValidationFailed", () =>
    Effect.gen(function* () {
      const identity = yield* client
      const missing = yield* Effect.flip(identity.call("getUser", { id: "0195a0a0-0000-7000-8000-000000000000" }))
      assert.strictEqual(missing._tag, "NotFound")
      const bad = yield* Effect.flip(identity.call("getUser", { id: "nope" }))
      assert.strictEqual(bad._tag, "ValidationFailed")
    }).pipe(Effect.scoped),
  )

  it.effect("an invalid email and an empty name are refused with both fields listed", () =>
    Effect.gen(function* () {
      const identity = yield* client
      const error = yield* Effect.flip(identity.call("createUser", { email: "not-an-email", name: "" }))
      assert.strictEqual(error._tag, "ValidationFailed")
      if (error._tag === "ValidationFailed") {
        assert.deepStrictEqual(error.errors.map((e) => e.path).sort(), ["email", "name"])
      }
    }).pipe(Effect.scoped),
  )

  it.effect("VerifyCredentials: right password valid; wrong password and unknown email answer alike", () =>
    Effect.gen(function* () {
      const identity = yield* client
      const email = `cred-${Date.now()}@example.com`
      const { user } = yield* identity.call("createUser", { email, name: "Cred", password: "correct horse battery" })
      const ok = yield* identity.call("verifyCredentials", {
        email: email.toUpperCase(),
        password: "correct horse battery",
      })
      assert.strictEqual(ok.valid, true)
      assert.strictEqual(ok.user?.id, user!.id)
      const wrong = yield* identity.call("verifyCredentials", { email, password: "wrong horse battery" })
      const unknown = yield* identity.call("verifyCredentials", { email: `nobody-${email}`, password: "x" })
      assert.strictEqual(wrong.valid, false)
      assert.strictEqual(wrong.user, undefined)
      assert.deepStrictEqual(unknown, wrong)
      const byEmail = yield* identity.call("getUserByEmail", { email: email.toUpperCase() }, { idempotent: true })
      assert.strictEqual(byEmail.user?.id, user!.id)
    }).pipe(Effect.scoped),
  )

  it.effect("passwords outside 8-128 characters are refused, naming the field", () =>
    Effect.gen(function* () {
      const identity = yield* client
      for (const password of ["short", "x".repeat(129)]) {
        const error = yield* Effect.flip(
          identity.call("createUser", {
            email: `pw-${Date.now()}-${password.length}@example.com`,
            name: "P",
            password,
          }),
        )
        assert.strictEqual(error._tag, "ValidationFailed")
        if (error._tag === "ValidationFailed")
          assert.deepStrictEqual(
            error.errors.map((e) => e.path),
            ["password"],
          )
      }
    }).pipe(Effect.scoped),
  )
})
