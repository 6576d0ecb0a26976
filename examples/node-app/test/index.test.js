'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { duration, stepRow } = require('..');

test('durations read like a person writes them', () => {
  assert.strictEqual(duration(1500), '2s');
  assert.strictEqual(duration(120000), '2m');
  assert.strictEqual(duration('3600000'), '1h');
});

test('a non-number is refused', () => {
  assert.throws(() => duration('soon'), TypeError);
});

test('step names are escaped', () => {
  assert.strictEqual(stepRow('<b>build</b>', 60000),
    '<tr><td>&lt;b&gt;build&lt;/b&gt;</td><td>1m</td></tr>');
});
