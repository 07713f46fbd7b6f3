import { Effect, Schema } from "effect"
import { IdentityServiceService, type User as ProtoUser } from "../../proto/gen/identity/v1/identity.ts"
import * as GrpcServer from "../../shared/GrpcServer.ts"
import { decode } from "../../shared/Problem.ts"
import { Password } from "./Passwords.ts"
import { Email, Name, type User, UserId } from "./User.ts"
import { Users } from "./Users.ts"

// Proto ↔ domain mapping happens here, at the edge, and nowhere else.
const toProto = (user: User): ProtoUser => ({
  id: user.id,
  email: user.email,
  name: user.name,
  emailVerified: user.emailVerified,
  status: user.status,
  createdAt: user.createdAt,
  updatedAt: user.updatedAt,
})

const CreateUserRequest = Schema.Struct({
  email: Email,
  name: Name,
  password: Schema.optional(Password),
  emailVerified: Schema.optional(Schema.Boolean),
})
const GetUserRequest = Schema.Struct({ id: UserId })
const GetUserByEmailRequest = Schema.Struct({ email: Email })
// No policy check here: a login attempt with a too-short password is simply a wrong one.
const VerifyCredentialsRequest = Schema.Struct({ email: Schema.String, password: Schema.String })

/** Identity's gRPC service (identity.v1.IdentityService) over the Users domain service. */
export const IdentityGrpc = GrpcServer.service(IdentityServiceService, {
  createUser: (request) =>
    Effect.gen(function* () {
      const input = yield* decode(CreateUserRequest)(request)
      const users = yield* Users
      return { user: toProto(yield* users.create(input)) }
    }),
  getUser: (request) =>
    Effect.gen(function* () {
      const { id } = yield* decode(GetUserRequest)(request)
      const users = yield* Users
      return { user: toProto(yield* users.get(id)) }
    }),
  getUserByEmail: (request) =>
    Effect.gen(function* () {
      const { email } = yield* decode(GetUserByEmailRequest)(request)
      const users = yield* Users
      return { user: toProto(yield* users.getByEmail(email)) }
    }),
  verifyCredentials: (request) =>
    Effect.gen(function* () {
      const { email, password } = yield* decode(VerifyCredentialsRequest)(request)
      const users = yield* Users
      const user = yield* users.verifyCredentials(email, password)
      return user._tag === "Some" ? { valid: true, user: toProto(user.value) } : { valid: false }
    }),
})

/** Everything identity serves over gRPC (loaded by main.ts once HTTP listens). */
export const services = [IdentityGrpc]
