import { type ChildProcess, execFile, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { connect } from "node:net"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { promisify } from "node:util"
import { freePort } from "./ports.ts"

const repoRoot = resolve(import.meta.dirname, "../..")

/** A single-node Kafka (KRaft) owned by one test: its own ports and data dir, stopped and started at will. */
export interface PrivateKafka {
  /** `127.0.0.1:<port>`, the broker listener. */
  readonly broker: string
  readonly port: number
  /** Starts the JVM (formatting the data dir the first time); resolves once the port accepts connections. */
  readonly start: () => Promise<void>
  /** Kills the JVM with SIGKILL (a crash: no controlled shutdown); the data dir is kept. */
  readonly kill: () => Promise<void>
  /** Kills the broker if running and deletes its data dir. */
  readonly dispose: () => Promise<void>
  /** The broker's own log (server.log), for failure messages. */
  readonly logFile: string
}

/**
 * The broker jars infra/up.sh downloaded: `KAFKA_LIBS`, else the newest `libs-*` under `INFRA_DIR/kafka`
 * (default .infra/kafka).
 */
export const kafkaLibs = (): string => {
  if (process.env.KAFKA_LIBS) return process.env.KAFKA_LIBS
  const dir = join(process.env.INFRA_DIR ?? join(repoRoot, ".infra"), "kafka")
  const libs = (existsSync(dir) ? readdirSync(dir) : [])
    .filter((name) => name.startsWith("libs-") && existsSync(join(dir, name, ".complete")))
    .sort()
  const newest = libs.at(-1)
  if (newest === undefined) throw new Error(`no Kafka jars in ${dir}: run bash infra/up.sh kafka first`)
  return join(dir, newest)
}

const portOpen = (port: number) =>
  new Promise<boolean>((resolvePort) => {
    const socket = connect({ host: "127.0.0.1", port })
    socket.once("connect", () => {
      socket.destroy()
      resolvePort(true)
    })
    socket.once("error", () => resolvePort(false))
  })

const java = () => (process.env.JAVA_HOME ? join(process.env.JAVA_HOME, "bin", "java") : "java")

// The same JVM settings as infra/up.sh (small heap, C1 and the serial GC: faster start on a small machine).
const jvmOptions = ["-Xms128m", "-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true"]

/**
 * Prepares (does not start) a private broker on free ports with a data dir under the system's temp dir, configured
 * like infra/up.sh's shared one. The shared broker is never touched: outage tests stop and start this one.
 */
export const privateKafka = async (): Promise<PrivateKafka> => {
  const libs = kafkaLibs()
  const port = await freePort()
  let controllerPort = await freePort()
  while (controllerPort === port) controllerPort = await freePort()
  const dir = mkdtempSync(join(tmpdir(), "private-kafka-"))
  const config = join(dir, "server.properties")
  const logs = join(dir, "logs")
  writeFileSync(
    config,
    [
      "process.roles=broker,controller",
      "node.id=1",
      `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
      `listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
      `advertised.listeners=PLAINTEXT://127.0.0.1:${port}`,
      "controller.listener.names=CONTROLLER",
      "inter.broker.listener.name=PLAINTEXT",
      "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
      `log.dirs=${join(dir, "data")}`,
      "num.partitions=3",
      "auto.create.topics.enable=false",
      "group.initial.rebalance.delay.ms=0",
      "offsets.topic.replication.factor=1",
      "offsets.topic.num.partitions=3",
      "transaction.state.log.replication.factor=1",
      "transaction.state.log.min.isr=1",
      "transaction.state.log.num.partitions=3",
      "share.coordinator.state.topic.replication.factor=1",
      "share.coordinator.state.topic.min.isr=1",
      "num.network.threads=2",
      "num.io.threads=2",
      "",
    ].join("\n"),
  )
  const common = [
    ...jvmOptions,
    `-Dkafka.logs.dir=${logs}`,
    `-Dlog4j2.configurationFile=${join(repoRoot, "infra/kafka/log4j2.xml")}`,
    "-cp",
    `${libs}/*`,
  ]
  let formatted = false
  let jvm: ChildProcess | undefined

  const start = async () => {
    if (jvm !== undefined) return
    if (!formatted) {
      // A cluster id is 16 random bytes in base64url; one starting with "-" would be read as an option.
      let clusterId = "-"
      while (clusterId.startsWith("-")) clusterId = randomBytes(16).toString("base64url")
      await promisify(execFile)(java(), [
        ...common,
        "kafka.tools.StorageTool",
        "format",
        "--ignore-formatted",
        "-t",
        clusterId,
        "-c",
        config,
      ])
      formatted = true
    }
    const child = spawn(java(), [...common, "kafka.Kafka", config], { stdio: "ignore" })
    jvm = child
    // A test process that ends without disposing (a crash, a timeout) must not leave the broker running.
    const orphan = () => child.kill("SIGKILL")
    process.once("exit", orphan)
    child.once("exit", () => process.off("exit", orphan))
    const exited = new Promise<void>((resolveExit) => child.once("exit", () => resolveExit()))
    child.once("exit", () => {
      if (jvm === child) jvm = undefined
    })
    const deadline = Date.now() + 90_000
    while (!(await portOpen(port))) {
      if (jvm !== child)
        throw new Error(`the private Kafka broker exited during start-up; see ${join(logs, "server.log")}`)
      if (Date.now() > deadline) {
        child.kill("SIGKILL")
        await exited
        throw new Error(`the private Kafka broker did not listen within 90 s; see ${join(logs, "server.log")}`)
      }
      await new Promise((r) => setTimeout(r, 50))
    }
  }

  const kill = async () => {
    const child = jvm
    if (child === undefined) return
    const exited = new Promise<void>((resolveExit) => child.once("exit", () => resolveExit()))
    child.kill("SIGKILL")
    await exited
  }

  const dispose = async () => {
    await kill()
    rmSync(dir, { recursive: true, force: true })
  }

  return { broker: `127.0.0.1:${port}`, port, start, kill, dispose, logFile: join(logs, "server.log") }
}
