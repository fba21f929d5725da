import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** A request as the proxy saw it. `path` is the URL path as sent (percent-encoded), without the query. */
export interface ProxiedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
}

export type Fault =
  /** Answer with an S3 XML error body, without forwarding. */
  | { kind: 'status'; status: number; code: string; message?: string }
  /** Destroy the client's socket without answering. */
  | { kind: 'reset' }
  /**
   * Forward, send the response headers, then destroy the client's socket once `afterBytes` bytes of the
   * response body were passed on. A body no longer than that goes through whole.
   */
  | { kind: 'cut'; afterBytes: number };

export interface FaultRule {
  match: (request: ProxiedRequest) => boolean;
  fault: Fault;
  /** How many requests the rule applies to; default Infinity. */
  times?: number;
}

export interface FaultProxy {
  /** `http://127.0.0.1:PORT`: use as the S3 client's endpoint. */
  url: string;
  /** Every request received, in order of arrival. */
  requests: ProxiedRequest[];
  /** Adds a rule; the first matching rule with uses left applies. */
  inject(rule: FaultRule): void;
  /** Removes all rules (`requests` is kept). */
  clear(): void;
  /** Stops listening and ends every connection, client and upstream. */
  close(): Promise<void>;
}

/** Headers that belong to one connection, not to the message (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

const CLOSE_TIMEOUT_MS = 5_000;

/**
 * A streaming HTTP reverse proxy to `target` (e.g. an s3rver endpoint) that records requests and injects
 * faults. Headers go through unchanged, Host included, so SigV4 signatures stay valid.
 */
export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const upstream = new URL(target);
  if (upstream.protocol !== 'http:') throw new Error(`fault proxy: only http targets, got ${target}`);
  const agent = new Agent({ keepAlive: true });
  const rules: Array<{ rule: FaultRule; left: number }> = [];
  const requests: ProxiedRequest[] = [];
  const sockets = new Set<Socket>();

  const takeFault = (request: ProxiedRequest): Fault | undefined => {
    for (const entry of rules) {
      if (entry.left > 0 && entry.rule.match(request)) {
        entry.left -= 1;
        return entry.rule.fault;
      }
    }
    return undefined;
  };

  const handle = (req: IncomingMessage, res: ServerResponse, expectsContinue: boolean): void => {
    // Neither side may crash the proxy: errors end the exchange, nothing more.
    req.on('error', () => undefined);
    res.on('error', () => undefined);

    const url = new URL(req.url ?? '/', 'http://proxy.invalid');
    const proxied: ProxiedRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: url.searchParams,
      headers: { ...req.headers },
    };
    requests.push(proxied);

    const fault = takeFault(proxied);
    if (fault?.kind === 'reset') {
      req.socket.destroy();
      return;
    }
    if (fault?.kind === 'status') {
      answerError(req, res, expectsContinue, fault.status, fault.code, fault.message ?? fault.code);
      return;
    }
    forward(req, res, expectsContinue, fault?.kind === 'cut' ? fault.afterBytes : undefined);
  };

  const forward = (req: IncomingMessage, res: ServerResponse, expectsContinue: boolean, cutAfter: number | undefined): void => {
    const headers: OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
    }
    const proxyReq = httpRequest({
      protocol: upstream.protocol,
      hostname: upstream.hostname,
      port: upstream.port,
      method: req.method,
      path: req.url,
      // The client's Host header (kept in `headers`) is what it signed, so it goes upstream as is.
      headers,
      agent,
    });

    let settled = false;
    const abandon = (): void => {
      if (settled) return;
      settled = true;
      proxyReq.destroy();
      if (!res.writableEnded) res.destroy();
    };

    let continued = false;
    if (expectsContinue) {
      proxyReq.on('continue', () => {
        continued = true;
        res.writeContinue();
      });
    }
    proxyReq.on('error', () => {
      if (settled) return;
      if (!res.headersSent) {
        settled = true;
        answerError(req, res, expectsContinue && !continued, 502, 'BadGateway', 'The fault proxy could not reach its target');
      } else {
        abandon();
      }
    });
    // The client went away before its answer was complete: stop the upstream exchange too.
    res.on('close', () => {
      if (!res.writableFinished) abandon();
    });

    proxyReq.on('response', (upRes) => {
      upRes.on('error', abandon);
      const resHeaders: OutgoingHttpHeaders = {};
      for (const [name, value] of Object.entries(upRes.headers)) {
        if (value !== undefined && !HOP_BY_HOP.has(name)) resHeaders[name] = value;
      }
      res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, resHeaders);

      let passed = 0;
      const cut = (): void => {
        settled = true;
        upRes.destroy();
        proxyReq.destroy();
        res.socket?.destroy();
      };
      if (cutAfter !== undefined && cutAfter <= 0) {
        // Headers out first, then the connection goes.
        res.flushHeaders();
        res.socket?.write('', cut);
        return;
      }
      upRes.on('data', (chunk: Buffer) => {
        if (settled) return;
        if (cutAfter !== undefined && passed + chunk.length > cutAfter) {
          const rest = chunk.subarray(0, cutAfter - passed);
          passed = cutAfter;
          upRes.pause();
          res.write(rest, cut);
          return;
        }
        passed += chunk.length;
        if (!res.write(chunk)) {
          upRes.pause();
          res.once('drain', () => upRes.resume());
        }
      });
      upRes.on('end', () => {
        if (settled) return;
        settled = true;
        res.end();
      });
    });

    req.pipe(proxyReq);
  };

  const server = createServer((req, res) => handle(req, res, false));
  // Expect: 100-continue is answered by the target (relayed), or by a fault without reading the body.
  server.on('checkContinue', (req, res) => handle(req, res, true));
  server.on('clientError', (_err, socket) => socket.destroy());
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  let closed: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    inject(rule) {
      rules.push({ rule, left: rule.times ?? Infinity });
    },
    clear() {
      rules.length = 0;
    },
    close() {
      closed ??= (async () => {
        const done = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const socket of sockets) socket.destroy();
        agent.destroy();
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`fault proxy close timed out after ${CLOSE_TIMEOUT_MS} ms`)), CLOSE_TIMEOUT_MS);
        });
        await Promise.race([done, timeout]).finally(() => clearTimeout(timer));
      })();
      return closed;
    },
  };
}

/**
 * Answers with an S3 error document. Without Expect: 100-continue the request body is read (and dropped)
 * first, as a client still sending would otherwise see a broken pipe instead of the answer; with it, the
 * body is never sent and Node closes the connection after the answer.
 */
function answerError(
  req: IncomingMessage,
  res: ServerResponse,
  expectsContinue: boolean,
  status: number,
  code: string,
  message: string,
): void {
  const body = Buffer.from(
    `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${escapeXml(code)}</Code><Message>${escapeXml(message)}</Message></Error>`,
  );
  const send = (): void => {
    if (res.headersSent || res.destroyed) return;
    res.writeHead(status, { 'content-type': 'application/xml', 'content-length': body.length });
    res.end(body);
  };
  if (expectsContinue || req.readableEnded) {
    send();
    return;
  }
  req.once('end', send);
  req.once('error', () => res.destroy());
  req.resume();
}

function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}
