'use strict';
// Words: runs of Unicode letters and digits, with apostrophes inside them
// (it's, dog's), lowercased.
const WORD = /[\p{L}\p{N}]+(?:['’][\p{L}\p{N}]+)*/gu;

exports.words = (text) => (text.match(WORD) ?? []).map((word) => word.toLowerCase());
