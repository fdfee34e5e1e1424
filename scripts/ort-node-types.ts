/**
 * Node types of an ONNX model before and after ONNX Runtime's CPU graph optimisation (level 'all', as the ONNX
 * backend loads blocks): which fusions (FastGelu, LayerNormalization, SimplifiedLayerNormalization, attention)
 * ORT applies to an exported block. The optimised model is written to a temporary folder and deleted.
 *
 *     npx tsx scripts/ort-node-types.ts <model.onnx>
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { wireFields, WIRE_BYTES } from '../src/text/protobuf-wire.js';

const MODEL_GRAPH = 7;
const GRAPH_NODE = 1;
const NODE_OP_TYPE = 4;
const NODE_DOMAIN = 7;

function nodeTypes(model: Uint8Array): Map<string, number> {
  const counts = new Map<string, number>();
  const text = (bytes: Uint8Array | undefined): string => new TextDecoder().decode(bytes);
  for (const graph of wireFields(model)) {
    if (graph.number !== MODEL_GRAPH || graph.wireType !== WIRE_BYTES) continue;
    for (const node of wireFields(graph.bytes!)) {
      if (node.number !== GRAPH_NODE || node.wireType !== WIRE_BYTES) continue;
      let [op, domain] = ['', ''];
      for (const field of wireFields(node.bytes!)) {
        if (field.number === NODE_OP_TYPE) op = text(field.bytes);
        if (field.number === NODE_DOMAIN) domain = text(field.bytes);
      }
      const name = domain === '' ? op : `${domain}:${op}`;
      counts.set(name, (counts.get(name) ?? 0) + 1);
    }
  }
  return counts;
}

async function main(): Promise<void> {
  const source = process.argv[2];
  if (source === undefined) throw new Error('usage: npx tsx scripts/ort-node-types.ts <model.onnx>');
  const dir = await mkdtemp(join(tmpdir(), 'ondevice-sora-ort-optimised-'));
  try {
    const optimised = join(dir, 'optimised.onnx');
    const options = { graphOptimizationLevel: 'all', optimizedModelFilePath: optimised, logSeverityLevel: 3 } as const;
    await (await ort.InferenceSession.create(source, options)).release();
    const before = nodeTypes(new Uint8Array(await readFile(source)));
    const after = nodeTypes(new Uint8Array(await readFile(optimised)));
    const names = [...new Set([...before.keys(), ...after.keys()])].sort();
    console.log('node type\tbefore\tafter');
    for (const name of names) console.log(`${name}\t${before.get(name) ?? 0}\t${after.get(name) ?? 0}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
});
