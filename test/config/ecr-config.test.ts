import { describe, expect, it } from 'vitest';
import { redact } from '../../src/config/config.js';
import type { ConfigFile } from '../../src/config/schema.js';
import { useConfigDir } from './support.js';

const { load, configError, configFile } = useConfigDir();

const KEY = { accesskeyid: 'AKIAEXAMPLECI00001', secretaccesskey: 'ci-secret-ci-secret-ci', user: 'ci' };
const ecr = (section: Record<string, unknown>): ConfigFile => ({ ecr: section as ConfigFile['ecr'] });

describe('the ecr section', () => {
  it('reads a whole section from a file', async () => {
    const path = await configFile(`ecr:
  enabled: true
  accountid: "123456789012"
  region: eu-west-1
  createonpush: true
  credentials:
    - { accesskeyid: AKIAEXAMPLECI00001, secretaccesskey: ci-secret-ci-secret-ci, user: ci }
    - { accesskeyid: AKIAEXAMPLEOPS0001, secretaccesskey: ops-secret-ops-secret, user: ops }
  lifecycle: { interval: 1h30m }
`);
    expect(load({ path }).ecr).toEqual({
      accountId: '123456789012',
      region: 'eu-west-1',
      createOnPush: true,
      credentials: [
        { accessKeyId: 'AKIAEXAMPLECI00001', secretAccessKey: 'ci-secret-ci-secret-ci', user: 'ci' },
        { accessKeyId: 'AKIAEXAMPLEOPS0001', secretAccessKey: 'ops-secret-ops-secret', user: 'ops' },
      ],
      lifecycleIntervalMs: 90 * 60_000,
    });
  });

  it('defaults: account 000000000000, us-east-1, no creation on push, lifecycle once a day', () => {
    expect(load({ overrides: ecr({ enabled: true, credentials: [KEY] }) }).ecr).toEqual({
      accountId: '000000000000',
      region: 'us-east-1',
      createOnPush: false,
      credentials: [{ accessKeyId: KEY.accesskeyid, secretAccessKey: KEY.secretaccesskey, user: 'ci' }],
      lifecycleIntervalMs: 24 * 3600_000,
    });
  });

  it('is off unless enabled is true, whatever else is set', () => {
    expect(load({}).ecr).toBeUndefined();
    expect(load({ overrides: ecr({ credentials: [KEY] }) }).ecr).toBeUndefined();
    expect(load({ overrides: ecr({ enabled: false, credentials: [KEY] }) }).ecr).toBeUndefined();
  });

  it('takes REGISTRY_ECR_* variables over the file', () => {
    const config = load({
      overrides: ecr({ credentials: [KEY] }),
      env: {
        REGISTRY_ECR_ENABLED: 'true',
        REGISTRY_ECR_ACCOUNTID: '210987654321',
        REGISTRY_ECR_REGION: 'ap-southeast-2',
        REGISTRY_ECR_CREATEONPUSH: 'true',
        REGISTRY_ECR_LIFECYCLE_INTERVAL: '6h',
      },
    });
    expect(config.ecr).toMatchObject({ accountId: '210987654321', region: 'ap-southeast-2', createOnPush: true, lifecycleIntervalMs: 6 * 3600_000 });
  });

  it('needs at least one key pair when enabled', () => {
    expect(configError({ overrides: ecr({ enabled: true }) })).toMatch(/ecr\.credentials: list at least one/);
    expect(configError({ overrides: ecr({ enabled: true, credentials: [] }) })).toMatch(/ecr\.credentials: list at least one/);
  });

  it('refuses an access key id listed twice', () => {
    expect(configError({ overrides: ecr({ enabled: true, credentials: [KEY, { ...KEY, user: 'other' }] }) })).toMatch(
      /AKIAEXAMPLECI00001 is listed twice/,
    );
  });

  it.each([
    [{ accountid: '12345' }, /ecr\.accountid.*12 digits/],
    [{ accountid: 123456789012 }, /ecr\.accountid.*12 digits/],
    [{ region: 'Mars' }, /ecr\.region.*AWS region name/],
    [{ credentials: [{ ...KEY, accesskeyid: 'akia-lowercase-000' }] }, /accesskeyid.*16 to 128 capital letters or digits/],
    [{ credentials: [{ ...KEY, accesskeyid: 'AKIA' }] }, /accesskeyid.*16 to 128/],
    [{ credentials: [{ ...KEY, secretaccesskey: 'short' }] }, /secretaccesskey.*at least 16 characters/],
    [{ credentials: [{ ...KEY, user: '' }] }, /ecr\.credentials\.0\.user/],
    [{ credentials: [{ ...KEY, role: 'admin' }] }, /ecr\.credentials\.0: unknown key.*"role"/],
    [{ lifecycle: { interval: 'soon' } }, /ecr\.lifecycle\.interval/],
    [{ lifecycle: { interval: '0' } }, /ecr\.lifecycle\.interval must be greater than zero/],
    [{ unknown: true }, /ecr: unknown key.*"unknown"/],
  ])('refuses %j', (section, message) => {
    expect(configError({ overrides: ecr({ enabled: true, credentials: [KEY], ...section }) })).toMatch(message);
  });

  it('never shows a secret access key when the configuration is logged', () => {
    const config = load({ overrides: ecr({ enabled: true, credentials: [KEY] }) });
    const safe = JSON.stringify(redact(config));
    expect(safe).not.toContain(KEY.secretaccesskey);
    expect(safe).toContain(KEY.accesskeyid);
    expect(safe).toContain('[redacted]');
  });
});
