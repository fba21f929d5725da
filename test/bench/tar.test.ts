import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDockerArchive } from '../../bench/docker-image.js';
import { TAR_END, tarHeader, tarPadding, tarSize, tarStream, type TarEntry } from '../../bench/tar.js';

const exec = promisify(execFile);
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bench-tar-test-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function writeTar(path: string, entries: TarEntry[] | AsyncIterable<TarEntry>): Promise<void> {
  await pipeline(Readable.from(tarStream(entries)), createWriteStream(path));
}

async function* pieces(total: number, size: number, fill: number): AsyncGenerator<Buffer> {
  for (let left = total; left > 0; left -= size) yield Buffer.alloc(Math.min(size, left), fill);
}

describe('tarHeader', () => {
  it('is one block with a valid ustar checksum', () => {
    const h = tarHeader('dir/file.bin', 1234, 0o600, 42);
    expect(h.length).toBe(512);
    expect(h.subarray(257, 263).toString('latin1')).toBe('ustar\0');
    expect(h.subarray(124, 135).toString('latin1')).toBe('00000002322');
    const stored = parseInt(h.subarray(148, 154).toString('latin1'), 8);
    const copy = Buffer.from(h);
    copy.fill(0x20, 148, 156);
    expect(stored).toBe(copy.reduce((a, b) => a + b, 0));
  });

  it('splits long paths into prefix and name, and refuses what cannot fit', () => {
    const long = `${'d'.repeat(120)}/${'f'.repeat(90)}`;
    const h = tarHeader(long, 0);
    expect(h.subarray(0, 90).toString('latin1')).toBe('f'.repeat(90));
    expect(h.subarray(345, 465).toString('latin1')).toBe('d'.repeat(120));
    expect(() => tarHeader('x'.repeat(300), 0)).toThrow(/too long/);
  });
});

describe('tarStream', () => {
  it('writes an archive that tar lists and extracts byte for byte', async () => {
    const path = join(dir, 'a.tar');
    const small = Buffer.from('hello, tar\n');
    const big = 3 * 1024 * 1024 + 17; // not a whole block
    await writeTar(path, [
      { name: 'hello.txt', size: small.length, data: small },
      { name: 'layer0/data.bin', size: big, data: () => pieces(big, 1024 * 1024, 0x61), mode: 0o755 },
      { name: 'empty', size: 0, data: Buffer.alloc(0) },
    ]);
    expect((await stat(path)).size).toBe(tarSize([small.length, big, 0]));

    const { stdout } = await exec('tar', ['-tvf', path]);
    const lines = stdout.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^-rw-r--r-- root\/root\s+11 .* hello\.txt$/);
    expect(lines[1]).toMatch(new RegExp(`^-rwxr-xr-x root/root\\s+${big} .* layer0/data\\.bin$`));
    expect(lines[2]).toMatch(/\s0 .* empty$/);

    const hello = await exec('tar', ['-xOf', path, 'hello.txt']);
    expect(hello.stdout).toBe('hello, tar\n');
    const data = await exec('tar', ['-xOf', path, 'layer0/data.bin'], { encoding: 'buffer', maxBuffer: 8 * 1024 * 1024 });
    expect(data.stdout.equals(Buffer.alloc(big, 0x61))).toBe(true);
  });

  it('ends with two zero blocks, each entry padded to a block', () => {
    expect(TAR_END.equals(Buffer.alloc(1024))).toBe(true);
    expect(tarPadding(512).length).toBe(0);
    expect(tarPadding(1).length).toBe(511);
    expect(tarSize([])).toBe(1024);
  });

  it('fails when an entry does not hold the size it declared', async () => {
    await expect(writeTar(join(dir, 'short.tar'), [{ name: 'x', size: 10, data: () => pieces(5, 5, 1) }])).rejects.toThrow(/5 bytes given for a size of 10/);
    await expect(writeTar(join(dir, 'long.tar'), [{ name: 'x', size: 4, data: () => pieces(8, 8, 1) }])).rejects.toThrow(/more than the 4 bytes/);
    await expect(writeTar(join(dir, 'buf.tar'), [{ name: 'x', size: 4, data: Buffer.alloc(3) }])).rejects.toThrow(/3 bytes given/);
  });
});

describe('writeDockerArchive', () => {
  it('writes a docker-archive whose config names the digests of its layer tars', async () => {
    const path = join(dir, 'image.tar');
    const made = await writeDockerArchive(path, 'bench/test:latest', 2, 3000);
    expect((await stat(path)).size).toBe(made.bytes);

    const { stdout } = await exec('tar', ['-tf', path]);
    const configName = `${made.imageId.slice('sha256:'.length)}.json`;
    expect(stdout.trim().split('\n')).toEqual(['layer0/layer.tar', 'layer1/layer.tar', configName, 'manifest.json']);

    const manifest = JSON.parse((await exec('tar', ['-xOf', path, 'manifest.json'])).stdout) as unknown;
    expect(manifest).toEqual([{ Config: configName, RepoTags: ['bench/test:latest'], Layers: ['layer0/layer.tar', 'layer1/layer.tar'] }]);

    const configText = (await exec('tar', ['-xOf', path, configName])).stdout;
    expect(`sha256:${createHash('sha256').update(configText).digest('hex')}`).toBe(made.imageId);
    const config = JSON.parse(configText) as { rootfs: { diff_ids: string[] }; os: string };
    expect(config.os).toBe('linux');
    expect(config.rootfs.diff_ids).toEqual(made.diffIds);

    await exec('tar', ['-xf', path, '-C', dir, 'layer0/layer.tar', 'layer1/layer.tar']);
    for (const i of [0, 1]) {
      const layer = await readFile(join(dir, `layer${i}`, 'layer.tar'));
      expect(`sha256:${createHash('sha256').update(layer).digest('hex')}`).toBe(made.diffIds[i]);
      const listing = await exec('tar', ['-tvf', join(dir, `layer${i}`, 'layer.tar')]);
      expect(listing.stdout).toMatch(new RegExp(`\\s3000 .* bench/layer${i}\\.bin\\n$`));
    }
    // fresh random data: two layers never share a digest
    expect(made.diffIds[0]).not.toBe(made.diffIds[1]);
  });
});
