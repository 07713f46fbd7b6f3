import { Schema } from "effect"
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiMiddleware, HttpApiSchema, OpenApi } from "effect/http-api"
import { Authentication } from "../../shared/Authentication.ts"
import { Page, pageQuery } from "../../shared/Pagination.ts"
import { Conflict, Forbidden, LastAdmin, NotFound, ServiceUnavailable, ValidationFailed } from "../../shared/Problem.ts"
import { headerParsing, strictParsing } from "../../shared/Server.ts"
import { NewRole, Role, RoleChanges, RoleId, UserId } from "./Role.ts"

/** A permission some function defines (from the manifests). */
export const Permission = Schema.Struct({ name: Schema.String, description: Schema.String, module: Schema.String })

/** The permission registry: every permission defined in any function's manifest. */
export class PermissionsApi extends HttpApiGroup.make("permissions").add(
  HttpApiEndpoint.get("list", "/api/v1/permissions", {
    query: pageQuery,
    success: Page(Permission),
    error: [ValidationFailed],
  }),
) {}

/** Roles: named sets of grants (permissions, trailing wildcards such as `blog.*`, or `*`). */
export class RolesApi extends HttpApiGroup.make("roles").add(
  HttpApiEndpoint.post("create", "/api/v1/roles", {
    payload: NewRole,
    success: Role.pipe(HttpApiSchema.status(201)),
    error: [ValidationFailed, Conflict, ServiceUnavailable],
  }),
  HttpApiEndpoint.get("list", "/api/v1/roles", {
    query: pageQuery,
    success: Page(Role),
    error: [ValidationFailed, ServiceUnavailable],
  }),
  HttpApiEndpoint.get("get", "/api/v1/roles/:id", {
    params: { id: RoleId },
    success: Role,
    error: [NotFound, ValidationFailed, ServiceUnavailable],
  }),
  HttpApiEndpoint.patch("update", "/api/v1/roles/:id", {
    params: { id: RoleId },
    payload: RoleChanges,
    success: Role,
    error: [NotFound, ValidationFailed, Conflict, LastAdmin, ServiceUnavailable],
  }),
  HttpApiEndpoint.delete("delete", "/api/v1/roles/:id", {
    params: { id: RoleId },
    success: HttpApiSchema.NoContent,
    error: [NotFound, ValidationFailed, Conflict, LastAdmin, ServiceUnavailable],
  }),
) {}

/** Which users hold which roles. */
export class AssignmentsApi extends HttpApiGroup.make("assignments").add(
  HttpApiEndpoint.get("list", "/api/v1/users/:userId/roles", {
    params: { userId: UserId },
    query: pageQuery,
    success: Page(Role),
    error: [ValidationFailed, ServiceUnavailable],
  }),
  HttpApiEndpoint.put("assign", "/api/v1/users/:userId/roles/:roleId", {
    params: { userId: UserId, roleId: RoleId },
    success: HttpApiSchema.NoContent,
    error: [NotFound, ValidationFailed, ServiceUnavailable],
  }),
  HttpApiEndpoint.delete("unassign", "/api/v1/users/:userId/roles/:roleId", {
    params: { userId: UserId, roleId: RoleId },
    success: HttpApiSchema.NoContent,
    error: [NotFound, ValidationFailed, LastAdmin, ServiceUnavailable],
  }),
) {}

/** The signed-in caller's own effective grants (bearer access token). */
export class MeApi extends HttpApiGroup.make("me")
  .add(
    HttpApiEndpoint.get("permissions", "/api/v1/users/me/permissions", {
      success: Schema.Struct({ items: Schema.Array(Schema.String) }),
      error: [Forbidden, ServiceUnavailable],
    }),
  )
  .middleware(Authentication) {}

/** Authz's HTTP contract; request-decoding failures render as 400 validation_failed problems. */
export class AuthzApi extends HttpApi.make("authz")
  .add(MeApi)
  .add(PermissionsApi)
  .add(RolesApi)
  .add(AssignmentsApi)
  .middleware(HttpApiMiddleware.ProblemDetails)
  .annotate(HttpApi.ParseOptions, strictParsing)
  .annotate(HttpApi.HeadersParseOptions, headerParsing)
  .annotateMerge(OpenApi.annotations({ title: "Authz", version: "0.1.0" })) {}
