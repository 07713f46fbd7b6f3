import type { AddressInfo } from "node:net"
import { SMTPServer } from "smtp-server"

/** A mail received by the capture server, decoded enough for assertions. */
export interface CapturedMail {
  readonly from: string
  readonly to: ReadonlyArray<string>
  readonly messageId: string
  readonly subject: string
  readonly text: string
  readonly html: string
  readonly raw: string
}

/** A real SMTP server on localhost capturing every accepted mail. */
export interface SmtpCapture {
  readonly port: number
  readonly mails: Array<CapturedMail>
  /** Every AUTH attempt (user names only). */
  readonly logins: Array<string>
  close(): Promise<void>
}

/** Options of the capture server. */
export interface SmtpCaptureOptions {
  /** Port to listen on; 0 (default) picks a free one. */
  readonly port?: number
  /** Only this user and password may send. */
  readonly auth?: { readonly user: string; readonly pass: string }
  /** Echoes the refused password in the rejection (a careless server), to prove clients scrub it. */
  readonly echoRefusedPassword?: boolean
}

/** Starts an SMTP server (no TLS) on localhost capturing every accepted mail. */
export const startSmtpCapture = async (options: SmtpCaptureOptions = {}): Promise<SmtpCapture> => {
  const mails: Array<CapturedMail> = []
  const logins: Array<string> = []
  const server = new SMTPServer({
    secure: false,
    disabledCommands: options.auth ? ["STARTTLS"] : ["STARTTLS", "AUTH"],
    authOptional: !options.auth,
    allowInsecureAuth: true,
    logger: false,
    onAuth(auth, _session, callback) {
      logins.push(auth.username ?? "")
      if (auth.username === options.auth?.user && auth.password === options.auth?.pass) {
        callback(null, { user: auth.username })
      } else {
        const echo = options.echoRefusedPassword ? ` (${auth.password})` : ""
        callback(new Error(`Invalid username or password${echo}`))
      }
    },
    onData(stream, session, callback) {
      const chunks: Array<Buffer> = []
      stream.on("data", (chunk: Buffer) => chunks.push(chunk))
      stream.on("end", () => {
        const raw = Buffer.concat(chunks).toString("utf8")
        mails.push({
          ...parseMail(raw),
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
          to: session.envelope.rcptTo.map((r) => r.address),
          raw,
        })
        callback()
      })
    },
  })
  server.on("error", () => {})
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(options.port ?? 0, "127.0.0.1", () => resolve())
  })
  const port = (server.server.address() as AddressInfo).port
  return { port, mails, logins, close: () => new Promise<void>((resolve) => server.close(() => resolve())) }
}

// A small MIME reader for what nodemailer writes: headers, multipart/alternative, quoted-printable or base64.
const parseMail = (raw: string) => {
  const { headers, body } = splitPart(raw)
  const parts = collectParts(headers, body)
  return {
    messageId: headers["message-id"] ?? "",
    subject: decodeWords(headers.subject ?? ""),
    text: parts["text/plain"] ?? "",
    html: parts["text/html"] ?? "",
  }
}

const splitPart = (raw: string) => {
  const at = raw.indexOf("\r\n\r\n")
  const head = at < 0 ? raw : raw.slice(0, at)
  const body = at < 0 ? "" : raw.slice(at + 4)
  const headers: Record<string, string> = {}
  for (const line of head.replace(/\r\n[ \t]+/g, " ").split("\r\n")) {
    const colon = line.indexOf(":")
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  return { headers, body }
}

const collectParts = (headers: Record<string, string>, body: string): Record<string, string> => {
  const type = headers["content-type"] ?? "text/plain"
  const boundary = /boundary="?([^";]+)"?/i.exec(type)?.[1]
  if (type.toLowerCase().startsWith("multipart/") && boundary) {
    const result: Record<string, string> = {}
    for (const chunk of body.split(`--${boundary}`).slice(1)) {
      if (chunk.startsWith("--")) break
      const part = splitPart(chunk.replace(/^\r\n/, ""))
      Object.assign(result, collectParts(part.headers, part.body.replace(/\r\n$/, "")))
    }
    return result
  }
  const mime = (type.split(";")[0] ?? "").trim().toLowerCase()
  return { [mime]: decodeBody(body, headers["content-transfer-encoding"] ?? "7bit") }
}

const decodeBody = (body: string, encoding: string) => {
  switch (encoding.toLowerCase()) {
    case "base64":
      return Buffer.from(body.replace(/\s+/g, ""), "base64").toString("utf8")
    case "quoted-printable":
      return decodeQuotedPrintable(body)
    default:
      return body
  }
}

const decodeQuotedPrintable = (text: string) => {
  const joined = text.replace(/=\r\n/g, "")
  const bytes: Array<number> = []
  for (let i = 0; i < joined.length; i++) {
    const c = joined[i] as string
    if (c === "=" && /^[0-9A-F]{2}$/i.test(joined.slice(i + 1, i + 3))) {
      bytes.push(Number.parseInt(joined.slice(i + 1, i + 3), 16))
      i += 2
    } else {
      bytes.push(...Buffer.from(c, "utf8"))
    }
  }
  return Buffer.from(bytes).toString("utf8")
}

// RFC 2047 encoded words (=?UTF-8?Q?...?= and =?UTF-8?B?...?=) as nodemailer writes them in headers.
const decodeWords = (value: string) =>
  value
    .replace(/\?=\s+=\?/g, "?==?")
    .replace(/=\?([^?]+)\?([QB])\?([^?]*)\?=/gi, (_all, _charset: string, kind: string, data: string) =>
      kind.toUpperCase() === "B"
        ? Buffer.from(data, "base64").toString("utf8")
        : decodeQuotedPrintable(data.replace(/_/g, " ")),
    )
