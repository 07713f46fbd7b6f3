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
]
