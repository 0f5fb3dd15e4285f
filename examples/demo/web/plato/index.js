// @platoim/plato: the Plato device SDK for browsers and Node (docs/protocol.md).
export * from "./codec.js";
export * from "./errors.js";
export * from "./ipconf.js";
export { dial, isWebSocketURL, LinkError } from "./transport.js";
export { PlatoClient, backoff, DEFAULT_IPCONF_URL, DEFAULT_PLATFORM } from "./client.js";
