// A docker-archive (the format of `docker save` / `docker load -i`) of a fresh image whose
// layers each hold one file of random bytes, written in one pass with constant memory.
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { tarSize, tarStream, type TarEntry } from './tar.js';

const PIECE = 1024 * 1024;

async function* randomPieces(size: number): AsyncGenerator<Buffer> {
  for (let left = size; left > 0; ) {
    const piece = randomBytes(Math.min(PIECE, left));
    left -= piece.length;
    yield piece;
  }
}

async function* hashing(source: AsyncIterable<Buffer>, hash: Hash): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    hash.update(chunk);
    yield chunk;
  }
}

export interface DockerArchive {
  /** The image ID docker gives it: the digest of its config. */
  imageId: string;
  diffIds: string[];
  bytes: number;
}

function dockerArch(): string {
  return process.arch === 'x64' ? 'amd64' : process.arch;
}

/** Writes the archive to `path`: `layers` layers of `layerSize` random bytes each, tagged `repoTag`. */
export async function writeDockerArchive(path: string, repoTag: string, layers: number, layerSize: number): Promise<DockerArchive> {
  const diffIds: string[] = [];
  let imageId = '';
  async function* entries(): AsyncGenerator<TarEntry> {
    const layerPaths: string[] = [];
    for (let i = 0; i < layers; i++) {
      const hash = createHash('sha256');
      const layerPath = `layer${i}/layer.tar`;
      const inner: TarEntry = { name: `bench/layer${i}.bin`, size: layerSize, data: () => randomPieces(layerSize) };
      yield { name: layerPath, size: tarSize([layerSize]), data: () => hashing(tarStream([inner]), hash) };
      // tarStream has read the whole layer before it asks for the next entry
      diffIds.push(`sha256:${hash.digest('hex')}`);
      layerPaths.push(layerPath);
    }
    const config = Buffer.from(
      JSON.stringify({
        architecture: dockerArch(),
        os: 'linux',
        config: { Labels: { 'org.ocireg.bench': repoTag } },
        rootfs: { type: 'layers', diff_ids: diffIds },
        history: diffIds.map((_, i) => ({ created_by: `ocireg bench layer ${i}` })),
      }),
    );
    const configHex = createHash('sha256').update(config).digest('hex');
    imageId = `sha256:${configHex}`;
    yield { name: `${configHex}.json`, size: config.length, data: config };
    const manifest = Buffer.from(JSON.stringify([{ Config: `${configHex}.json`, RepoTags: [repoTag], Layers: layerPaths }]));
    yield { name: 'manifest.json', size: manifest.length, data: manifest };
  }
  let bytes = 0;
  async function* counted(): AsyncGenerator<Buffer> {
    for await (const chunk of tarStream(entries())) {
      bytes += chunk.length;
      yield chunk;
    }
  }
  await pipeline(Readable.from(counted()), createWriteStream(path));
  return { imageId, diffIds, bytes };
}
