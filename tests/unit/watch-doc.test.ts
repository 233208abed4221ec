import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { z } from 'zod';
import {
  SearchResultSchema,
  topologyNames,
  WatchControlSchema,
  WatchNoticeSchema,
} from '../../libs/protocol/index.js';
import { REPO_ROOT } from '../helpers/network.js';

const doc = fs.readFileSync(path.join(REPO_ROOT, 'docs/protocol.md'), 'utf8');

/** The part of the doc under the heading that names `title` in backquotes, up to the next heading. */
function sectionOf(title: string): string {
  const lines = doc.split('\n');
  const start = lines.findIndex((line) => /^#{2,4} /.test(line) && line.includes(`\`${title}\``));
  assert.ok(start >= 0, `docs/protocol.md has a section for \`${title}\``);
  const length = lines.slice(start + 1).findIndex((line) => /^#{2,4} /.test(line));
  return lines.slice(start, length < 0 ? undefined : start + 1 + length).join('\n');
}

function fieldsIn(section: string, title: string, schema: z.ZodObject): void {
  for (const key of Object.keys(schema.shape)) {
    assert.ok(section.includes(`"${key}"`), `field "${key}" is documented in the section of \`${title}\``);
  }
}

test('every watch message type is documented in its own section, with every field', () => {
  const schemas = [
    ...(WatchControlSchema.options as unknown as z.ZodObject[]),
    ...(WatchNoticeSchema.options as unknown as z.ZodObject[]),
  ];
  assert.equal(schemas.length, 7);
  for (const schema of schemas) {
    const type = (schema.shape.type as unknown as { value: string }).value;
    fieldsIn(sectionOf(type), type, schema);
  }
  fieldsIn(sectionOf('watch.match'), 'watch.match', SearchResultSchema);
});

test('the watch exchanges and queue patterns are documented', () => {
  const names = topologyNames('N');
  for (const name of [names.watchesExchange, names.watchersExchange])
    assert.ok(doc.includes(`\`${name}\``), name);
  assert.ok(doc.includes('`N.watch.<random>`'));
  assert.ok(doc.includes('`N.superpeer-watches.<superpeerId>.<instance>`'));
});
