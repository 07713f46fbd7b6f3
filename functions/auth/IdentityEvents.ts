import { Effect, Layer, Schema } from "effect"
import { topicOf } from "../../shared/CloudEvent.ts"
import { EventBus } from "../../shared/EventBus.ts"
import { type RevokeReason, Sessions } from "./Sessions.ts"

const UserEvent = Schema.Struct({
  userId: Schema.String,
  keepSessionId: Schema.optional(Schema.NullOr(Schema.String)),
  changes: Schema.optional(Schema.Struct({ status: Schema.optional(Schema.String) })),
})
const decodeUserEvent = Schema.decodeUnknownEffect(UserEvent)

// Why each of identity's events ends the user's sessions: all of them, or for a password change all but the one it
// came from (`keepSessionId`); a profile update only when it disabled the account.
const REASONS: Readonly<Record<string, RevokeReason>> = {
  "identity.password.changed": "password_changed",
  "identity.password.reset": "password_reset",
  "identity.user.deleted": "account_deleted",
  "identity.user.updated": "account_disabled",
}

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
      types: Object.keys(REASONS),
      group: "auth_sessions",
      handler: (event) =>
        Effect.gen(function* () {
          const reason = REASONS[event.type]
          if (reason === undefined) return
          const data = yield* decodeUserEvent(event.data)
          if (event.type === "identity.user.updated" && data.changes?.status !== "disabled") return
          const keep = data.keepSessionId ?? undefined
          const ended = yield* sessions.revokeUser(data.userId, reason, keep ? { keep } : undefined)
          if (ended > 0) yield* Effect.logInfo("sessions ended", { userId: data.userId, reason, ended })
        }),
    })
  }),
)
