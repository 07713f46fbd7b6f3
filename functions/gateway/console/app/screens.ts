// The console's screens, in the navigation's order: where each lives (`#/<path>`), its title, and whether the
// signed-in user sees it. A new screen is one file in screens/ and one line here.
import type { FunctionComponent } from "preact"
import type { Access } from "./access.ts"
import { Account } from "./screens/Account.tsx"
import { Analytics } from "./screens/Analytics.tsx"
import { Audit } from "./screens/Audit.tsx"
import { Billing } from "./screens/Billing.tsx"
import { Blog } from "./screens/Blog.tsx"
import { Roles } from "./screens/Roles.tsx"
import { Users } from "./screens/Users.tsx"

export interface Screen {
  readonly path: string
  readonly title: string
  readonly visible: (access: Access) => boolean
  readonly Component: FunctionComponent
}

export const screens: ReadonlyArray<Screen> = [
  { path: "users", title: "Users", visible: (a) => a.can("identity.user.read"), Component: Users },
  {
    path: "roles",
    title: "Roles",
    visible: (a) => a.can("authz.role.read") || a.can("authz.assignment.read"),
    Component: Roles,
  },
  { path: "audit", title: "Audit log", visible: (a) => a.can("audit.event.read"), Component: Audit },
  { path: "billing", title: "Billing", visible: () => true, Component: Billing },
  { path: "analytics", title: "Analytics", visible: (a) => a.can("analytics.report.read"), Component: Analytics },
  { path: "blog", title: "Blog", visible: (a) => a.can("blog.post.create"), Component: Blog },
  { path: "account", title: "Account", visible: () => true, Component: Account },
]
