// The settings table of cluster/config/README.md names every setting the code knows.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { CONFIG_FILE_ENV, SETTINGS, type SettingSpec } from '../../config/index.ts';

void describe('config README', () => {
  void it('documents every variable and file key', () => {
    const readme = readFileSync(new URL('../../config/README.md', import.meta.url), 'utf8');
    const specs: SettingSpec[] = Object.values(SETTINGS);
    for (const name of [CONFIG_FILE_ENV, ...specs.map((s) => s.env), ...specs.map((s) => s.file)]) {
      assert.ok(readme.includes(`\`${name}\``), `${name} is missing from cluster/config/README.md`);
    }
  });
});
