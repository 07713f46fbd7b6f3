// Blog: the signed-in author's own posts (any status, filtered, paged); write a draft, edit one (If-Match on its
// version: a stale edit shows the 412 instead of overwriting), publish it now or at a time, unpublish, delete, and
// attach files (declared to blog, sent straight to the presigned upload, then completed).
import { useEffect, useRef, useState } from "preact/hooks"
import { isProblem, ok, ProblemError } from "../../../../../client/index.ts"
import { useAccess } from "../access.ts"
import { api } from "../session.ts"
import type { Answer, Item } from "../types.ts"
import {
  AnyOf,
  Busy,
  Confirm,
  Field,
  Loading,
  onSubmit,
  PagedTable,
  ProblemBox,
  useAction,
  useLoad,
  usePages,
  value,
  When,
} from "../ui.tsx"

type Post = Item<"/api/v1/blog/me/posts", "get">
type Attachment = Post["attachments"][number]
type Upload = Answer<"/api/v1/blog/posts/{id}/attachments", "post">["upload"]

const STATUSES = ["draft", "scheduled", "published", "archived"] as const
type Status = (typeof STATUSES)[number]

/** A tags field's list: comma-separated, blanks dropped. */
const tagsOf = (form: HTMLFormElement) =>
  value(form, "tags")
    .split(",")
    .map((t) => t.trim())
    .filter((t) => t !== "")

/** A textarea's text as written (Markdown's leading spaces mean something). */
const text = (form: HTMLFormElement, name: string) =>
  (form.elements.namedItem(name) as HTMLTextAreaElement | null)?.value ?? ""

