/**
 * `models verify` checks values, not only names: every block's dtypes and shapes against the contract for the
 * manifest's architecture (declared and by one run on a small request), the manifest's declared shapes against the
 * graphs, and the tokenizer against the T5 embedding. Each case is a copy of the shipped tiny model with one thing
 * wrong that names alone do not show; the real CLI must refuse it with one line naming the block or field.
 */
import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_EXIT_CODES } from '../src/errors.js';
import type { Manifest } from '../src/model/manifest-schema.js';
import { assertBuilt, cli, expectOneLineError, ROOT } from './helpers/cli.js';
import { recordFaults } from './helpers/fault-ledger.js';
import { fileEntry, tempDir, writeManifest } from './helpers/model-folder.js';
import { stubGraph, writeModel } from './helpers/onnx-graphs.js';

const SEPARATE_GRAPHS = join(ROOT, 'test', 'fixtures', 'separate-variant-graphs');
let root: string;
let counter = 0;

beforeAll(async () => {
  assertBuilt();
  root = await tempDir('sora-verify-contract-');
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

type Block = Manifest['blocks'][number];
const byName = (m: Manifest, name: string): Block => m.blocks.find((block) => block.name === name)!;
const fieldOf = (m: Manifest, name: string): string => `blocks[${m.blocks.findIndex((block) => block.name === name)}] (${name})`;

/** A tiny-model copy broken by `breakIt` (which may rewrite the manifest it is given; it is written back after). */
async function brokenTiny(breakIt: (dir: string, m: Manifest) => Promise<void> | void): Promise<{ dir: string; manifest: Manifest }> {
  const dir = join(root, `tiny-${counter++}`);
  await cp(join(ROOT, 'models', 'tiny'), dir, { recursive: true });
  const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Manifest;
  await breakIt(dir, manifest);
  await writeManifest(dir, manifest);
  return { dir, manifest };
}

async function expectVerifyFails(dir: string, ...fragments: string[]): Promise<void> {
  recordFaults({ badInputs: 1 });
  expectOneLineError(await cli(['models', 'verify', dir]), ERROR_EXIT_CODES.MODEL, join(dir, 'manifest.json'), ...fragments);
}

describe('models verify holds every block to the contract for its architecture', () => {
  /** Pair 1 as separate ST and TDTM graphs (test/fixtures/separate-variant-graphs), beside the model's weights. */
  async function separateGraphs(dir: string): Promise<{ st: Block['files'][number]; tdtm: Block['files'][number] }> {
    const [st, tdtm] = ['stdit3_ST_1.onnx', 'stdit3_TDTM_1.onnx'].map((file) => `stdit/${file}`);
    for (const path of [st!, tdtm!]) await cp(join(SEPARATE_GRAPHS, path.slice('stdit/'.length)), join(dir, path));
    return { st: { ...(await fileEntry(dir, st!)), role: 'graph' }, tdtm: { ...(await fileEntry(dir, tdtm!)), role: 'graph' } };
  }

  it('separate ST and TDTM graphs (an older export) pass; swapped, verify fails naming the block', async () => {
    const { dir: good } = await brokenTiny(async (dir, m) => {
      const graphs = await separateGraphs(dir);
      byName(m, 'stdit3_ST_1').files[0] = graphs.st;
      byName(m, 'stdit3_TDTM_1').files[0] = graphs.tdtm;
    });
    expect((await cli(['models', 'verify', good])).code).toBe(0);
    const { dir, manifest } = await brokenTiny(async (dir, m) => {
      const graphs = await separateGraphs(dir);
      byName(m, 'stdit3_ST_1').files[0] = graphs.tdtm;
      byName(m, 'stdit3_TDTM_1').files[0] = graphs.st;
    });
    await expectVerifyFails(dir, `${fieldOf(manifest, 'stdit3_ST_1')}: holds a TDTM graph where the ST graph belongs`);
  });

  it('only the TDTM slot holding an ST graph: fails naming that block', async () => {
    const { dir, manifest } = await brokenTiny(async (dir, m) => {
      byName(m, 'stdit3_TDTM_1').files[0] = (await separateGraphs(dir)).st;
    });
    await expectVerifyFails(dir, `${fieldOf(manifest, 'stdit3_TDTM_1')}: holds a ST graph where the TDTM graph belongs`);
  });

  it('architecture.stdit.hidden_size not the graphs\' width: fails at the first STDiT block, naming the dimension', async () => {
    const { dir, manifest } = await brokenTiny((_dir, m) => {
      m.architecture.stdit.hidden_size = 32;
    });
    await expectVerifyFails(dir, fieldOf(manifest, 'stdit3_part1'), 'the contract for this architecture [2, ·, 32]');
  });

  it('architecture.t5.d_model not the graphs\' width: fails at the T5 embedding', async () => {
    const { dir, manifest } = await brokenTiny((_dir, m) => {
      m.architecture.t5.d_model = 128;
    });
    await expectVerifyFails(dir, fieldOf(manifest, 't5embed-tokens'), 'output "output"', '[1, 300, 128]');
  });

  it('tokenizer.maxLength other than the T5 graphs\' fixed token count: fails at the T5 embedding', async () => {
    const { dir, manifest } = await brokenTiny((_dir, m) => {
      m.tokenizer.maxLength = 100;
    });
    await expectVerifyFails(dir, fieldOf(manifest, 't5embed-tokens'), 'input "input_ids"', '[1, 100]');
  });

  it('an integer input where the contract has a float: fails naming the block, the input and both dtypes', async () => {
    const { dir, manifest } = await brokenTiny(async (d, m) => {
      const block = byName(m, 't5final-layer-norm');
      block.inputs = [{ name: 'input', dtype: 'int32', shape: [1, 300, 64] }];
      block.outputs = [{ name: 'output', dtype: 'float32', shape: [1] }];
      await writeModel(join(d, block.files[0]!.path), stubGraph(block.inputs, block.outputs));
      block.files[0] = { ...(await fileEntry(d, block.files[0]!.path)), role: 'graph' };
    });
    await expectVerifyFails(dir, `${fieldOf(manifest, 't5final-layer-norm')}: input "input": the graph declares int32, the contract float32`);
  });

  it('a declared shape the graph does not have: fails naming the block and both shapes', async () => {
    const { dir, manifest } = await brokenTiny((_dir, m) => {
      byName(m, 'stdit3_ST_0').outputs[0]!.shape = ['B', 'N', 32];
    });
    await expectVerifyFails(
      dir,
      `${fieldOf(manifest, 'stdit3_ST_0')}: output "output": the manifest declares float32 [B, N, 32], the graph float32 [B, N, 64]`,
    );
  });
});

describe('models verify loads the tokenizer and checks it against the T5 embedding', () => {
  /** The tiny tokenizer with one added token of id `id` (its vocabulary then has id + 1 ids). */
  async function withAddedToken(d: string, m: Manifest, id: number): Promise<void> {
    const path = join(d, 'tokenizer.json');
    const tokenizer = JSON.parse(await readFile(path, 'utf8')) as { added_tokens: object[] };
    tokenizer.added_tokens.push({ content: '<extra>', id, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true });
    await writeFile(path, JSON.stringify(tokenizer));
    const index = m.tokenizer.files.findIndex((file) => file.path === 'tokenizer.json');
    m.tokenizer.files[index] = await fileEntry(d, 'tokenizer.json');
  }

  it('ids beyond the embedding rows (no vocab_size recorded): the probe embeds the largest id and fails, naming the tokenizer', async () => {
    const { dir } = await brokenTiny(async (d, m) => {
      await withAddedToken(d, m, 600);
      delete m.architecture.t5.vocab_size;
    });
    await expectVerifyFails(dir, 'tokenizer: its vocabulary has 601 ids, more than the rows of the T5 embedding', 'cannot embed id 600');
  });

  it('ids beyond architecture.t5.vocab_size: fails before any block runs', async () => {
    const { dir } = await brokenTiny((d, m) => withAddedToken(d, m, 512));
    await expectVerifyFails(dir, 'tokenizer: its vocabulary has 513 ids, more than the 512 rows of the T5 embedding (architecture.t5.vocab_size)');
  });

  it('a pad id outside the vocabulary', async () => {
    const { dir } = await brokenTiny((_dir, m) => {
      m.tokenizer.padId = 5000;
    });
    await expectVerifyFails(dir, 'tokenizer.padId: 5000 is not an id of the tokenizer (its vocabulary has 512)');
  });
});
