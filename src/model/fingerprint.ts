/**
 * A model's identity across machines: sha256 of its description (architecture, defaults, every block and file with
 * its size and recorded sha256), leaving out where the folder happens to be. Two folders with the same manifest
 * get the same fingerprint wherever they are; any change to a weight file's recorded hash changes it. The weights
 * are not read again (that is `models verify`), so starting a worker stays instant.
 */
import { createHash } from 'node:crypto';
import { canonicalJson } from '../canonical-json.js';
import type { Model } from './manifest.js';

/** Fields that say where this copy lives, not what the model is. */
const LOCAL_FIELDS = new Set(['dir', 'manifestPath', 'path', 'source']);

export function modelFingerprint(model: Model): string {
  return createHash('sha256')
    .update(canonicalJson(model, (key) => LOCAL_FIELDS.has(key)))
    .digest('hex');
}
