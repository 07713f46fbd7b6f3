import type { Migration } from "../../../shared/Migrator.ts"

/** Authz's forward-only migrations, in order. Never edit one that has shipped; add a new one. */
export const migrations: ReadonlyArray<Migration> = [
  {
    id: "0200_roles",
    sql: `
      -- Times are kept at the millisecond precision the API (and so the keyset cursors) shows.
      -- A role's grants are permission strings, trailing wildcards (blog.*) or *; checked against the registry on write.
      CREATE TABLE roles (
        id          uuid PRIMARY KEY,
        name        text NOT NULL,
        description text NOT NULL DEFAULT '',
        permissions text[] NOT NULL DEFAULT '{}',
        builtin     boolean NOT NULL DEFAULT false,
        created_at  timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
        updated_at  timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now())
      );
      CREATE UNIQUE INDEX roles_name_lower ON roles (lower(name));
      CREATE INDEX roles_created ON roles (created_at, id);
      -- User ids are identity's; authz never reads identity's tables, so there is no foreign key to users.
      CREATE TABLE user_roles (
        user_id    uuid NOT NULL,
        role_id    uuid NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
        created_at timestamptz NOT NULL DEFAULT date_trunc('milliseconds', clock_timestamp()),
        PRIMARY KEY (user_id, role_id)
      );
      CREATE INDEX user_roles_role ON user_roles (role_id);
      -- The built-in administrator role: every permission, now and in future functions.
      INSERT INTO roles (id, name, description, permissions, builtin)
      VALUES ('00000000-0000-4000-8000-00000000ad01', 'admin', 'Built-in administrator: every permission', '{*}', true);`,
  },
  {
    id: "0201_user_states",
    sql: `
      -- Identity's reports of whether a user is active (SetUserActive); a user without a row counts as active. Only
      -- the last-administrator guard reads it; version is identity's count of the user's status changes.
      CREATE TABLE user_states (
        user_id    uuid PRIMARY KEY,
        active     boolean NOT NULL,
        version    bigint NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
      );`,
  },
]
