/**
 * V8's garbage collector on demand, for a memory budget. Apart from memory-budget.ts so that the CLI can turn it on
 * before it starts ONNX Runtime's workers early (cli/onnx-prestart.ts) without loading anything else.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

let collector: (() => void) | undefined;

/**
 * Exposes V8's garbage collector to this thread and to every worker started afterwards (call it before the backend
 * starts its workers), so that a memory budget can have dead tensors freed when it needs the room. Flags set at run
 * time reach contexts made after them; `gc` is what `node --expose-gc` would give.
 */
export function enableGarbageCollection(): void {
  if (collector !== undefined) return;
  v8.setFlagsFromString('--expose-gc');
  collector = vm.runInNewContext('gc') as () => void;
}

/** A full collection on this thread; nothing before enableGarbageCollection(). */
export function collectGarbage(): void {
  collector?.();
}
