import { RegistryError } from './errors.js';

const COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME_RE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
/**
 * The spec sets no limit; this is ECR's (256), so that every repository the ECR API creates can be
 * reached on /v2/. (Docker's own reference parser stops at 255 characters, its host included.)
 */
export const MAX_NAME_LENGTH = 256;

export function isValidName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_NAME_LENGTH && NAME_RE.test(name);
}

export function assertName(name: string): string {
  if (!isValidName(name)) {
    throw new RegistryError('NAME_INVALID', 'invalid repository name', { detail: { name } });
  }
  return name;
}

export function isValidTag(tag: string): boolean {
  return TAG_RE.test(tag);
}

export function assertTag(tag: string): string {
  if (!isValidTag(tag)) throw new RegistryError('MANIFEST_INVALID', 'invalid tag', { status: 400, detail: { tag } });
  return tag;
}