const bytes = (n: number) =>
  n < 1024 ? `${n} B` : n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 / 1024).toFixed(1)} MiB`

/**
 * Sends a file to a presigned form upload: every field first, the file last (storage reads the policy before the
 * file). No token goes with it: the URL's signature is the permission.
 */
const sendUpload = async (upload: Upload, file: File) => {
  const form = new FormData()
  for (const [name, v] of Object.entries(upload.fields)) form.append(name, v)
  form.append("file", file)
  const res = await fetch(upload.url, { method: upload.method, body: form })
  if (res.ok) return
  const body: unknown = await res.json().catch(() => undefined)
  throw new ProblemError(
    res.status,
    isProblem(body)
      ? body
      : { type: "about:blank", title: res.statusText || "the upload was refused", status: res.status },
  )
}

const NewPost = ({ created }: { readonly created: () => void }) => {
  // One key per draft as written: a second submit of the same form (a double click, a retry after a lost answer)
  // is the same request to blog, which answers the first post again; any change to the form makes a new one.
  const key = useRef(crypto.randomUUID())
  const create = useAction(async (form: HTMLFormElement) => {
    await ok(
      api.POST("/api/v1/blog/posts", {
        headers: { "idempotency-key": key.current },
        body: {
          title: value(form, "title"),
          excerpt: value(form, "excerpt") || null,
          body: text(form, "body"),
          tags: tagsOf(form),
        },
      }),
    )
    form.reset()
    key.current = crypto.randomUUID()
    created()
  })
  return (
    <form
      class="card blog-form"
      aria-label="New post"
      onInput={() => {
        key.current = crypto.randomUUID()
      }}
      onSubmit={onSubmit((form) => void create.run(form))}
    >
      <h2>New post</h2>
      <Field label="Title">
        <input name="title" required maxLength={200} />
      </Field>
      <Field label="Excerpt">
        <input name="excerpt" />
      </Field>
      <Field label="Tags" hint="Comma-separated">
        <input name="tags" autocomplete="off" />
      </Field>
      <Field label="Body" hint="Markdown">
        <textarea name="body" />
      </Field>
      <ProblemBox error={create.error} />
      <Busy busy={create.busy} type="submit">
        Create draft
      </Busy>
    </form>
  )
}

const EditForm = ({ post, saved }: { readonly post: Post; readonly saved: (post: Post) => void }) => {
  const save = useAction(async (form: HTMLFormElement) =>
    saved(
      await ok(
        api.PATCH("/api/v1/blog/posts/{id}", {
          params: { path: { id: post.id } },
          // The version this edit started from: blog refuses it (412) if the post changed since.
          headers: { "if-match": `"${post.version}"` },
          body: {
            title: value(form, "title"),
            slug: value(form, "slug"),
            excerpt: value(form, "excerpt"),
            body: text(form, "body"),
            tags: tagsOf(form),
          },
        }),
      ),
    ),
  )
  return (
    <form class="blog-form" aria-label="Edit post" onSubmit={onSubmit((form) => void save.run(form))}>
      <Field label="Title">
        <input name="title" required maxLength={200} defaultValue={post.title} />
      </Field>
      <Field label="Slug" hint="Lowercase letters, digits and -">
        <input name="slug" required pattern={"[a-z0-9\\-]+"} maxLength={120} defaultValue={post.slug} />
      </Field>
      <Field label="Excerpt">
        <input name="excerpt" defaultValue={post.excerpt} />
      </Field>
      <Field label="Tags" hint="Comma-separated; replaces the list">
        <input name="tags" autocomplete="off" defaultValue={post.tags.join(", ")} />
      </Field>
      <Field label="Body" hint="Markdown">
        <textarea name="body" defaultValue={post.body} />
      </Field>
      <ProblemBox error={save.error} />
      <Busy busy={save.busy} type="submit">
        Save
      </Busy>
    </form>
  )
}

const Publishing = ({ post, changed }: { readonly post: Post; readonly changed: (post: Post) => void }) => {
  const path = { params: { path: { id: post.id } } }
  const publish = useAction(async (publishAt?: string) =>
    changed(await ok(api.POST("/api/v1/blog/posts/{id}/publish", { ...path, body: publishAt ? { publishAt } : {} }))),
  )
  const unpublish = useAction(async () => changed(await ok(api.POST("/api/v1/blog/posts/{id}/unpublish", path))))
  const live = post.status === "published" || post.status === "scheduled"
  return (
    <div class="blog-publishing">
      <p>
        <span class="badge">{post.status}</span>{" "}
        {post.status === "scheduled" ? (
          <>
            for <When at={post.publishAt} />
          </>
        ) : post.status === "published" ? (
          <>
            since <When at={post.publishedAt} />
          </>
        ) : null}
      </p>
      <div class="actions">
        {post.status === "published" ? null : (
          <Busy busy={publish.busy} type="button" onClick={() => void publish.run()}>
            Publish now
          </Busy>
        )}
        {live ? (
          <Busy busy={unpublish.busy} type="button" class="secondary" onClick={() => void unpublish.run()}>
            Unpublish
          </Busy>
        ) : null}
      </div>
      {post.status === "published" ? null : (
        <form
          aria-label="Schedule"
          // datetime-local is the reader's local time without a zone: Date reads it as such; blog wants RFC 3339 UTC.
          onSubmit={onSubmit((form) => void publish.run(new Date(value(form, "at")).toISOString()))}
        >
          <Field label="Publish at" hint="Your local time">
            <input name="at" type="datetime-local" required />
          </Field>
          <Busy busy={publish.busy} type="submit" class="secondary">
            Schedule
          </Busy>
        </form>
      )}
      <ProblemBox error={publish.error ?? unpublish.error} />
    </div>
  )
}

const AttachmentRow = ({
  post,
  attachment,
  changed,
}: {
  readonly post: Post
  readonly attachment: Attachment
  readonly changed: () => void
}) => (
  <tr>
    <td>
      {attachment.url === null ? (
        attachment.filename
      ) : (
        <a href={attachment.url} rel="noreferrer">
          {attachment.filename}
        </a>
      )}
    </td>
    <td>{attachment.contentType}</td>
    <td>{bytes(attachment.size)}</td>
    <td>
      <span class="badge">{attachment.status}</span>
    </td>
    <td>
      <Confirm
        label="Delete"
        question={`Delete ${attachment.filename}?`}
        action={() =>
          ok(
            api.DELETE("/api/v1/blog/posts/{id}/attachments/{attachmentId}", {
              params: { path: { id: post.id, attachmentId: attachment.id } },
            }),
          )
        }
        done={changed}
      />
    </td>
  </tr>
)

const Attachments = ({ post, changed }: { readonly post: Post; readonly changed: () => void }) => {
  const [step, setStep] = useState("")
  const upload = useAction(async (form: HTMLFormElement) => {
    const file = (form.elements.namedItem("file") as HTMLInputElement).files?.[0]
    if (file === undefined) throw new Error("Choose a file first.")
    const id = { id: post.id }
    try {
      setStep(`Declaring ${file.name}…`)
      const declared = await ok(
        api.POST("/api/v1/blog/posts/{id}/attachments", {
          params: { path: id },
          headers: { "idempotency-key": crypto.randomUUID() },
          body: { filename: file.name, contentType: file.type || "application/octet-stream", size: file.size },
        }),
      )
      setStep(`Sending ${file.name}…`)
      await sendUpload(declared.upload, file)
      setStep(`Checking ${file.name}…`)
      await ok(
        api.POST("/api/v1/blog/posts/{id}/attachments/{attachmentId}/complete", {
          params: { path: { ...id, attachmentId: declared.attachment.id } },
        }),
      )
      form.reset()
    } finally {
      setStep("")
      // A declared but unsent file shows as pending (blog removes it after a day): the list shows what is there.
      changed()
    }
  })
  return (
    <section aria-label="Attachments">
      <h2>Attachments</h2>
      <div class="table">
        <table>
          <caption>Files of this post</caption>
          <thead>
            <tr>
              {["File", "Type", "Size", "Status", ""].map((h) => (
                <th key={h} scope="col">
                  {h}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {post.attachments.length === 0 ? (
              <tr>
                <td colSpan={5}>No attachments yet.</td>
              </tr>
            ) : (
              post.attachments.map((a) => <AttachmentRow key={a.id} post={post} attachment={a} changed={changed} />)
            )}
          </tbody>
        </table>
      </div>
      <form aria-label="Upload an attachment" onSubmit={onSubmit((form) => void upload.run(form))}>
        <Field label="File">
          <input name="file" type="file" required />
        </Field>
        <Busy busy={upload.busy} type="submit">
          Upload
        </Busy>
        {step === "" ? null : (
          <p class="loading" role="status">
            {step}
          </p>
        )}
        <ProblemBox error={upload.error} />
      </form>
    </section>
  )
}

/** One post, loaded fresh (its version is what an edit is based on), with everything the author can do to it. */
const Editor = ({
  id,
  changed,
  close,
}: {
  readonly id: string
  readonly changed: () => void
  readonly close: () => void
}) => {
  const { can } = useAccess()
  const [round, setRound] = useState(0)
  const [saved, setSaved] = useState<Post | undefined>(undefined)
  const loaded = useLoad(async () => {
    setSaved(undefined)
    // Revalidated, not trusted from the cache: blog's ETag is the post's version (an attachment's change makes a new one).
    return ok(api.GET("/api/v1/blog/posts/{id}", { params: { path: { id } }, cache: "no-cache" }))
  }, [id, round])
  const post = saved ?? loaded.data
  const heading = useRef<HTMLHeadingElement>(null)
  // Opened from the list: the keyboard continues at the editor's heading.
  const ready = post !== undefined
  useEffect(() => {
    if (ready) heading.current?.focus()
  }, [ready])
  // An action's answer is the post as it is now; the list shows it too.
  const update = (next: Post) => {
    setSaved(next)
    changed()
  }
  const reload = () => {
    setRound((r) => r + 1)
    changed()
  }
  if (post === undefined)
    return (
      <section>
        {loaded.error === undefined ? <Loading what="the post" /> : <ProblemBox error={loaded.error} />}
      </section>
    )
  return (
    <section aria-labelledby="blog-editing" class="blog-editor">
      <div class="blog-head">
        <h2 id="blog-editing" tabIndex={-1} ref={heading}>
          Edit “{post.title}”
        </h2>
        <span class="actions">
          {/* After a 412: the post as it is now (the form then shows it; copy your text first). */}
          <Busy busy={loaded.loading} type="button" class="secondary" onClick={reload}>
            Reload
          </Busy>
          <button type="button" class="secondary" onClick={close}>
            Close
          </button>
        </span>
      </div>
      <p class="ok" role="status">
        Version {post.version}, updated <When at={post.updatedAt} />
      </p>
      {/* A new version gives a fresh form: its fields show what blog now holds. */}
      <EditForm key={post.version} post={post} saved={update} />
      {can("blog.post.publish") || can("blog.post.publish.any") ? <Publishing post={post} changed={update} /> : null}
      <Attachments post={post} changed={reload} />
      <div class="actions">
        {/* Keyed by version: a reloaded post asks afresh (a stale refusal does not linger). */}
        <Confirm
          key={post.version}
          label="Delete post"
          question={`Delete “${post.title}”?`}
          action={() =>
            ok(
              api.DELETE("/api/v1/blog/posts/{id}", {
                params: { path: { id: post.id } },
                headers: { "if-match": `"${post.version}"` },
              }),
            )
          }
          done={() => {
            close()
            changed()
          }}
        />
      </div>
    </section>
  )
}

export const Blog = () => {
  const [status, setStatus] = useState<Status | "">("")
  const [editing, setEditing] = useState<string | undefined>(undefined)
  const pages = usePages([status])
  const list = useLoad(
    () =>
      ok(
        api.GET("/api/v1/blog/me/posts", {
          params: {
            query: { ...pages.query(20), ...(status ? { status } : {}) },
          },
        }),
      ),
    [status, pages.cursor],
  )
  return (
    <>
      <NewPost created={list.reload} />
      <form
        aria-label="Filter posts"
        onSubmit={onSubmit((form) => {
          // The same filter again shows the list as it is now (posts written elsewhere too).
          setStatus(value(form, "status") as Status | "")
          list.reload()
        })}
      >
        <Field label="Status">
          <AnyOf name="status" options={STATUSES} />
        </Field>
        <button type="submit">Show</button>
      </form>
      <PagedTable
        list={list}
        pages={pages}
        what="your posts"
        caption={status ? `Your ${status} posts` : "Your posts"}
        head={["Title", "Status", "Updated", "Files", ""]}
        empty="No posts yet."
        row={(p: Post) => (
          <tr key={p.id}>
            <td>
              {p.title}
              <br />
              <code>{p.slug}</code>
            </td>
            <td>
              <span class="badge">{p.status}</span>
            </td>
            <td>
              <When at={p.updatedAt} />
            </td>
            <td>{p.attachments.length}</td>
            <td>
              <button
                type="button"
                class="secondary"
                aria-label={`Edit “${p.title}”`}
                aria-pressed={editing === p.id}
                onClick={() => setEditing(p.id)}
              >
                Edit
              </button>
            </td>
          </tr>
        )}
      />
      {editing === undefined ? null : (
        <Editor key={editing} id={editing} changed={list.reload} close={() => setEditing(undefined)} />
      )}
    </>
  )
}
