// The registry moved to the kernel (the gRPC clients use it too); the gateway's modules import it from here.
export { ServiceRegistry } from "../../shared/ServiceRegistry.ts"
