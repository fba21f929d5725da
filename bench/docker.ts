// docker push and pull of a fresh 3-layer image, end to end, through the docker daemon.
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Options } from './args.js';
import { writeDockerArchive } from './docker-image.js';
import { BenchError } from './http.js';
import { run, which } from './proc.js';
import type { Server } from './servers.js';
import { sizeText } from './stats.js';
import type { BenchContext, Workload } from './workloads.js';

const LAYERS = 3;
const LOAD_TIMEOUT_MS = 10 * 60_000;
const TRANSFER_TIMEOUT_MS = 15 * 60_000;
const QUICK_TIMEOUT_MS = 60_000;

const NO_DAEMON = 'start one with scripts/dockerd.sh start /tmp/dk and export DOCKER_HOST=…';

function docker(args: string[], timeoutMs = QUICK_TIMEOUT_MS, allowFailure = false) {
  return run('docker', args, { timeoutMs, allowFailure });
}

/** Whether the image (an ID or a reference) is known to the daemon. */
async function present(image: string): Promise<boolean> {
  return (await docker(['image', 'inspect', '--format', '{{.Id}}', image], QUICK_TIMEOUT_MS, true)).code === 0;
}

async function removeImages(refs: Iterable<string>): Promise<void> {
  const list = [...refs];
  if (list.length > 0) await docker(['rmi', '-f', ...list], QUICK_TIMEOUT_MS, true);
}

async function expectGone(imageId: string, what: string): Promise<void> {
  if (await present(imageId)) {
    const images = await docker(['images', '--no-trunc'], QUICK_TIMEOUT_MS, true);
    throw new BenchError(`docker: image ${imageId} still present after ${what}:\n${images.stdout}`);
  }
}

export function dockerWorkload(opts: Options): Workload {
  /** Every reference this run created, removed at the end whatever happens. */
  const created = new Set<string>();
  const layerSize = opts.dockerLayerSize;
  const image = `${LAYERS} × ${sizeText(layerSize)} layers`;
  return {
    name: 'docker',
    metrics: [
      { id: 'docker.push', workload: 'docker', label: `docker push, ${image}`, unit: 's', better: 'lower' },
      { id: 'docker.pull', workload: 'docker', label: `docker pull, ${image}`, unit: 's', better: 'lower' },
    ],
    prepare: async (ctx) => {
      if (!which('docker')) return `no docker CLI; install docker, then ${NO_DAEMON}`;
      const info = await docker(['info', '--format', '{{.ServerVersion}}'], 30_000, true).catch((err: Error) => ({ code: 1, stderr: err.message, stdout: '' }));
      if (info.code !== 0) {
        const host = process.env.DOCKER_HOST ? ` at DOCKER_HOST=${process.env.DOCKER_HOST}` : '';
        return `no docker daemon${host}; ${NO_DAEMON}`;
      }
      ctx.log(`docker: daemon ${info.stdout.trim()}`);
      return undefined;
    },
    rep: async (ctx: BenchContext, rep: number, order: readonly Server[]) => {
      const tagSuffix = randomBytes(4).toString('hex');
      const local = `ocireg-bench-local/docker-r${rep}-${tagSuffix}:latest`;
      const archive = join(ctx.dir, `docker-r${rep}.tar`);
      ctx.log(`  building a ${LAYERS}-layer image (${sizeText(layerSize)} each)`);
      const made = await writeDockerArchive(archive, local, LAYERS, layerSize);
      created.add(local);
      try {
        const loaded = await docker(['load', '-i', archive], LOAD_TIMEOUT_MS);
        if (!(await present(made.imageId))) throw new BenchError(`docker load did not give image ${made.imageId}:\n${loaded.stdout}${loaded.stderr}`);
      } finally {
        await rm(archive, { force: true });
      }
      const refs = new Map<Server, string>();
      for (const srv of order) {
        const ref = `127.0.0.1:${srv.port}/bench/docker-r${rep}-${tagSuffix}:latest`;
        refs.set(srv, ref);
        await docker(['tag', local, ref]);
        created.add(ref);
        const pushed = await docker(['push', ref], TRANSFER_TIMEOUT_MS);
        ctx.results.record('docker.push', srv.kind, pushed.ms / 1000);
        ctx.results.detail('docker.push', srv.kind, { rep, ms: pushed.ms, ref, imageId: made.imageId, layerBytes: layerSize });
        ctx.log(`  ${srv.label}: push ${(pushed.ms / 1000).toFixed(1)} s`);
      }
      await removeImages(created);
      created.clear();
      await expectGone(made.imageId, 'docker rmi -f');
      for (const srv of order) {
        const ref = refs.get(srv)!;
        created.add(ref);
        const pulled = await docker(['pull', ref], TRANSFER_TIMEOUT_MS);
        const id = (await docker(['image', 'inspect', '--format', '{{.Id}}', ref])).stdout.trim();
        if (id !== made.imageId) throw new BenchError(`${srv.label}: docker pull ${ref} gave image ${id}, expected ${made.imageId}:\n${pulled.stdout}`);
        ctx.results.record('docker.pull', srv.kind, pulled.ms / 1000);
        ctx.results.detail('docker.pull', srv.kind, { rep, ms: pulled.ms, ref });
        ctx.log(`  ${srv.label}: pull ${(pulled.ms / 1000).toFixed(1)} s`);
        await removeImages([ref]);
        created.delete(ref);
        await expectGone(made.imageId, `docker rmi -f ${ref}`);
      }
    },
    cleanup: async () => {
      await removeImages(created).catch(() => undefined);
      created.clear();
    },
  };
}
