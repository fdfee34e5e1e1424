/** What `models convert` and `models pull` can write: block formats and how weights are stored. */
export const FORMATS = ['onnx', 'coreml'] as const;
export type ModelFormat = (typeof FORMATS)[number];
export const DTYPES = ['float32', 'float16'] as const;
export type WeightDtype = (typeof DTYPES)[number];
