// Unit test of the dashboard's pcap record counter (web/js/capture.js), fed a file in pieces of every size.
// Run with: node --test tests/browser/unit
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pcap_counter } from '../../../web/js/capture.js';

function pcap(records, little = true) {
  const parts = [];
  const hdr = new DataView(new ArrayBuffer(24));
  hdr.setUint32(0, 0xa1b2c3d4, little);
  hdr.setUint16(4, 2, little);
  hdr.setUint16(6, 4, little);
  hdr.setUint32(16, 262144, little);
  hdr.setUint32(20, 1, little);
  parts.push(new Uint8Array(hdr.buffer));
  for (const len of records) {
    const r = new DataView(new ArrayBuffer(16));
    r.setUint32(8, len, little);
    r.setUint32(12, len, little);
    parts.push(new Uint8Array(r.buffer), new Uint8Array(len).fill(0xee));
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) { out.set(p, off); off += p.length; }
  return out;
}

test('pcap_counter counts records across any split', () => {
  for (const little of [true, false]) {
    const file = pcap([60, 1514, 0, 65000, 98], little);
    for (const piece of [1, 3, 7, 16, 24, 100, file.length]) {
      const c = pcap_counter();
      for (let i = 0; i < file.length; i += piece) c.push(file.subarray(i, i + piece));
      assert.equal(c.frames, 5, `piece ${piece}`);
      assert.ok(c.valid);
    }
  }
  const header_only = pcap([]);
  const c = pcap_counter();
  c.push(header_only);
  assert.equal(c.frames, 0);
  assert.ok(c.valid);
  const bad = pcap_counter();
  bad.push(new TextEncoder().encode('{"title": "Bad Request"}'));
  assert.equal(bad.valid, false);
});
