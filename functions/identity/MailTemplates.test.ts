import { describe, expect, it } from "vitest"
import { escapeHtml, link, passwordReset, verification } from "./MailTemplates.ts"

describe("MailTemplates", () => {
  it("builds app links carrying the URL-encoded token in the query", () => {
    const token = "a+b/c=d&e f"
    const url = link("https://app.example.com", "/verify-email", token)
    expect(url).toBe("https://app.example.com/verify-email?token=a%2Bb%2Fc%3Dd%26e+f")
    expect(new URL(url).searchParams.get("token")).toBe(token)
    expect(link("https://app.example.com/base/", "reset-password", "t")).toBe(
      "https://app.example.com/base/reset-password?token=t",
    )
    expect(link("https://app.example.com/base", "/reset-password", "t")).toBe(
      "https://app.example.com/base/reset-password?token=t",
    )
  })

  it("escapes interpolated values in the HTML and keeps the link in both bodies", () => {
    const href = link("https://app.example.com", "/verify-email", "tok&<en>")
    const name = `<script>alert("x")</script> & O'Hara`
    for (const mail of [verification({ name, link: href }), passwordReset({ name, link: href })]) {
      expect(mail.html).not.toContain("<script>")
      expect(mail.html).toContain("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; O&#39;Hara")
      expect(mail.html).toContain(`href="${escapeHtml(href)}"`)
      expect(mail.text).toContain(href)
      expect(mail.text).toContain(name)
      expect(new URL(href).searchParams.get("token")).toBe("tok&<en>")
    }
    expect(verification({ name, link: href }).subject).toBe("Confirm your email address")
    expect(passwordReset({ name, link: href }).subject).toBe("Reset your password")
  })
})
