#!/usr/bin/env node
/**
 * The conformance engine on its own command line, until `wsrfc conformance` dispatches to it:
 *
 *   npm run conformance -- server ws://127.0.0.1:9001/
 *   npm run conformance -- client --port 9001
 */
import { conformanceMain } from '../conformance/main.js';

process.exitCode = await conformanceMain(process.argv.slice(2));
