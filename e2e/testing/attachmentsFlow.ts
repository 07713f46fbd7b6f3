import { expect } from "vitest"

/**
 * Attachments through the gateway, as a writer holding the blog's permissions (`token`): a file declared, uploaded
 * with the form the blog hands out (straight to S3 on the real servers; on `npm start`'s embedded store to the blog's
 * own signed URL, which is the gateway's), completed, shown on its post, its link followed to the same bytes; a file
 * of another size refused (by the embedded upload route as it arrives, by `complete` on S3, whose emulator does not
 * check the upload policy: 422 and the object deleted); the attachment deleted.
 */
export const runAttachmentsFlow = async (url: string, token: string) => {
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })
    const text = await res.text()
    return { status: res.status, text, body: text === "" ? undefined : JSON.parse(text) }
  }
  type Upload = { url: string; fields: Record<string, string> }
  const send = (upload: Upload, file: Uint8Array) => {
    const form = new FormData()
    for (const [name, value] of Object.entries(upload.fields)) form.append(name, value)
    form.append("file", new Blob([file]), "file.png")
    return fetch(upload.url, { method: "POST", body: form })
  }

  const created = await call("POST", "/api/v1/blog/posts", { title: "With a picture" })
  expect(created.status, created.text).toBe(201)
  const postId = created.body.id as string
  const file = Uint8Array.from({ length: 300_000 }, (_, i) => (i * 7) % 256)
  const declared = await call("POST", `/api/v1/blog/posts/${postId}/attachments`, {
    filename: "picture.png",
    contentType: "image/png",
    size: file.length,
  })
  expect(declared.status, declared.text).toBe(201)
  const { attachment, upload } = declared.body as { attachment: { id: string }; upload: Upload }

  const sent = await send(upload, file)
  expect(sent.status, await sent.text()).toBe(204)
  const ready = await call("POST", `/api/v1/blog/posts/${postId}/attachments/${attachment.id}/complete`)
  expect(ready.body?.status, ready.text).toBe("ready")
  const post = await call("GET", `/api/v1/blog/posts/${postId}`)
  expect(post.body.attachments).toEqual([ready.body])
  // The link's origin is APP_BASE_URL (the platform's public URL); here the gateway is at `url`.
  const link = `${url}${new URL(ready.body.url as string).pathname}`
  const download = await fetch(link)
  expect(download.status).toBe(200)
  expect(download.headers.get("content-type")).toBe("image/png")
  expect(new Uint8Array(await download.arrayBuffer())).toEqual(file)

  const other = await call("POST", `/api/v1/blog/posts/${postId}/attachments`, {
    filename: "other.png",
    contentType: "image/png",
    size: 1_000,
  })
  const { attachment: wrong, upload: wrongUpload } = other.body as { attachment: { id: string }; upload: Upload }
  const oversized = await send(wrongUpload, file)
  if (oversized.status === 204) {
    const refused = await call("POST", `/api/v1/blog/posts/${postId}/attachments/${wrong.id}/complete`)
    expect([refused.status, refused.body.code]).toEqual([422, "upload_mismatch"])
  } else {
    expect(oversized.status).toBe(413)
  }
  const nothing = await call("POST", `/api/v1/blog/posts/${postId}/attachments/${wrong.id}/complete`)
  expect(nothing.status, nothing.text).toBe(409)

  expect((await call("DELETE", `/api/v1/blog/posts/${postId}/attachments/${attachment.id}`)).status).toBe(204)
  expect((await fetch(link)).status).toBe(404)
  expect((await call("DELETE", `/api/v1/blog/posts/${postId}`)).status).toBe(204)
}
