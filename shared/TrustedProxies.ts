import { BlockList, isIP } from "node:net"

/** True when the address belongs to a trusted proxy (the gateway, a load balancer). */
export type TrustedProxies = (address: string) => boolean

// An IPv4 client of a dual-stack socket shows as ::ffff:a.b.c.d: it matches the IPv4 entries.
const unmapped = (address: string) =>
  address.startsWith("::ffff:") && isIP(address.slice(7)) === 4 ? address.slice(7) : address

// An entry as an address and an optional prefix length; `::ffff:a.b.c.d/n` becomes `a.b.c.d/(n - 96)` (n < 96 would
// be an IPv6 range around every IPv4-mapped address: refused by entryProblem).
const parse = (
  entry: string,
): { readonly address: string; readonly bits: string | undefined; readonly mapped: boolean } => {
  const [address = "", bits, ...rest] = entry.split("/")
  if (rest.length > 0) return { address: "", bits, mapped: false }
  const plain = unmapped(address)
  if (plain === address || bits === undefined) return { address: plain, bits, mapped: plain !== address }
  return { address: plain, bits: /^\d{1,3}$/.test(bits) ? String(Number(bits) - 96) : bits, mapped: true }
}

const family = (address: string) => (isIP(address) === 6 ? "ipv6" : "ipv4")

/** Why an entry of `TRUSTED_PROXIES` is not an address or a CIDR range, or undefined when it is one. */
export const entryProblem = (entry: string): string | undefined => {
  const { address, bits, mapped } = parse(entry)
  const version = isIP(address)
  if (version === 0) return `"${entry}" is not an IP address or a CIDR range (10.0.0.0/8)`
  if (bits === undefined) return undefined
  const max = version === 4 ? 32 : 128
  const prefix = Number(bits)
  if (!/^-?\d{1,3}$/.test(bits) || prefix < 0 || prefix > max) {
    return `"${entry}": the prefix length must be ${mapped ? "96-128" : `0-${max}`}`
  }
  return undefined
}

/**
 * The matcher of `TRUSTED_PROXIES` entries: exact addresses or CIDR ranges, IPv4 and IPv6 (`10.0.0.0/8`, `fd00::/8`;
 * in Kubernetes the pods' range, as pod addresses change). Entries are checked at start (`entryProblem`).
 */
export const trustedProxies = (entries: ReadonlyArray<string>): TrustedProxies => {
  if (entries.length === 0) return () => false
  const list = new BlockList()
  for (const entry of entries) {
    const { address, bits } = parse(entry)
    if (bits === undefined) list.addAddress(address, family(address))
    else list.addSubnet(address, Number(bits), family(address))
  }
  return (address) => {
    const plain = unmapped(address)
    return isIP(plain) !== 0 && list.check(plain, family(plain))
  }
}
