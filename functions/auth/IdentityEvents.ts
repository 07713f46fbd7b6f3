import { Effect, Layer, Schema } from "effect"
import { topicOf } from "../../shared/CloudEvent.ts"
import { EventBus } from "../../shared/EventBus.ts"
import { Sessions } from "./Sessions.ts"

const UserEvent = Schema.Struct({
  userId: Schema.String,
  keepSessionId: Schema.optional(Schema.NullOr(Schema.String)),
  changes: Schema.optional(Schema.Struct({ status: Schema.optional(Schema.String) })),
})
const decodeUserEvent = Schema.decodeUnknownEffect(UserEvent)

/**
 * Ends sessions when identity says the account changed under them: a password change ends the other sessions, a
 * reset, a deactivation or a deletion ends all. Consumed from `identity.events` (idempotent through the inbox).
 */
export const IdentityEventsLive = Layer.effectDiscard(
  Effect.gen(function* () {
    const bus = yield* EventBus
    const sessions = yield* Sessions
    yield* bus.subscribe({
      topic: topicOf("identity"),
      group: "auth_sessions",
      handler: (event) =>
        Effect.gen(function* () {
          const end = (
            reason: Parameters<typeof sessions.revokeUser>[1],
            data: typeof UserEvent.Type,
            keep?: string | null,
          ) =>
            Effect.gen(function* () {
              const ended = yield* sessions.revokeUser(data.userId, reason, keep ? { keep } : undefined)
              if (ended > 0) yield* Effect.logInfo("sessions ended", { userId: data.userId, reason, ended })
            })
          switch (event.type) {
            case "identity.password.changed": {
              const data = yield* decodeUserEvent(event.data)
              return yield* end("password_changed", data, data.keepSessionId)
            }
            case "identity.password.reset":
              return yield* end("password_reset", yield* decodeUserEvent(event.data))
            case "identity.user.deleted":
              return yield* end("account_deleted", yield* decodeUserEvent(event.data))
            case "identity.user.updated": {
              const data = yield* decodeUserEvent(event.data)
              const status = data.changes?.status
              if (status === "disabled" || status === "deleted") return yield* end("account_disabled", data)
              return
            }
          }
        }),
    })
  }),
)
