'use strict';
// Stands in for global-agent (package.json "overrides"), which only onnxruntime-node's install script requires: that
// script calls bootstrap() first, then reads its install flag, and on linux/x64 without a flag downloads CUDA files
// from outside the npm registry. The project never wants that download (README, Install).
//
// Why not the flag in .npmrc: npm 10 has no other no-environment way to pass it, but npm 11.4+ warns on every
// command about the unknown project config; npm 11.16+ skips the script anyway (package.json "allowScripts"), npm
// 10 and 11.0–11.15 run it. This works on all of them. A user who wants the CUDA files sets
// ONNXRUNTIME_NODE_INSTALL=cuda12 (and allows the script); that is left alone.
exports.bootstrap = () => {
  if (!process.env.ONNXRUNTIME_NODE_INSTALL && !process.env.ONNXRUNTIME_NODE_INSTALL_CUDA) {
    process.env.ONNXRUNTIME_NODE_INSTALL = 'skip';
  }
};
