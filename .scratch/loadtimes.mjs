import { loadModel, blockSource } from '../dist/model/manifest.js';
import { OnnxBackend } from '../dist/runtime/onnx-backend.js';
const model = await loadModel(process.argv[2]);
const dir = process.argv[3];
const blocks = model.blocks.filter((b) => b.component === 'stdit').map(blockSource);
const res = { plain: [], cached: [] };
for (let rep = 0; rep < 5; rep++) {
  for (const mode of ['plain', 'cached']) {
    const be = new OnnxBackend(mode === 'cached' ? { graphCacheDir: dir } : {});
    let total = 0;
    for (const b of blocks) { const h = await be.load(b); await be.unload(h); }
    for (const s of be.stats()) total += s.loadMs;
    res[mode].push(total);
    console.log(rep, mode, total.toFixed(0), be.stats().map((s) => s.graphCache ?? '-').join(','));
    await be.close();
  }
}
