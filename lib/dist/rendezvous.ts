// The rendezvous of a process group: a TCP server (run by `dsk launch`, or by anyone with
// `RendezvousServer.start`) and one client per rank. Newline-delimited JSON, no dependencies.
//
//   client -> server  {t:'hello', rank, world, pid, host, device}   join
//                     {t:'gather', key, value}                      collective: answered once every rank sent `key`
//                     {t:'hb'}                                       heartbeat
//                     {t:'bye'}                                      clean leave (its close is then no failure)
//   server -> client  {t:'ready', peers}                             everyone joined
//                     {t:'gathered', key, values}                    values in rank order
//                     {t:'hb'}                                       heartbeat (clients detect a dead server)
//                     {t:'failed', rank, reason}                     a rank died or stopped answering
//                     {t:'error', message}                           a bad hello (duplicate rank, wrong world size)
//
// Failure detection is what keeps a group from hanging: a rank whose connection closes without 'bye'
// has died; a rank whose heartbeats stop for `heartbeatTimeoutMs` (stopped, or stuck in a synchronous
// call) has stopped answering. The server tells every other rank, naming it; their pending collectives
// reject at once and lib/dist/group.ts stops their GPU kernels.
import { createServer, connect, type Server, type Socket } from 'node:net';
import { hostname } from 'node:os';

export interface PeerInfo {
  rank: number;
  pid: number;
  host: string;
  device: number;
}

type Msg = Record<string, unknown> & { t: string };

/** A failure of the process group, naming the rank that caused it (-1: the rendezvous server itself). */
export class DistError extends Error {
  constructor(
    message: string,
    readonly rank: number,
  ) {
    super(message);
    this.name = 'DistError';
  }
}

function lines(socket: Socket, onMsg: (m: Msg) => void): void {
  let buf = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buf += chunk;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (!line) continue;
      let m: Msg;
      try {
        m = JSON.parse(line) as Msg;
      } catch {
        continue;
      }
      onMsg(m);
    }
  });
}

function send(socket: Socket | undefined, m: Msg): void {
  if (socket && !socket.destroyed && socket.writable) socket.write(JSON.stringify(m) + '\n');
}

