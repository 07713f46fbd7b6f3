import { Schema } from "effect"
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import * as Route from "../../shared/access/Route.ts"
import * as Contract from "../../shared/Contract.ts"
import { Page, pageQuery } from "../../shared/Pagination.ts"
import { Conflict, Forbidden, LastAdmin, NotFound, ServiceUnavailable, ValidationFailed } from "../../shared/Problem.ts"
import { manifest } from "./module.ts"
import { NewRole, Role, RoleChanges, RoleId, UserId } from "./Role.ts"

/** A permission some function defines (from the manifests). */
export const Permission = Schema.Struct({ name: Schema.String, description: Schema.String, module: Schema.String })

/** The permission registry: every permission defined in any function's manifest. */
export class PermissionsApi extends HttpApiGroup.make("permissions")
  .annotate(OpenApi.Description, "The permission registry, from every function's manifest")
  .add(
    HttpApiEndpoint.get("list", "/api/v1/permissions", {
      query: pageQuery,
      success: Page(Permission),
      error: [ValidationFailed],
    })
      .pipe(Route.requires("authz.permission.read"))
      .annotate(OpenApi.Summary, "List the permissions every function defines"),
  ) {}

/** Roles: named sets of grants (permissions, trailing wildcards such as `blog.*`, or `*`). */
export class RolesApi extends HttpApiGroup.make("roles")
  .annotate(OpenApi.Description, "Roles: named sets of grants (permissions, wildcards such as `blog.*`, or `*`)")
  .add(
    HttpApiEndpoint.post("create", "/api/v1/roles", {
      payload: NewRole,
      success: Role.pipe(HttpApiSchema.status(201)),
      error: [ValidationFailed, Conflict, ServiceUnavailable],
    })
      .pipe(Route.requires("authz.role.create"))
      .annotate(OpenApi.Summary, "Create a role"),
    HttpApiEndpoint.get("list", "/api/v1/roles", {
      query: pageQuery,
      success: Page(Role),
      error: [ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.requires("authz.role.read"))
      .annotate(OpenApi.Summary, "List roles"),
    HttpApiEndpoint.get("get", "/api/v1/roles/:id", {
      params: { id: RoleId },
      success: Role,
      error: [NotFound, ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.requires("authz.role.read"))
      .annotate(OpenApi.Summary, "Get a role"),
    HttpApiEndpoint.patch("update", "/api/v1/roles/:id", {
      params: { id: RoleId },
      payload: RoleChanges,
      success: Role,
      error: [NotFound, ValidationFailed, Conflict, LastAdmin, ServiceUnavailable],
    })
      .pipe(Route.requires("authz.role.update"))
      .annotate(OpenApi.Summary, "Change a role's name, description or grants"),
    HttpApiEndpoint.delete("delete", "/api/v1/roles/:id", {
      params: { id: RoleId },
      success: HttpApiSchema.NoContent,
      error: [NotFound, ValidationFailed, Conflict, LastAdmin, ServiceUnavailable],
    })
      .pipe(Route.requires("authz.role.delete"))
      .annotate(OpenApi.Summary, "Delete a role"),
  ) {}

/** Which users hold which roles. */
export class AssignmentsApi extends HttpApiGroup.make("assignments")
  .annotate(OpenApi.Description, "Which users hold which roles")
  .add(
    HttpApiEndpoint.get("list", "/api/v1/users/:userId/roles", {
      params: { userId: UserId },
      query: pageQuery,
      success: Page(Role),
      error: [ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.requires("authz.assignment.read"))
      .annotate(OpenApi.Summary, "List a user's roles"),
    HttpApiEndpoint.put("assign", "/api/v1/users/:userId/roles/:roleId", {
      params: { userId: UserId, roleId: RoleId },
      success: HttpApiSchema.NoContent,
      error: [NotFound, ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.requires("authz.assignment.create"))
      .annotate(OpenApi.Summary, "Give a user a role"),
    HttpApiEndpoint.delete("unassign", "/api/v1/users/:userId/roles/:roleId", {
      params: { userId: UserId, roleId: RoleId },
      success: HttpApiSchema.NoContent,
      error: [NotFound, ValidationFailed, LastAdmin, ServiceUnavailable],
    })
      .pipe(Route.requires("authz.assignment.delete"))
      .annotate(OpenApi.Summary, "Take a role from a user"),
  ) {}

/** The signed-in caller's own effective grants (bearer access token). */
export class MeApi extends HttpApiGroup.make("me")
  .annotate(OpenApi.Description, "The signed-in user: own account and effective permissions")
  .add(
    HttpApiEndpoint.get("permissions", "/api/v1/users/me/permissions", {
      success: Schema.Struct({ items: Schema.Array(Schema.String) }),
      error: [Forbidden, ServiceUnavailable],
    })
      .pipe(Route.signedIn())
      .annotate(OpenApi.Summary, "The signed-in user's effective grants"),
  ) {}

/** Authz's HTTP contract; request-decoding failures render as 400 validation_failed problems. */
export class AuthzApi extends Contract.make(
  HttpApi.make("authz").add(MeApi).add(PermissionsApi).add(RolesApi).add(AssignmentsApi),
  manifest,
) {}
