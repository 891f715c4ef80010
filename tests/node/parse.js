// Prints npm dotenv's parse of each .env file named on the command line, one JSON object per
// line, keys in dotenv's order. Used by crates/klef-core/tests/dotenv_node.rs.
'use strict'

const fs = require('node:fs')
const dotenv = require('dotenv')

const files = process.argv.slice(2)
if (files.length === 0) {
  process.stderr.write('usage: node parse.js FILE...\n')
  process.exit(2)
}
const out = files.map((file) => JSON.stringify(dotenv.parse(fs.readFileSync(file))))
process.stdout.write(out.join('\n') + '\n')
