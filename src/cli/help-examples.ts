/**
 * The examples at the end of every command's --help, in one place so that a test can hold every command to having
 * them. Keyed by the command's path below the program ('' is the program itself).
 */
import type { Command } from 'commander';

const EXAMPLES: Readonly<Record<string, readonly string[]>> = {
  '': [
    'ondevice-sora generate "a blue square moving right on a white background" -o square.mp4 --seed 42',
    'ondevice-sora batch prompts.txt -o videos/',
    'ondevice-sora doctor',
  ],
  generate: [
    'ondevice-sora generate "a blue square moving right on a white background" -o square.mp4 --seed 42',
    'ondevice-sora generate "an orange triangle growing on a purple background" -o t.webm --steps 20 --preview t.png',
    'ondevice-sora generate "a red circle moving up" -o frames/ --format frames      # PNG frames in frames/',
    'ondevice-sora generate "a green square shrinking" -o g.mp4 --preset paper      # LPL + TDTM + CI-DL',
    'ondevice-sora generate "a dog on a beach" -o dog.mp4 --model models/opensora-1.2 --memory-budget 2G --trace',
  ],
  batch: [
    'ondevice-sora batch prompts.txt -o videos/ --steps 20',
    'ondevice-sora batch prompts.jsonl -o videos/ --resume       # skip the prompts already done',
    'ondevice-sora batch prompts.csv -o videos/ --shard 2/4      # this machine: prompt lines 2, 6, 10, …',
    'ondevice-sora batch prompts.jsonl -o /shared/videos --queue redis://:secret@10.0.0.5:6379/vbench   # for workers',
    '',
    'prompts.jsonl, one object per line (fields: prompt, seed, steps, num_frames, resolution, output):',
    '  {"prompt": "a red ball bouncing", "seed": 42, "resolution": "192x192", "output": "ball.mp4"}',
    'prompts.csv, a header line, then one record per line:',
    '  prompt,seed,steps',
    '  "a red ball, bouncing",42,20',
  ],
  'batch status': ['ondevice-sora batch status --queue redis://:secret@10.0.0.5:6379/vbench'],
  worker: [
    'ondevice-sora worker --queue redis://:secret@10.0.0.5:6379/vbench -o /Volumes/shared/videos',
    'ondevice-sora worker --queue redis://:secret@10.0.0.5/vbench -o ~/shared/videos --model ~/sora-coreml --backend coreml',
  ],
  bench: [
    'ondevice-sora bench                                      # per block, baseline, 3 sessions',
    'ondevice-sora bench --matrix --steps 10 -o bench-results/   # + LPL, TDTM, CI-DL, All (Table 5)',
    'ondevice-sora bench --matrix baseline,lpl --repeat 5 --json > bench.json',
    'ondevice-sora bench --model synth/ --matrix --memory-budget 2G -o out/ --trace',
    'ondevice-sora bench --connect unix:/tmp/sora.sock --repeat 3   # a runner vs local ONNX: time and bytes per step',
  ],
  eval: [
    'ondevice-sora eval                                    # models/shapes, paper configurations and fast, all prompts',
    'ondevice-sora eval --configs baseline,lpl15,paper --prompts 4 --seeds 2 --report eval.json',
    'ondevice-sora eval --video ball.mp4 --prompt "a red circle moving left on a black background"',
  ],
  models: ['ondevice-sora models list', 'ondevice-sora models inspect models/tiny', 'ondevice-sora models verify models/tiny'],
  'models inspect': ['ondevice-sora models inspect models/tiny', 'ondevice-sora models inspect ~/sora-coreml --json'],
  'models verify': ['ondevice-sora models verify models/tiny'],
  'models list': ['ondevice-sora models list', 'ONDEVICE_SORA_MODELS=~/models ondevice-sora models list --json'],
  'models make-synthetic': [
    'ondevice-sora models make-synthetic --preset opensora-1.2 -o synth/             # 28 pairs, ~4.8 GB',
    'ondevice-sora models make-synthetic --preset opensora-1.2 -o synth2/ --depth 2  # paper-wide, 2 pairs',
  ],
  'models pull': [
    'ondevice-sora models pull opensora-1.2                      # ~24 GB download, then ONNX blocks in ./opensora-1.2',
    'ondevice-sora models pull opensora-1.2 --dtype float16 -o sora-fp16/',
    'ondevice-sora models pull opensora-1.2 --format coreml      # .mlpackage blocks for --backend coreml',
    'ondevice-sora models pull opensora-1.2 --download-only      # into the Hugging Face cache only',
    'ondevice-sora models pull opensora-1.2 --revision hpcai-tech/OpenSora-STDiT-v3=main',
    'ondevice-sora models pull opensora-1.2 -o sora2/            # with HF_HUB_OFFLINE=1: from the cache, no network',
  ],
  'models convert': [
    'ondevice-sora models convert stdit/ t5/ vae/ -o opensora-1.2/    # folders recognised by their config.json',
    'ondevice-sora models convert --stdit stdit/ --t5 t5/ --vae vae/ -o sora/ --dtype float16 --python /usr/bin/python3',
  ],
  'models cache': ['ondevice-sora models cache prune'],
  'models cache prune': [
    'ondevice-sora models cache prune                   # stale, unreferenced, and unused for 30 days',
    'ondevice-sora models cache prune --unused-days 7',
    'ondevice-sora models cache prune --all             # every compiled model (recompiled when next loaded)',
  ],
  serve: [
    'ondevice-sora serve                                          # 127.0.0.1:7315, the default model',
    'ondevice-sora serve --socket /tmp/sora.sock --model models/tiny',
    'ONDEVICE_SORA_TOKEN=s3cret ondevice-sora serve --listen 0.0.0.0:7315   # other machines, with a token',
    'ondevice-sora generate "a red circle moving up" -o c.mp4 --connect 127.0.0.1:7315   # the client',
  ],
  devices: [
    'ondevice-sora devices                                   # the iPhones attached over USB (usbmuxd)',
    'ondevice-sora generate "a red circle moving up" -o c.mp4 --device auto --model models/tiny-coreml   # the one attached',
  ],
  device: ['ondevice-sora device setup --team ABCDE12345'],
  'device setup': [
    'ondevice-sora device setup --team ABCDE12345                      # models/tiny-coreml on the only iPhone attached',
    'ondevice-sora device setup --device 00008110-001A2B3C4D5E801E --model ~/sora-coreml --team ABCDE12345',
  ],
  doctor: [
    'ondevice-sora doctor',
    'ondevice-sora doctor --json',
    'ondevice-sora doctor --model ~/sora-coreml          # + which macOS its CoreML packages need',
  ],
};

function pathOf(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** Adds the examples to `command` and every command below it; a command without examples is a bug. */
export function addExamples(command: Command): void {
  const path = pathOf(command);
  const examples = EXAMPLES[path];
  if (examples === undefined) throw new Error(`no --help examples for "${path}"`);
  const lines = examples.map((line) => (line === '' || line.startsWith(' ') || !line.startsWith('ondevice-sora') ? line : `  $ ${line}`));
  command.addHelpText('after', `\nExamples:\n${lines.join('\n')}`);
  for (const sub of command.commands) addExamples(sub);
}
