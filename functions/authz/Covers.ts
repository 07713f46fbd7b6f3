// What a grant covers, without dependencies: the gateway's web console (a browser bundle) decides what to show with the
// same rule authz enforces.

/**
 * Whether `grant` covers `permission`: equal, `*`, or a trailing wildcard matching whole segments (`blog.*` covers
 * `blog.post.create`, but neither `blogx.a` nor `blog` itself).
 */
export const covers = (grant: string, permission: string): boolean => {
  if (grant === "*" || grant === permission) return true
  return grant.endsWith(".*") && permission.startsWith(grant.slice(0, -1))
}

/** The first grant that covers `permission`, if any. */
export const matchingGrant = (grants: ReadonlyArray<string>, permission: string): string | undefined =>
  grants.find((grant) => covers(grant, permission))
