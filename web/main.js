// @ts-check
/** The console's entry point in the browser: runs it against the page's own objects. */
import { startConsole } from './console.js';

startConsole({
  document,
  fetch: (input, init) => window.fetch(input, init),
  storage: sessionStorage,
  confirm: (message) => window.confirm(message),
});
