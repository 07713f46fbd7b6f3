import { Config } from "effect"
import * as Cfg from "../../shared/Config.ts"

/** Auth's configuration keys for signing keys and tokens (the Config.ts of the function anatomy; the entry that
 * loads them with `Cfg.load`, next to the ports and database keys, comes with auth's main.ts). */
export const keysConfig = {
  keyEncryptionKey: Cfg.secret("KEY_ENCRYPTION_KEY"),
  signingKeyRotationDays: Config.Int("SIGNING_KEY_ROTATION_DAYS").pipe(Config.withDefault(30)),
  /** Extra time a retired key stays published beyond the access-token lifetime (clock skew, JWKS caches). */
  signingKeyGraceSeconds: Config.Int("SIGNING_KEY_GRACE_SECONDS").pipe(Config.withDefault(600)),
  jwtIssuer: Config.String("JWT_ISSUER"),
  jwtAudience: Config.String("JWT_AUDIENCE"),
  accessTokenTtlSeconds: Config.Int("ACCESS_TOKEN_TTL_SECONDS").pipe(Config.withDefault(900)),
}
