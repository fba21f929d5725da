// `npm run bench`: ocireg beside CNCF distribution (when installed), every workload on both,
// interleaved, several repetitions; a table on stdout and a JSON file under bench/results/.
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { SHAPE_WORKLOADS, USAGE, parseArgs, type Options } from './args.js';
import { authFloodWorkload, authWorkload } from './auth.js';
import { dockerWorkload } from './docker.js';
import { keepAliveAgent } from './http.js';
import { machineInfo, measureLimits, type Limits } from './machine.js';
import { Results } from './metrics.js';
import { killRunning, which } from './proc.js';
import { makeSmallImage, type SmallImage } from './registry.js';
import { cpuDuring } from './cpu.js';
import { parseProcStatus } from './memory.js';
import {
  abTableRows,
  cpuTableRows,
  fileTimestamp,
  metricsJson,
  renderMachine,
  renderNotes,
  renderTable,
  shapeRatio,
  shapeTableRows,
  tableRows,
  type CpuRecord,
  type JsonReport,
} from './report.js';
import { shapesOf, startShape, type ShapeProcess, type ShapeServer } from './shapes.js';
import { nodeFlagsOf, startServer, type Server } from './servers.js';
import { generatorFor } from './load.js';
import { formatNumber, sizeText } from './stats.js';
import {
  catalogWorkload,
  chunkedWorkload,
  manifestGenerators,
  manifestWorkload,
  pullWorkload,
  pushWorkload,
  setupSmallImage,
  smallBlobsWorkload,
  tagsWorkload,
  type BenchContext,
  type BigBlob,
  type Workload,
} from './workloads.js';

const PROJECT_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const RESULTS_DIR = join(PROJECT_ROOT, 'bench', 'results');

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

function errorText(err: unknown): string {
  return err instanceof Error ? (err.name === 'BenchError' ? err.message : (err.stack ?? err.message)) : String(err);
}

/** `size` random bytes to `path`, 1 MiB at a time; returns the digest. */
async function writeRandomFile(path: string, size: number): Promise<string> {
  const hash = createHash('sha256');
  async function* pieces() {
    for (let left = size; left > 0; ) {
      const piece = randomBytes(Math.min(left, 1024 * 1024));
      left -= piece.length;
      hash.update(piece);
      yield piece;
    }
  }
  await pipeline(pieces, createWriteStream(path));
  return `sha256:${hash.digest('hex')}`;
}

/** Whether a workload also runs on the other shapes of ours (--index postgres, --nodes N). */
function shaped(w: Workload): boolean {
  return !w.variants && SHAPE_WORKLOADS.includes(w.name);
}

/** The URL with its password, if any, replaced (for the saved JSON). */
function withoutPassword(url: string | undefined): string | undefined {
  return url?.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:(hidden)@');
}

/** VmRSS in MiB of a process now (null once it is gone). */
async function rssMiB(pid: number): Promise<number | null> {
  try {
    const rss = parseProcStatus(await readFile(`/proc/${pid}/status`, 'utf8')).rss;
    return rss === undefined ? null : rss / 1024 ** 2;
  } catch {
    return null;
  }
}

function allWorkloads(opts: Options): Workload[] {
  return [
    pushWorkload(opts),
    chunkedWorkload(opts),
    pullWorkload(opts),
    manifestWorkload(opts),
    smallBlobsWorkload(),
    tagsWorkload(opts.listingCount),
    catalogWorkload(opts.listingCount),
    authWorkload(opts),
    authFloodWorkload(opts),
    dockerWorkload(opts),
  ];
}

