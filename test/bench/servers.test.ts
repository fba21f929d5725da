import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { nodeFlagsOf } from '../../bench/servers.js';

describe('nodeFlagsOf', () => {
  it('takes the flags between node and the script', () => {
    expect(nodeFlagsOf('node --max-semi-space-size=2 dist/cli.js serve')).toEqual(['--max-semi-space-size=2']);
    expect(nodeFlagsOf('node  --a --b=1  dist/cli.js serve --c')).toEqual(['--a', '--b=1']);
    expect(nodeFlagsOf('node dist/cli.js serve')).toEqual([]);
    expect(nodeFlagsOf('tsx src/cli.ts')).toEqual([]);
  });

  it('finds in npm start the Node flags that the Dockerfile and the ocireg command use too', () => {
    const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');
    const flags = nodeFlagsOf((JSON.parse(read('package.json')) as { scripts: { start: string } }).scripts.start);
    expect(flags.length).toBeGreaterThan(0);
    expect(read('Dockerfile')).toContain(`ENTRYPOINT ["node", ${flags.map((f) => JSON.stringify(f)).join(', ')}, "dist/cli.js"]`);
    expect(read('src/cli.ts').split('\n')[0]).toBe(`#!/usr/bin/env -S node ${flags.join(' ')}`);
  });
});
