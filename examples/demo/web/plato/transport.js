// Links to a gateway: a WebSocket (browsers, Node 22+ or a given constructor) or a TCP socket (Node).
import { decodeFrame, FrameReader } from "./codec.js";
import { Code, PlatoError, errText } from "./errors.js";
/** LinkError is a link that could not be opened or broke; the server keeps the connection (§10). */
export class LinkError extends Error {
    constructor() {
        super(...arguments);
        this.name = "LinkError";
    }
}
/** isWebSocketURL says whether an endpoint is a WebSocket URL rather than a TCP host:port. */
export function isWebSocketURL(addr) {
    return /^wss?:\/\//i.test(addr);
}
/** dial opens a link to addr: a ws:// or wss:// URL over WebSocket, a host:port over TCP. */
export function dial(addr, o) {
    return isWebSocketURL(addr) ? dialWebSocket(addr, o) : dialTCP(addr, o);
}
class BaseLink {
    constructor(doWrite, doClose) {
        this.doWrite = doWrite;
        this.doClose = doClose;
        this.onFrame = () => { };
        this.onEnd = () => { };
        this.ended = false;
    }
    write(frame) {
        if (this.ended)
            return false;
        try {
            this.doWrite(frame);
            return true;
        }
        catch (e) {
            this.end(new LinkError(`writing: ${errText(e)}`));
            return false;
        }
    }
    close() {
        this.end(undefined);
    }
    end(err) {
        if (this.ended)
            return;
        this.ended = true;
        try {
            this.doClose();
        }
        catch {
            // already closed
        }
        this.onEnd(err);
    }
    frame(f) {
        if (!this.ended)
            this.onFrame(f);
    }
}
function dialWebSocket(url, o) {
    const WS = o.WebSocket ?? globalThis.WebSocket;
    if (!WS) {
        return Promise.reject(new TypeError("this runtime has no WebSocket (Node before 22): pass the WebSocket option (e.g. the ws package's), or use TCP endpoints"));
    }
    return new Promise((resolve, reject) => {
        let ws;
        try {
            ws = new WS(url);
        }
        catch (e) {
            reject(new LinkError(`connecting to ${url}: ${errText(e)}`));
            return;
        }
        ws.binaryType = "arraybuffer";
        const link = new BaseLink((b) => ws.send(b), () => ws.close());
        let open = false;
        const timer = setTimeout(() => {
            if (open)
                return;
            ws.onclose = ws.onerror = null;
            ws.close();
            reject(new LinkError(`connecting to ${url}: no answer within ${o.timeoutMs} ms`));
        }, o.timeoutMs);
        ws.onopen = () => {
            open = true;
            clearTimeout(timer);
            resolve(link);
        };
        ws.onmessage = (ev) => {
            const d = ev.data;
            if (!(d instanceof ArrayBuffer) && !ArrayBuffer.isView(d)) {
                link.end(new LinkError(`${url} sent a text message: Plato frames are binary`));
                return;
            }
            const b = d instanceof ArrayBuffer ? new Uint8Array(d) : new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
            let f;
            try {
                f = decodeFrame(b, o.maxBody);
            }
            catch (e) {
                link.end(e);
                return;
            }
            link.frame(f);
        };
        ws.onerror = () => {
            // The close event follows with the detail a browser is willing to give.
        };
        ws.onclose = (ev) => {
            clearTimeout(timer);
            const why = `${url} closed${ev && ev.code ? ` (WebSocket ${ev.code}${ev.reason ? " " + ev.reason : ""})` : ""}`;
            if (!open) {
                reject(new LinkError(`connecting to ${why}`));
                return;
            }
            // The gateway's close frame carries the Plato code as its reason (§15): it tells why even
            // when the Plato Close frame itself was missed.
            const code = ev && /^\d{1,5}$/.test(ev.reason ?? "") ? Number(ev.reason) : 0;
            link.end(code > 0 && code !== Code.ClientClose ? new PlatoError(code, "", `${url} closed the connection`) : new LinkError(why));
        };
    });
}
async function dialTCP(addr, o) {
    const isNode = typeof process !== "undefined" && !!process.versions?.node;
    if (!isNode)
        throw new TypeError(`${addr} is a TCP endpoint, and only Node can dial TCP: use transport "ws" in a browser`);
    const i = addr.lastIndexOf(":");
    const host = addr.slice(0, i).replace(/^\[(.*)\]$/, "$1");
    const port = Number(addr.slice(i + 1));
    if (i <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535)
        throw new LinkError(`endpoint ${JSON.stringify(addr)} is not host:port`);
    // A dynamic import, so that a browser bundle never loads node:net.
    const net = await import("node:net");
    return new Promise((resolve, reject) => {
        const sock = net.connect({ host, port });
        sock.setNoDelay(true);
        const reader = new FrameReader(o.maxBody);
        const link = new BaseLink((b) => sock.write(b), () => sock.destroy());
        let open = false;
        const timer = setTimeout(() => {
            sock.destroy();
            reject(new LinkError(`connecting to ${addr}: no answer within ${o.timeoutMs} ms`));
        }, o.timeoutMs);
        sock.once("connect", () => {
            open = true;
            clearTimeout(timer);
            resolve(link);
        });
        sock.on("data", (chunk) => {
            let frames;
            try {
                frames = reader.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
            }
            catch (e) {
                link.end(e);
                return;
            }
            for (const f of frames)
                link.frame(f);
        });
        sock.on("error", (e) => {
            clearTimeout(timer);
            if (!open)
                reject(new LinkError(`connecting to ${addr}: ${e.message}`));
            else
                link.end(new LinkError(`${addr}: ${e.message}`));
        });
        sock.on("close", () => {
            clearTimeout(timer);
            if (!open)
                reject(new LinkError(`connecting to ${addr}: closed`));
            else
                link.end(new LinkError(`${addr} closed the connection`));
        });
    });
}
