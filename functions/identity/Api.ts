import { Schema } from "effect"
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiMiddleware, HttpApiSchema, OpenApi } from "effect/http-api"
import { Page, pageQuery } from "../../shared/Pagination.ts"
import { NotFound, ServiceUnavailable, ValidationFailed } from "../../shared/Problem.ts"
import { headerParsing, strictParsing } from "../../shared/Server.ts"
import { User, UserChanges, UserId } from "./User.ts"

/** Users endpoints of the public contract (served through the gateway). */
export class UsersApi extends HttpApiGroup.make("users").add(
  HttpApiEndpoint.get("list", "/api/v1/users", {
    query: { ...pageQuery, email: Schema.optional(Schema.String.check(Schema.isMaxLength(254))) },
    success: Page(User),
    error: [ValidationFailed, ServiceUnavailable],
  }),
  HttpApiEndpoint.get("get", "/api/v1/users/:id", {
    params: { id: UserId },
    success: User,
    error: [NotFound, ValidationFailed, ServiceUnavailable],
  }),
  HttpApiEndpoint.patch("update", "/api/v1/users/:id", {
    params: { id: UserId },
    payload: UserChanges,
    success: User,
    error: [NotFound, ValidationFailed, ServiceUnavailable],
  }),
  HttpApiEndpoint.delete("delete", "/api/v1/users/:id", {
    params: { id: UserId },
    success: HttpApiSchema.NoContent,
    error: [NotFound, ValidationFailed, ServiceUnavailable],
  }),
) {}

/** Identity's HTTP contract; request-decoding failures render as 400 validation_failed problems. */
export class IdentityApi extends HttpApi.make("identity")
  .add(UsersApi)
  .middleware(HttpApiMiddleware.ProblemDetails)
  .annotate(HttpApi.ParseOptions, strictParsing)
  .annotate(HttpApi.HeadersParseOptions, headerParsing)
  .annotateMerge(OpenApi.annotations({ title: "Identity", version: "0.1.0" })) {}
