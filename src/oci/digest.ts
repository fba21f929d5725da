import { createHash, type Hash } from 'node:crypto';
import { RegistryError } from './errors.js';

export type DigestAlgorithm = 'sha256' | 'sha512';

const ENCODED_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };
const DIGEST_RE = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;

/** A validated content digest, `algorithm:hex`. */
export class Digest {
  private constructor(
    readonly algorithm: DigestAlgorithm,
    readonly hex: string,
  ) {}

  static parse(value: string): Digest {
    const parsed = Digest.tryParse(value);
    if (!parsed) throw new RegistryError('DIGEST_INVALID', 'invalid digest', { detail: { digest: value } });
    return parsed;
  }

  /** Returns null for anything that is not a supported, well-formed digest. */
  static tryParse(value: string): Digest | null {
    const m = DIGEST_RE.exec(value);
    if (!m) return null;
    const algorithm = m[1] as string;
    const hex = m[2] as string;
    if (algorithm !== 'sha256' && algorithm !== 'sha512') return null;
    if (hex.length !== ENCODED_LENGTH[algorithm] || !/^[a-f0-9]+$/.test(hex)) return null;
    return new Digest(algorithm, hex);
  }

  static of(data: Uint8Array | string, algorithm: DigestAlgorithm = 'sha256'): Digest {
    return new Digest(algorithm, createHash(algorithm).update(data).digest('hex'));
  }

  static fromHash(algorithm: DigestAlgorithm, hash: Hash): Digest {
    return new Digest(algorithm, hash.digest('hex'));
  }

  equals(other: Digest): boolean {
    return this.algorithm === other.algorithm && this.hex === other.hex;
  }

  toString(): string {
    return `${this.algorithm}:${this.hex}`;
  }
}
