/**
 * Small real ONNX graphs built in the tests with onnx-proto (runtime-facts §3), so backend and manifest tests
 * run real ONNX Runtime sessions without Python or shipped model files.
 */
import { writeFile } from 'node:fs/promises';
import onnxProto from 'onnx-proto';
import type { TensorDType } from '../../src/runtime/backend.js';

const { onnx } = onnxProto;

export type Dim = number | string;

const ELEM_TYPE: Record<TensorDType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  int32: onnx.TensorProto.DataType.INT32,
  int64: onnx.TensorProto.DataType.INT64,
  float16: onnx.TensorProto.DataType.FLOAT16,
};

export interface ValueSpec {
  readonly name: string;
  readonly dtype: TensorDType;
  readonly shape: readonly Dim[];
}

function valueInfo({ name, dtype, shape }: ValueSpec): onnxProto.onnx.IValueInfoProto {
  const dim = shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d }));
  return { name, type: { tensorType: { elemType: ELEM_TYPE[dtype], shape: { dim } } } };
}

export function node(opType: string, input: string[], output: string[], attribute: onnxProto.onnx.IAttributeProto[] = []): onnxProto.onnx.INodeProto {
  return { opType, input, output, attribute };
}

type RawData = Float32Array | Uint16Array | BigInt64Array | Int32Array;

export function initializer(name: string, dtype: TensorDType, dims: number[], data: RawData): onnxProto.onnx.ITensorProto {
  return { name, dims, dataType: ELEM_TYPE[dtype], rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

/** An initializer stored in an external data file, as the Python exporter writes large weights. */
export function externalInitializer(
  name: string,
  dims: number[],
  location: string,
  offset: number,
  length: number,
): onnxProto.onnx.ITensorProto {
  return {
    name,
    dims,
    dataType: ELEM_TYPE.float32,
    dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
    externalData: [
      { key: 'location', value: location },
      { key: 'offset', value: String(offset) },
      { key: 'length', value: String(length) },
    ],
  };
}

/** A constant node producing a zero tensor of shape [1] (stub outputs of contract-shaped test blocks). */
function zeroConstant(output: string, dtype: TensorDType): onnxProto.onnx.INodeProto {
  const zero = { float32: new Float32Array(1), float16: new Uint16Array(1), int64: new BigInt64Array(1), int32: new Int32Array(1) }[dtype];
  return node('Constant', [], [output], [
    { name: 'value', type: onnx.AttributeProto.AttributeType.TENSOR, t: initializer('', dtype, [1], zero) },
  ]);
}

export interface GraphSpec {
  readonly nodes: onnxProto.onnx.INodeProto[];
  readonly inputs: readonly ValueSpec[];
  readonly outputs: readonly ValueSpec[];
  readonly initializers?: onnxProto.onnx.ITensorProto[];
}

export function modelBytes(graph: GraphSpec): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'test',
      node: graph.nodes,
      input: graph.inputs.map(valueInfo),
      output: graph.outputs.map(valueInfo),
      initializer: graph.initializers ?? [],
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

export async function writeModel(path: string, graph: GraphSpec): Promise<void> {
  await writeFile(path, modelBytes(graph));
}

/** A block whose outputs are constants: loads in ORT and carries exactly the given input and output names. */
export function stubGraph(inputs: readonly ValueSpec[], outputs: readonly ValueSpec[]): GraphSpec {
  return { nodes: outputs.map((o) => zeroConstant(o.name, o.dtype)), inputs, outputs: outputs.map((o) => ({ ...o, shape: [1] })) };
}

/** y = tanh(x·x) repeated: seconds of CPU work from a 4 MiB input and no weights. */
export function matmulChain(layers: number, size: number): GraphSpec {
  const nodes: onnxProto.onnx.INodeProto[] = [];
  let previous = 'x';
  for (let i = 0; i < layers; i++) {
    const next = i === layers - 1 ? 'y' : `t${i}`;
    nodes.push(node('MatMul', [previous, previous], [`m${i}`]), node('Tanh', [`m${i}`], [next]));
    previous = next;
  }
  const spec = (name: string): ValueSpec => ({ name, dtype: 'float32', shape: [size, size] });
  return { nodes, inputs: [spec('x')], outputs: [spec('y')] };
}
