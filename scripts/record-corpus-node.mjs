// Part of scripts/record-corpus.py: uploads the corpus' files and fields with Node's own fetch +
// FormData, or with Chromium (driven by playwright-core from tests/browser) through a FormData
// fetch and through a plain form submit. Usage: node record-corpus-node.mjs MODE URL PHOTO NOTES
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename } from 'node:path';

const [mode, url, photo, notes] = process.argv.slice(2);
const fields = [['album', 'holidays'], ['caption', 'Grüße 👋 from the beach']];

if (mode === 'fetch') {
  const fd = new FormData();
  fd.append('photo', new Blob([readFileSync(photo)], { type: 'image/png' }), basename(photo));
  fd.append('notes', new Blob([readFileSync(notes)], { type: 'text/plain' }), basename(notes));
  for (const [k, v] of fields) fd.append(k, v);
  const r = await fetch(url, { method: 'POST', body: fd });
  if (!r.ok) throw new Error(`status ${r.status}`);
} else {
  const require = createRequire(new URL('../tests/browser/package.json', import.meta.url));
  const { chromium } = require('playwright-core');
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox'],
  });
  try {
    const page = await browser.newPage();
    const origin = new URL(url).origin;
    await page.goto(origin + '/');
    await page.setInputFiles('input[name=photo]', photo);
    await page.setInputFiles('input[name=notes]', notes);
    if (mode === 'chromium-formdata') {
      const status = await page.evaluate(async (u) => {
        const r = await fetch(u, { method: 'POST', body: new FormData(document.getElementById('f')) });
        return r.status;
      }, url);
      if (status !== 200) throw new Error(`status ${status}`);
    } else {
      await page.evaluate((u) => { document.getElementById('f').action = u; }, url);
      await Promise.all([page.waitForLoadState('load'), page.evaluate(() => document.getElementById('f').submit())]);
      await page.waitForTimeout(500);
    }
  } finally {
    await browser.close();
  }
}
