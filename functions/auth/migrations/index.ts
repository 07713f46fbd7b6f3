import type { Migration } from "../../../shared/Migrator.ts"

/** Auth's forward-only migrations, in order. Never edit one that has shipped; add a new one. */
export const migrations: ReadonlyArray<Migration> = [
  {
    id: "0100_signing_keys",
    sql: `
      CREATE TABLE signing_keys (
        kid             text PRIMARY KEY,
        alg             text NOT NULL,
        public_jwk      jsonb NOT NULL,
        private_key_enc text NOT NULL,
        created_at      timestamptz NOT NULL DEFAULT now(),
        activated_at    timestamptz NOT NULL,
        retired_at      timestamptz,
        expires_at      timestamptz,
        CHECK ((retired_at IS NULL) = (expires_at IS NULL))
      );
      COMMENT ON COLUMN signing_keys.private_key_enc IS 'PKCS#8 PEM sealed by KeyCipher (AES-256-GCM, kid as AAD)';
      COMMENT ON COLUMN signing_keys.retired_at IS 'stopped signing; NULL on the one active key';
      COMMENT ON COLUMN signing_keys.expires_at IS 'leaves the JWKS; tokens under this kid are refused from then on';
      CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys ((true)) WHERE retired_at IS NULL;
      CREATE INDEX signing_keys_expires_at ON signing_keys (expires_at);`,
  },
  {
    id: "0101_sessions",
    sql: `
      CREATE TABLE sessions (
        id             uuid PRIMARY KEY,
        user_id        uuid NOT NULL,
        created_at     timestamptz NOT NULL DEFAULT now(),
        last_used_at   timestamptz NOT NULL DEFAULT now(),
        expires_at     timestamptz NOT NULL,
        revoked_at     timestamptz,
        revoked_reason text,
        ip             text,
        user_agent     text
      );
      COMMENT ON TABLE sessions IS 'one refresh-token family: a sign-in on one device';
      CREATE INDEX sessions_live_by_user ON sessions (user_id) WHERE revoked_at IS NULL;
      CREATE TABLE refresh_tokens (
        token_hash    bytea PRIMARY KEY,
        session_id    uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        created_at    timestamptz NOT NULL DEFAULT now(),
        expires_at    timestamptz NOT NULL,
        superseded_at timestamptz
      );
      COMMENT ON COLUMN refresh_tokens.token_hash IS 'SHA-256 of the opaque token; the token itself is never stored';
      COMMENT ON COLUMN refresh_tokens.superseded_at IS 'rotated away; a use after the grace window revokes the session';
      CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);`,
  },
  {
    id: "0102_oidc_identities",
    sql: `
      CREATE TABLE oidc_identities (
        provider      text NOT NULL,
        subject       text NOT NULL,
        user_id       uuid NOT NULL,
        email         text NOT NULL,
        created_at    timestamptz NOT NULL DEFAULT now(),
        last_login_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (provider, subject)
      );
      COMMENT ON TABLE oidc_identities IS 'accounts at external OpenID Providers linked to users (by verified email)';
      CREATE INDEX oidc_identities_user ON oidc_identities (user_id);`,
  },
  {
    id: "0103_sessions_revoked_at",
    sql: `CREATE INDEX sessions_recently_revoked ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;`,
  },
  {
    id: "0104_retention",
    sql: `
      -- Retention (Sessions.ts retentionRules) finds ended sessions and expired refresh tokens, oldest first.
      CREATE INDEX sessions_expires_at ON sessions (expires_at);
      CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);`,
  },
]
