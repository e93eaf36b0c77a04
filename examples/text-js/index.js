'use strict';
// A JavaScript plugin (runtime "node"): each exported handler takes the
// action's params and ctx, and returns (or resolves to) its JSON result.
const crypto = require('node:crypto');
const { words } = require('./lib/words');

exports.slugify = (params) => {
  const separator = params.separator ?? '-';
  const slug = params.text
    .normalize('NFKD')
    .replace(/\p{M}/gu, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, separator)
    .replace(new RegExp(`^\\${separator}+|\\${separator}+$`, 'g'), '');
  return { slug };
};

exports.wordCount = (params, ctx) => {
  const found = words(params.text);
  if (found.length === 0) ctx.reject('the text has no words', { field: 'text' });
  const counts = new Map();
  for (const word of found) counts.set(word, (counts.get(word) ?? 0) + 1);
  const topWords = [...counts]
    .sort(([a, countA], [b, countB]) => countB - countA || (a < b ? -1 : a > b ? 1 : 0))
    .slice(0, params.top ?? 5)
    .map(([word, count]) => ({ word, count }));
  return {
    words: found.length,
    uniqueWords: counts.size,
    characters: [...params.text].length,
    lines: params.text.split('\n').length,
    topWords,
  };
};

// Async, as handlers may be: crypto's digest is synchronous, the promise is
// the handler's.
exports.digest = async (params) => {
  const algorithm = params.algorithm ?? 'sha256';
  return { algorithm, hex: crypto.createHash(algorithm).update(params.text, 'utf8').digest('hex') };
};
