#!/usr/bin/env node
// Entry point of every command, services included (docker-compose runs `node bin/p2p.js superpeer|peer`).
import { main } from '../dist/services/cli/main.js';

const code = await main(process.argv);
if (code !== undefined) process.exit(code);
