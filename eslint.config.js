// ESLint flat config: type-aware typescript-eslint plus the layering of DESIGN.md §4.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { importX } from 'eslint-plugin-import-x';
import globals from 'globals';

/**
 * The dependency arrows of DESIGN.md §4, as import-x `no-restricted-paths` zones:
 * each entry forbids `target` from importing `from`.
 */
const LAYERS = [
  './e4',
  './runtime',
  './cluster',
  './api',
  './worker',
  './proxy',
  './cli',
  './web',
  './chaos',
  './bench',
  './bin',
];

/** A zone that lets `target` import only the layers `allowed` (and itself). */
function zone(target, allowed, message) {
  return {
    target,
    from: LAYERS.filter((layer) => layer !== target && !allowed.includes(layer)),
    message,
  };
}

const layerZones = [
  // e4/ is the pure protocol library: it imports nothing of ours.
  zone('./e4', [], 'e4/ is pure: it imports nothing else of this project.'),
  // runtime/ is the process plumbing the C2 and the proxies share (stop signals, directory
  // locks): below both, it imports nothing of ours.
  zone(
    './runtime',
    [],
    'runtime/ is the lowest layer beside e4/: it imports nothing else of this project.',
  ),
  zone('./cluster', ['./e4', './runtime'], 'cluster/ may import only e4/ and runtime/.'),
  zone(
    './api',
    ['./e4', './runtime', './cluster'],
    'api/ may import only cluster/ and e4/ (never worker/).',
  ),
  zone(
    './worker',
    ['./e4', './runtime', './cluster'],
    'worker/ may import only cluster/ and e4/ (never api/).',
  ),
  zone('./proxy', ['./e4', './runtime'], 'proxy/ may import only e4/ and runtime/.'),
  zone('./web', [], 'web/ runs in the browser and talks to the HTTP API only.'),
  zone('./cli', ['./e4', './api'], 'cli/ talks to the API only.'),
];

/**
 * Tests of every layer may also import `bin/free-ports.ts`, and nothing else of bin/: tests that
 * start a node or a server as a process need a port drawn the way the launcher draws it.
 */
const testLayerZones = [
  ...layerZones.map((zone) => ({ ...zone, from: zone.from.filter((from) => from !== './bin') })),
  ...layerZones
    .filter((zone) => zone.from.includes('./bin'))
    .map((zone) => ({
      target: zone.target,
      from: './bin',
      except: ['./free-ports.ts'],
      message: `${zone.message} (Tests may import bin/free-ports.ts.)`,
    })),
];

export default tseslint.config(
  { ignores: ['node_modules/**', 'data/**', 'dist/**', 'bench/results/**', '.tmp/**'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { 'import-x': importX },
    settings: { 'import-x/resolver': { typescript: true, node: true } },
    rules: {
      eqeqeq: ['error', 'always'],
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/explicit-module-boundary-types': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' },
      ],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      'import-x/no-cycle': 'error',
      'import-x/order': ['error', { 'newlines-between': 'never' }],
      'import-x/no-restricted-paths': ['error', { zones: layerZones }],
      'no-restricted-syntax': [
        'error',
        {
          // Without a message, a failing assert.ok makes Node parse the calling file's source to
          // write one: under tsx that blocked a test's event loop for 22 s of repeated polls.
          selector:
            "CallExpression[callee.name=/^(eventually|until)$/] CallExpression[callee.object.name='assert'][callee.property.name='ok'][arguments.length=1]",
          message:
            'Give assert.ok a message inside eventually()/until(): each failed poll would otherwise parse the test file.',
        },
      ],
    },
  },
  {
    files: ['**/test/**/*.ts'],
    rules: { 'import-x/no-restricted-paths': ['error', { zones: testLayerZones }] },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      globals: globals.node,
    },
    rules: {
      ...tseslint.configs.disableTypeChecked.rules,
      '@typescript-eslint/explicit-module-boundary-types': 'off',
    },
  },
  {
    // The web console: browser modules, type-checked by web/tsconfig.json (checkJs).
    files: ['web/**/*.js'],
    languageOptions: { globals: globals.browser },
  },
);