async function main(argv: string[]): Promise<number> {
  let opts: Options;
  try {
    opts = parseArgs(argv);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (opts.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  // The PostgreSQL shapes need a server to make their databases on: say so before starting anything.
  if (opts.index === 'postgres' && opts.only.some((n) => SHAPE_WORKLOADS.includes(n)) && !(opts.postgresUrl ?? process.env.OCIREG_TEST_POSTGRES_URL)) {
    log('--index postgres and --nodes need a PostgreSQL server: give --postgres-url or set OCIREG_TEST_POSTGRES_URL (bash scripts/postgres.sh start DIR PORT prints one)');
    return 2;
  }
  const ourCli = join(PROJECT_ROOT, 'dist', 'cli.js');
  if (!existsSync(ourCli)) {
    log(`${ourCli} is missing: run npm run build first (npm run bench does)`);
    return 1;
  }

  const started = new Date();
  const parent = resolve(opts.dir ?? tmpdir());
  await mkdir(parent, { recursive: true });
  const dir = await mkdtemp(join(parent, 'ocireg-bench-'));
  const servers: Server[] = [];
  const workloads = allWorkloads(opts).filter((w) => opts.only.includes(w.name));
  // Ours in other shapes (another index, store or number of nodes), for the workloads where that makes sense.
  const shapeSpecs = workloads.some(shaped) ? shapesOf(opts) : [];
  const shapes: ShapeServer[] = [];
  const cpuLog: CpuRecord[] = [];

  let cleaned: Promise<void> | undefined;
  const cleanup = () =>
    (cleaned ??= (async () => {
      killRunning();
      for (const w of workloads) await w.cleanup?.(ctx).catch((err: unknown) => log(`cleanup of ${w.name}: ${errorText(err)}`));
      await Promise.all(servers.map((s) => s.stop()));
      if (opts.keep) log(`kept ${dir}`);
      else await rm(dir, { recursive: true, force: true }).catch((err: unknown) => log(`could not remove ${dir}: ${errorText(err)}`));
    })());
  let interrupted = false;
  const onSignal = (signal: string) => {
    interrupted = true;
    log(`\n${signal}: stopping the servers and removing ${opts.keep ? 'nothing' : dir}`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', () => onSignal('SIGINT'));
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  // last resort, should the bench die without cleaning up
  process.once('exit', () => {
    for (const s of servers) if (!s.exited()) process.kill(s.pid, 'SIGKILL');
  });

  const results = new Results(workloads.flatMap((w) => w.metrics));
  let limits: Limits | undefined;
  let bigBlob: Promise<BigBlob> | undefined;
  const smallImages = new Map<Server, Promise<SmallImage>>();
  const image = makeSmallImage(randomBytes(4096), `ocireg-bench-${randomBytes(4).toString('hex')}`);
  const ctx: BenchContext = {
    opts,
    dir,
    results,
    get limits() {
      return limits;
    },
    log,
    bigBlob: () =>
      (bigBlob ??= (async () => {
        const file = join(dir, 'big.bin');
        log(`writing a ${sizeText(opts.size)} random blob`);
        const digest = await writeRandomFile(file, opts.size);
        return { file, size: opts.size, digest };
      })()),
    smallImage: (srv) => {
      let p = smallImages.get(srv);
      if (!p) {
        const agent = keepAliveAgent(1);
        p = setupSmallImage(srv, image, agent)
          .then(() => image)
          .finally(() => agent.destroy());
        smallImages.set(srv, p);
      }
      return p;
    },
    bigBlobRepo: new Map(),
  };

  const skipped: Record<string, string> = {};
  try {
    const info = await machineInfo(PROJECT_ROOT);
    log(`bench folder ${dir}; ${opts.reps} repetitions; workloads ${opts.only.join(', ')}`);

    if (opts.only.includes('limits')) {
      log(`machine limits over ${sizeText(opts.size)} (servers not started yet)`);
      limits = await measureLimits(dir, opts.size);
      log(`  SHA-256 one core ${formatNumber(limits.sha256MBps)} MB/s; disk write+fsync ${formatNumber(limits.diskWriteMBps)} MB/s`);
    }

    // Ours runs as `npm start` runs it, with the same Node flags.
    const pkg = JSON.parse(await readFile(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { scripts?: { start?: string } };
    const ourNodeFlags = nodeFlagsOf(pkg.scripts?.start ?? '');
    const spec = { dir, logLevel: opts.logLevel, ourCli, ourNodeFlags, projectRoot: PROJECT_ROOT };
    // The shared servers, ours and distribution, unless every workload chosen is an ours-only A/B.
    const shared: Server[] = [];
    if (workloads.some((w) => !w.variants)) {
      shared.push(await startServer({ ...spec, kind: 'ours' }));
      servers.push(...shared);
      if (which('docker-registry')) {
        shared.push(await startServer({ ...spec, kind: 'distribution' }));
        servers.push(shared[1]!);
      } else log('docker-registry is not on PATH: measuring ours alone');
      for (const s of shared) log(`${s.label}: pid ${s.pid}, ${s.base}, log ${s.logFile}`);
    }
    for (const shapeSpec of shapeSpecs) {
      if (interrupted) break;
      log(`${shapeSpec.label}: starting`);
      const sh = await startShape(shapeSpec, { ...spec, postgresUrl: opts.postgresUrl ?? process.env.OCIREG_TEST_POSTGRES_URL });
      shapes.push(sh);
      servers.push(sh.server);
      log(`${sh.server.label}: pids ${(sh.server.pids ?? [sh.server.pid]).join(', ')}, ${sh.server.base}, log ${sh.server.logFile}`);
    }
    const shapeServers = shapes.map((sh) => sh.server);
    /** The processes behind a server, by role, for the CPU figures. */
    const processesOf = async (srv: Server): Promise<ShapeProcess[]> => {
      const sh = shapes.find((x) => x.server === srv);
      return sh ? sh.processes() : [{ role: 'node', pid: srv.pid }];
    };
    // An A/B workload's own configurations of ours.
    const serversOf = new Map<Workload, Server[]>();

    const active: Workload[] = [];
    for (const w of workloads) {
      if (interrupted) break;
      try {
        const reason = await w.prepare?.(ctx);
        if (reason) {
          skipped[w.name] = reason;
          log(`${w.name}: skipped: ${reason}`);
          continue;
        }
        let own = shaped(w) ? [...shared, ...shapeServers] : shared;
        if (w.variants) {
          own = [];
          serversOf.set(w, own);
          for (const variant of await w.variants(ctx)) {
            const srv = await startServer({ ...spec, kind: 'ours', variant });
            own.push(srv);
            servers.push(srv);
            log(`${w.name}: ${srv.label}: pid ${srv.pid}, ${srv.base}, log ${srv.logFile}`);
          }
        }
        for (const srv of own) {
          if (w.setup) {
            log(`${w.name}: setting up on ${srv.label}`);
            await w.setup(ctx, srv);
          }
        }
        active.push(w);
      } catch (err) {
        if (interrupted) break;
        results.fail(w.name, errorText(err));
        log(`${w.name}: FAILED in setup:\n${errorText(err)}`);
      }
    }

    const repetitions: JsonReport['repetitions'] = [];
    for (let rep = 0; rep < opts.reps && !interrupted; rep++) {
      const alternate = (list: readonly Server[]) => (rep % 2 === 0 ? [...list] : [...list].reverse());
      const order = alternate(shared);
      const orders: Record<string, string[]> = {};
      for (const [w, own] of serversOf) orders[w.name] = alternate(own).map((s) => s.name);
      const withShapes = alternate([...shared, ...shapeServers]);
      repetitions.push({
        rep,
        order: order.map((s) => s.kind),
        ...(serversOf.size > 0 ? { workloads: orders } : {}),
        ...(shapes.length > 0 ? { shapes: withShapes.map((s) => s.name) } : {}),
      });
      log(`\nrepetition ${rep + 1}/${opts.reps}${order.length > 0 ? `: ${order.map((s) => s.label).join(' first, then ')}` : ''}`);
      for (const w of active) {
        if (interrupted) break;
        if (results.failures.has(w.name)) continue;
        const own = serversOf.get(w);
        const withOthers = shapes.length > 0 && shaped(w);
        log(`${w.name}:${own && own.length > 1 ? ` ${alternate(own).map((s) => s.label).join(' first, then ')}` : withOthers ? ` ${withShapes.map((s) => s.name).join(', ')}` : ''}`);
        try {
          if (withOthers) {
            // One server at a time (as eachServer does), each with the CPU its processes used meanwhile.
            for (const srv of withShapes) {
              const { cpu } = await cpuDuring(() => processesOf(srv), () => w.rep(ctx, rep, [srv]));
              cpuLog.push({ workload: w.name, rep, server: srv.name, ...cpu });
            }
          } else await w.rep(ctx, rep, own ? alternate(own) : order);
        } catch (err) {
          if (interrupted) break;
          results.fail(w.name, errorText(err));
          log(`${w.name}: FAILED:\n${errorText(err)}`);
        }
      }
    }

    if (interrupted) return 130;
    // What each node (and the processes beside it) holds once the workloads are done.
    const memory: NonNullable<JsonReport['shapes']>['memory'] = {};
    if (shapes.length > 0) {
      for (const srv of [...shared, ...shapeServers]) {
        memory[srv.name] = await Promise.all((await processesOf(srv)).map(async (p) => ({ ...p, rssMiB: await rssMiB(p.pid) })));
      }
    }
    const finished = new Date();
    const summaries = results.summaries();
    const withDistribution = servers.some((s) => s.kind === 'distribution');
    const out: string[] = [''];
    out.push(...renderMachine(info, limits, summaries.find((s) => s.def.id === 'push.mono')));
    out.push(
      `run: ${opts.reps} repetitions, interleaved; medians shown; "× better" is ours/theirs for higher-is-better figures and theirs/ours for lower-is-better (>1: ours better)`,
    );
    out.push('units: MB = 10^6 bytes; memory in MiB (2^20 bytes); latencies are medians over repetitions of each repetition\'s figure');
    if (opts.only.includes('manifest')) out.push(`manifest load: ${manifestGenerators(opts)}`);
    if (opts.only.some((n) => n === 'auth' || n === 'authflood')) out.push(`auth loads (manifest HEAD): ${generatorFor('HEAD', opts.load)}`);
    if (workloads.some((w) => !w.variants)) out.push('', renderTable(tableRows(summaries, { withDistribution })));
    if (shapes.length > 0) {
      out.push('', renderTable(shapeTableRows(summaries, shapeSpecs), 2));
      out.push(
        `shapes: ${shapeSpecs.map((sh) => `${sh.column} = ${sh.label}`).join('; ')}; ours = the single node on the filesystem with SQLite. ` +
          '"× ours" is the shape\'s figure over ours\'s (ours\'s over the shape\'s for lower-is-better figures): below 1, the shape is slower',
      );
      const cpuRows = cpuTableRows(cpuLog, (name) => name);
      if (cpuRows.length > 0) out.push('', renderTable(cpuRows, 2));
      const mem = Object.entries(memory).map(
        ([name, list]) =>
          `${name}: ${list
            .filter((p) => p.role !== 'postgres')
            .map((p) => `${p.role} ${p.rssMiB === null ? '—' : formatNumber(p.rssMiB)}`)
            .join(', ')}`,
      );
      out.push('', `resident memory after the run, MiB (PostgreSQL's backends not counted): ${mem.join('; ')}`);
    }
    const ab = abTableRows(summaries);
    if (ab.length > 0) out.push('', renderTable(ab));
    const notes = renderNotes(summaries);
    if (notes.length > 0) out.push('', 'notes:', ...notes);
    for (const [name, reason] of Object.entries(skipped)) out.push(`skipped ${name}: ${reason}`);
    for (const [name, message] of results.failures) out.push(`FAILED ${name}: ${message.split('\n')[0]}`);

    const serverInfo: JsonReport['servers'] = {};
    for (const s of servers) {
      serverInfo[s.name] = {
        config: parseYaml(await readFile(s.configFile, 'utf8')) as unknown,
        logFile: s.logFile,
        version: s.kind === 'distribution' ? info.distribution : info.commit,
      };
    }
    const report: JsonReport = {
      tool: 'ocireg bench',
      startedAt: started.toISOString(),
      finishedAt: finished.toISOString(),
      durationSec: (finished.getTime() - started.getTime()) / 1000,
      machine: info,
      limits,
      options: shapes.length > 0 ? { ...opts, postgresUrl: withoutPassword(opts.postgresUrl) } : withoutShapeOptions(opts),
      servers: serverInfo,
      skipped,
      failures: Object.fromEntries(results.failures),
      metrics: metricsJson(summaries, (id) => results.detailsOf(id)),
      repetitions,
    };
    if (shapes.length > 0) {
      const ratios: Record<string, Record<string, number | null>> = {};
      for (const s of summaries) {
        if (!shapeSpecs.some((sh) => s.samples[sh.kind] !== undefined)) continue;
        ratios[s.def.id] = Object.fromEntries(shapeSpecs.map((sh) => [sh.kind, s.def.noRatio ? null : (shapeRatio(s, sh) ?? null)]));
      }
      report.shapes = { list: shapes.map((sh) => ({ ...sh.spec, ...sh.describe })), ratios, cpu: cpuLog, memory };
    }
    await mkdir(RESULTS_DIR, { recursive: true });
    const jsonPath = join(RESULTS_DIR, `${fileTimestamp(started)}.json`);
    await writeFile(jsonPath, `${JSON.stringify(report, null, 2)}\n`);
    out.push('', `took ${formatNumber(report.durationSec)} s; results saved to ${jsonPath}`);
    process.stdout.write(`${out.join('\n')}\n`);
    return results.failures.size > 0 ? 1 : 0;
  } finally {
    await cleanup();
  }
}

/** The options as saved before --index and --nodes existed, when they are not used. */
function withoutShapeOptions(opts: Options): JsonReport['options'] {
  const { index: _index, nodes: _nodes, postgresUrl: _url, listingCount, ...rest } = opts;
  // listingCount too, unless it was changed
  return listingCount === 10_000 ? rest : { ...rest, listingCount };
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    log(`bench failed: ${errorText(err)}`);
    process.exitCode = 1;
  },
);
