import type { Migration } from "../../../shared/Migrator.ts"

/**
 * Blog's forward-only migrations, in order; they run in its own schema. Never edit one that has shipped. Posts use ids
 * 0100–0149, attachments 0150 on.
 */
export const migrations: ReadonlyArray<Migration> = [
  {
    id: "0100_blog_posts",
    sql: `
      CREATE TABLE posts (
        id            uuid PRIMARY KEY,
        -- ASCII only, so the C collation's byte order is also the index's: a prefix search (LIKE 'slug-%') uses it.
        slug          text COLLATE "C" NOT NULL CONSTRAINT posts_slug_unique UNIQUE,
        -- Set once the slug was given explicitly or the post was first published: a new title no longer changes it.
        slug_fixed    boolean NOT NULL DEFAULT false,
        title         text NOT NULL,
        excerpt       text NOT NULL DEFAULT '',
        body          text NOT NULL,
        -- The body rendered and sanitised when it was written (Markdown.ts): readers never cost a render.
        html          text NOT NULL,
        status        text NOT NULL CHECK (status IN ('draft', 'scheduled', 'published', 'archived')),
        publish_at    timestamptz,
        published_at  timestamptz,
        author_id     uuid NOT NULL,
        tags          text[] NOT NULL DEFAULT '{}',
        version       integer NOT NULL DEFAULT 1,
        -- Times at millisecond precision, what the API shows: keyset cursors compare the stored value itself.
        created_at    timestamptz NOT NULL,
        updated_at    timestamptz NOT NULL,
        -- Full-text search, weighted title > excerpt > body. The configuration is BLOG_SEARCH_LANGUAGE: at start the
        -- function rebuilds this column when the configured one differs from search_settings' (Posts.layer).
        search        tsvector GENERATED ALWAYS AS (
                        setweight(to_tsvector('english'::regconfig, title), 'A') ||
                        setweight(to_tsvector('english'::regconfig, excerpt), 'B') ||
                        setweight(to_tsvector('english'::regconfig, body), 'C')) STORED,
        CHECK ((status = 'scheduled') = (publish_at IS NOT NULL)),
        CHECK ((status = 'published') = (published_at IS NOT NULL))
      );
      -- The public list, newest first (keyset: published_at, id), and its filters.
      CREATE INDEX posts_published ON posts (published_at DESC, id DESC) WHERE status = 'published';
      CREATE INDEX posts_published_tags ON posts USING gin (tags) WHERE status = 'published';
      CREATE INDEX posts_published_author ON posts (author_id, published_at DESC, id DESC) WHERE status = 'published';
      -- An author's own posts, any status, newest first (keyset: created_at, id).
      CREATE INDEX posts_author ON posts (author_id, created_at DESC, id DESC);
      CREATE INDEX posts_search ON posts USING gin (search);
      -- Scheduled posts by due time: the sweep of overdue ones (Posts.publishDue).
      CREATE INDEX posts_due ON posts (publish_at) WHERE status = 'scheduled';

      -- The text search configuration the search column is built with (one row).
      CREATE TABLE search_settings (
        only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
        language  text NOT NULL
      );
      INSERT INTO search_settings (language) VALUES ('english');`,
  },
  {
    id: "0101_blog_search_inline",
    sql: `
      -- The search vector stays in the row (compressed) rather than out of line: a search checks and ranks it for every
      -- post it considers, and a lookup in the TOAST table per post was most of a search's cost. Body and HTML, read
      -- for the page's posts only, go out of line first.
      ALTER TABLE posts ALTER COLUMN search SET STORAGE MAIN;`,
  },
  {
    id: "0150_blog_attachments",
    sql: `
      CREATE TABLE attachments (
        id                 uuid PRIMARY KEY,
        -- Null once the post is deleted (in the same transaction): the cleanup job then removes object and row.
        post_id            uuid REFERENCES posts (id) ON DELETE SET NULL,
        filename           text NOT NULL,
        content_type       text NOT NULL,
        size               integer NOT NULL CHECK (size > 0),
        -- 'deleted': hidden, its object removed (again) by the cleanup job once no upload URL of it works.
        status             text NOT NULL CHECK (status IN ('pending', 'ready', 'deleted')),
        object_key         text NOT NULL UNIQUE,
        created_by         uuid NOT NULL,
        created_at         timestamptz NOT NULL,
        -- Until then its upload URL works, so an object may still arrive.
        upload_expires_at  timestamptz NOT NULL,
        completed_at       timestamptz
      );
      -- A post's attachments, oldest first.
      CREATE INDEX attachments_of_post ON attachments (post_id, created_at, id);
      -- The cleanup job's two finds: uploads never completed, and attachments whose object is to go.
      CREATE INDEX attachments_pending ON attachments (created_at) WHERE status = 'pending';
      CREATE INDEX attachments_gone ON attachments (upload_expires_at) WHERE status = 'deleted' OR post_id IS NULL;`,
  },
]