export function parseAddress(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  const port = Number(addr.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535)
    throw new TypeError(`rendezvous address must be host:port, got ${JSON.stringify(addr)}`);
  return { host: addr.slice(0, i).replace(/^\[|\]$/g, ''), port };
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

// ---------------------------------------------------------------------------------------------------
// Server

export interface ServerOptions {
  worldSize: number;
  /** Interface to listen on (default 127.0.0.1). */
  host?: string;
  /** Port (default 0: any free port). */
  port?: number;
  /** A rank silent this long is declared failed (default 15 s). */
  heartbeatTimeoutMs?: number;
  /** Ranks that have not joined this long after the server started fail the group (default 300 s). */
  joinTimeoutMs?: number;
  /** Called once per failed rank. */
  onFailure?: (rank: number, reason: string) => void;
}

interface ClientState {
  socket: Socket;
  info: PeerInfo;
  lastSeen: number;
  bye: boolean;
  failed: boolean;
}

/** The rendezvous server: joins ranks, answers collectives, and detects failed ranks. */
export class RendezvousServer {
  private readonly clients = new Map<number, ClientState>();
  private readonly gathers = new Map<string, Map<number, unknown>>();
  private readonly sockets = new Set<Socket>();
  private ready = false;
  private timer: NodeJS.Timeout | undefined;
  /** Ranks declared failed, with the reason. */
  readonly failures: { rank: number; reason: string }[] = [];

  private constructor(
    private readonly server: Server,
    readonly host: string,
    readonly port: number,
    private readonly o: Required<Omit<ServerOptions, 'onFailure' | 'host' | 'port'>> & Pick<ServerOptions, 'onFailure'>,
  ) {}

  /** `host:port` for DSK_RENDEZVOUS. */
  get address(): string {
    return `${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.port}`;
  }

  static start(options: ServerOptions): Promise<RendezvousServer> {
    const host = options.host ?? '127.0.0.1';
    const o = {
      worldSize: options.worldSize,
      heartbeatTimeoutMs: options.heartbeatTimeoutMs ?? 15_000,
      joinTimeoutMs: options.joinTimeoutMs ?? 300_000,
      onFailure: options.onFailure,
    };
    if (!Number.isInteger(o.worldSize) || o.worldSize < 1) throw new RangeError(`worldSize must be a positive integer, got ${o.worldSize}`);
    return new Promise((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(options.port ?? 0, host, () => {
        server.off('error', reject);
        const addr = server.address();
        const port = typeof addr === 'object' && addr ? addr.port : 0;
        const rs = new RendezvousServer(server, host, port, o);
        server.on('connection', (s) => rs.accept(s));
        rs.startTimer();
        resolve(rs);
      });
    });
  }

  private startTimer(): void {
    const started = Date.now();
    const period = Math.max(50, Math.min(1000, this.o.heartbeatTimeoutMs / 4));
    this.timer = setInterval(() => {
      const now = Date.now();
      for (const c of this.clients.values()) {
        send(c.socket, { t: 'hb' });
        if (!c.bye && !c.failed && now - c.lastSeen > this.o.heartbeatTimeoutMs)
          this.fail(c.info.rank, `stopped answering (no heartbeat for ${seconds(now - c.lastSeen)})`);
      }
      if (!this.ready && now - started > this.o.joinTimeoutMs) {
        for (let r = 0; r < this.o.worldSize; r++)
          if (!this.clients.has(r)) {
            this.fail(r, `did not join within ${seconds(this.o.joinTimeoutMs)}`);
            break;
          }
      }
    }, period);
    this.timer.unref();
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket);
    socket.setNoDelay(true);
    let rank = -1;
    socket.on('error', () => {});
    socket.on('close', () => {
      this.sockets.delete(socket);
      const c = this.clients.get(rank);
      if (c && c.socket === socket && !c.bye && !c.failed) this.fail(rank, 'exited or crashed (its connection closed)');
    });
    lines(socket, (m) => {
      if (m.t === 'hello') {
        const r = Number(m.rank), w = Number(m.world);
        if (w !== this.o.worldSize) return send(socket, { t: 'error', message: `world size ${w} differs from the server's ${this.o.worldSize}` });
        if (!Number.isInteger(r) || r < 0 || r >= w) return send(socket, { t: 'error', message: `rank ${r} is outside [0, ${w})` });
        if (this.clients.has(r)) return send(socket, { t: 'error', message: `rank ${r} joined twice` });
        rank = r;
        this.clients.set(r, {
          socket,
          info: { rank: r, pid: Number(m.pid), host: String(m.host), device: Number(m.device) },
          lastSeen: Date.now(),
          bye: false,
          failed: false,
        });
        for (const f of this.failures) send(socket, { t: 'failed', rank: f.rank, reason: f.reason });
        if (this.clients.size === this.o.worldSize) {
          this.ready = true;
          const peers = [...this.clients.values()].map((c) => c.info).sort((a, b) => a.rank - b.rank);
          for (const c of this.clients.values()) send(c.socket, { t: 'ready', peers });
        }
        return;
      }
      const c = this.clients.get(rank);
      if (!c || c.socket !== socket) return;
      c.lastSeen = Date.now();
      if (m.t === 'gather') {
        const key = String(m.key);
        let g = this.gathers.get(key);
        if (!g) this.gathers.set(key, (g = new Map()));
        g.set(rank, m.value ?? null);
        if (g.size === this.o.worldSize) {
          this.gathers.delete(key);
          const values = [...g.entries()].sort((a, b) => a[0] - b[0]).map((e) => e[1]);
          for (const cc of this.clients.values()) send(cc.socket, { t: 'gathered', key, values });
        }
      } else if (m.t === 'bye') {
        c.bye = true;
        socket.end();
      }
    });
  }

  private fail(rank: number, reason: string): void {
    const c = this.clients.get(rank);
    if (c) c.failed = true;
    if (this.failures.some((f) => f.rank === rank)) return;
    this.failures.push({ rank, reason });
    for (const cc of this.clients.values()) send(cc.socket, { t: 'failed', rank, reason });
    this.o.onFailure?.(rank, reason);
  }

  /** Stops listening and drops every connection. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

// ---------------------------------------------------------------------------------------------------
// Client

export interface ClientOptions {
  address: string;
  rank: number;
  worldSize: number;
  device?: number;
  /** How long to keep trying to connect and to wait for every rank to join (default 300 s). */
  joinTimeoutMs?: number;
  /** Heartbeat period (default heartbeatTimeoutMs / 4, at most 1 s). */
  heartbeatMs?: number;
  /** The server silent this long fails the group (default 15 s). */
  heartbeatTimeoutMs?: number;
  /** A collective that not every rank reaches within this fails (default 600 s). */
  collectiveTimeoutMs?: number;
}

interface Pending {
  resolve: (v: unknown[]) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** One rank's connection to the rendezvous. */
export class RendezvousClient {
  /** Every rank's pid, host and device, in rank order (after `connect`). */
  peers: PeerInfo[] = [];
  /** The first failure seen, if any; every later collective rejects with it. */
  failure: DistError | undefined;
  private readonly pending = new Map<string, Pending>();
  private readonly listeners: ((e: DistError) => void)[] = [];
  private seq = 0;
  private lastHeard = Date.now();
  private hbTimer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    private readonly socket: Socket,
    readonly rank: number,
    readonly worldSize: number,
    private readonly o: Required<Omit<ClientOptions, 'device' | 'address' | 'rank' | 'worldSize'>>,
  ) {}

