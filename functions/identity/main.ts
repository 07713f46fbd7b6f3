import { Effect, Layer, Option } from "effect"
import * as SessionRevocations from "../../shared/access/SessionRevocations.ts"
import * as DevMailbox from "../../shared/DevMailbox.ts"
import * as Main from "../../shared/Main.ts"
import { sessionRevoked } from "../auth/TokenVerification.ts"
import { IdentityApi } from "./Api.ts"
import { AccessLive, AdminGuardLive, Bus, DomainLive, Events, Identity, Infrastructure } from "./App.ts"
import { loadConfig } from "./Config.ts"
import { HttpLive } from "./Http.ts"
import { manifest } from "./module.ts"

// Container entry: identity's HTTP server (every route enforced as its manifest declares), then its gRPC server
// (callers verified), on its kernel infrastructure.
const App = Layer.unwrap(
  Effect.map(loadConfig, (config) => {
    // The dev mailbox is readable over HTTP only when mail goes to it and never in production.
    const devMail = Option.isNone(config.smtpUrl) && config.env !== "production" ? DevMailbox.route : Layer.empty
    const servers = Main.servers(HttpLive, {
      api: IdentityApi,
      grpc: () => import("./Grpc.ts"),
      config,
      declared: manifest.routes,
      unguarded: devMail,
    })
    return Layer.mergeAll(servers, Events(config)).pipe(
      Layer.provideMerge(AccessLive(config)),
      Layer.provide(SessionRevocations.following({ service: manifest.name, feed: sessionRevoked })),
      Layer.provide(DomainLive),
      Layer.provide(AdminGuardLive(config)),
      Layer.provide(Bus(config)),
      Layer.provide(Identity(config)),
      Layer.provide(Infrastructure(config)),
    )
  }),
)

Main.run(manifest.name, App)
