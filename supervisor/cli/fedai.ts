#!/usr/bin/env node
/** `fedai`: the client-side CLI (keys, signed requests, receipts, verification). */
import { dispatch, processIO } from './dispatch.js';
import { keygenCommand } from './commands/keygen.js';
import { inferCommand } from './commands/infer.js';
import { verifyCommand } from './commands/verify.js';
import { receiptCommand } from './commands/receipt.js';

process.exitCode = await dispatch('fedai', [keygenCommand, inferCommand, receiptCommand, verifyCommand], process.argv.slice(2), processIO());