  /** Connects (retrying until the server is up), joins, and resolves once every rank has joined. */
  static async connect(options: ClientOptions): Promise<RendezvousClient> {
    const { host, port } = parseAddress(options.address);
    const hbTimeout = options.heartbeatTimeoutMs ?? 15_000;
    const o = {
      joinTimeoutMs: options.joinTimeoutMs ?? 300_000,
      heartbeatTimeoutMs: hbTimeout,
      heartbeatMs: options.heartbeatMs ?? Math.max(20, Math.min(1000, hbTimeout / 4)),
      collectiveTimeoutMs: options.collectiveTimeoutMs ?? 600_000,
    };
    const deadline = Date.now() + o.joinTimeoutMs;
    let socket: Socket | undefined;
    let lastErr = '';
    while (!socket) {
      try {
        socket = await new Promise<Socket>((resolve, reject) => {
          const s = connect({ host, port });
          s.once('connect', () => { s.off('error', reject); resolve(s); });
          s.once('error', reject);
        });
      } catch (e) {
        lastErr = (e as Error).message;
        if (Date.now() > deadline)
          throw new DistError(`dist.init: rank ${options.rank} could not reach the rendezvous at ${options.address} within ${seconds(o.joinTimeoutMs)} (${lastErr})`, -1);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    socket.setNoDelay(true);
    const c = new RendezvousClient(socket, options.rank, options.worldSize, o);
    return c.join(options.device ?? -1, deadline);
  }

  private join(device: number, deadline: number): Promise<RendezvousClient> {
    return new Promise((resolve, reject) => {
      let joined = false;
      const joinTimer = setTimeout(() => {
        if (!joined) {
          const e = new DistError(`dist.init: not every rank joined the group within ${seconds(this.o.joinTimeoutMs)}`, -1);
          this.setFailure(e);
          reject(e);
        }
      }, Math.max(0, deadline - Date.now()));
      this.socket.on('error', () => {});
      this.socket.on('close', () => {
        if (!this.closed) this.setFailure(new DistError(`dist: the rendezvous server closed the connection (the launcher exited?)`, -1));
        if (!joined) { clearTimeout(joinTimer); reject(this.failure); }
      });
      lines(this.socket, (m) => {
        this.lastHeard = Date.now();
        switch (m.t) {
          case 'ready':
            joined = true;
            clearTimeout(joinTimer);
            this.peers = m.peers as PeerInfo[];
            this.refresh();
            resolve(this);
            break;
          case 'gathered': {
            const p = this.pending.get(String(m.key));
            if (p) {
              this.pending.delete(String(m.key));
              clearTimeout(p.timer);
              this.refresh();
              p.resolve(m.values as unknown[]);
            }
            break;
          }
          case 'failed': {
            const r = Number(m.rank);
            const who = r === this.rank ? `this rank (${r})` : `rank ${r}`;
            const e = new DistError(`dist: ${who} ${String(m.reason)}; the process group is unusable`, r);
            this.setFailure(e);
            if (!joined) { clearTimeout(joinTimer); reject(e); }
            break;
          }
          case 'error': {
            const e = new DistError(`dist.init: the rendezvous refused rank ${this.rank}: ${String(m.message)}`, -1);
            this.setFailure(e);
            clearTimeout(joinTimer);
            reject(e);
            break;
          }
        }
      });
      send(this.socket, { t: 'hello', rank: this.rank, world: this.worldSize, pid: process.pid, host: hostname(), device });
      this.hbTimer = setInterval(() => {
        send(this.socket, { t: 'hb' });
        // Checked after pending input is read: if this process was stopped, the server's verdict is waiting there.
        setImmediate(() => {
          const silent = Date.now() - this.lastHeard;
          if (silent > this.o.heartbeatTimeoutMs && !this.failure && !this.closed)
            this.setFailure(new DistError(`dist: the rendezvous server stopped answering (nothing for ${seconds(silent)})`, -1));
        });
      }, this.o.heartbeatMs);
      this.hbTimer.unref();
    });
  }

  /** Keeps the process alive only while a collective is pending. */
  private refresh(): void {
    if (this.pending.size && !this.closed) this.socket.ref();
    else this.socket.unref();
  }

  private setFailure(e: DistError): void {
    if (!this.failure) this.failure = e;
    for (const [key, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(key);
      p.reject(e);
    }
    this.refresh();
    for (const l of this.listeners.splice(0)) l(e);
  }

  /** Called once, at the first failure. */
  onFailure(listener: (e: DistError) => void): void {
    if (this.failure) listener(this.failure);
    else this.listeners.push(listener);
  }

  /** Every rank's `value`, in rank order. Every rank must call the collectives in the same order. */
  allGather(value: unknown, what = 'allGather'): Promise<unknown[]> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new DistError(`dist.${what}: the process group was destroyed`, -1));
    const key = `c${++this.seq}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(key);
        this.refresh();
        reject(new DistError(`dist.${what}: not every rank reached collective #${this.seq} within ${seconds(this.o.collectiveTimeoutMs)} (do all ranks call the same collectives in the same order?)`, -1));
      }, this.o.collectiveTimeoutMs);
      timer.unref();
      this.pending.set(key, { resolve, reject, timer });
      this.refresh();
      send(this.socket, { t: 'gather', key, value });
    });
  }

  /** Leaves the group cleanly (its disconnection is then no failure). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.hbTimer) clearInterval(this.hbTimer);
    send(this.socket, { t: 'bye' });
    this.socket.end();
    this.socket.unref();
  }
}
