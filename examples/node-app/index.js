'use strict';
// A tiny library with three small dependencies, built and tested by qctl:
// `npm ci` runs in a fetch step, `npm test` with the network closed.
const ms = require('ms');
const isNumber = require('is-number');
const escapeHtml = require('escape-html');

// "1.5s" for 1500, "2m" for 120000; numbers only.
function duration(millis) {
  if (!isNumber(millis)) throw new TypeError('not a number: ' + millis);
  return ms(Number(millis));
}

// A table row of a build step, safe to put in an HTML report.
function stepRow(name, millis) {
  return '<tr><td>' + escapeHtml(name) + '</td><td>' + duration(millis) +
    '</td></tr>';
}

module.exports = { duration, stepRow };
