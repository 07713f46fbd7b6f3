import { Layer } from "effect"
import * as SessionRevocations from "../../shared/access/SessionRevocations.ts"
import { topicOf } from "../../shared/CloudEvent.ts"
import * as Cfg from "../../shared/Config.ts"
import type { EventBus } from "../../shared/EventBus.ts"
import * as FunctionApp from "../../shared/FunctionApp.ts"
import type { CommonAddress, ModuleManifest } from "../../shared/Module.ts"
import { manifest } from "./module.ts"

// What auth tells every verifier of its access tokens, said once here: the kernel's verification pieces take these as
// parameters and each function passes them in (its Config.ts, its main.ts or App.ts, the deploy plans).

/** Where auth serves its public signing keys (the `jwks` endpoint of its HTTP contract). */
export const JWKS_PATH = "/.well-known/jwks.json"

/** The event auth publishes when sessions end: every verifier follows it (`SessionRevocations.following`). */
export const sessionRevoked: SessionRevocations.RevocationFeed = {
  topic: topicOf(manifest.name),
  type: "auth.session.revoked",
}

/** Where every other function finds auth's keys when deployed (`AUTH_JWKS_URL`, see `peerAddresses`). */
export const jwksAddress: CommonAddress = { key: Cfg.JWKS_URL_KEY, dependency: manifest.name, path: JWKS_PATH }

/**
 * The config keys of a function that verifies access tokens: the issuer and audience it expects and auth's JWKS, both
 * defaulting to auth's local origin (its manifest port).
 */
export const verifierConfig = (manifests: ReadonlyArray<Pick<ModuleManifest, "name" | "ports">>) =>
  Cfg.authentication(Cfg.localOrigin(manifest.name, manifests), JWKS_PATH)

/**
 * The session revocations of a function that verifies access tokens, by runtime: a container follows auth's revocations
 * on its bus (they hold in memory through a Redis outage); a Lambda invocation asks the store.
 */
export const revocationsFor = <E, R>(service: string, runtime: FunctionApp.Runtime, bus: Layer.Layer<EventBus, E, R>) =>
  FunctionApp.byRuntime(runtime, {
    container: SessionRevocations.following({ service, feed: sessionRevoked }).pipe(Layer.provideMerge(bus)),
    lambda: SessionRevocations.SessionRevocations.layer,
  })
