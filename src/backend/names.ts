// The backends and torch devices a flag may name: constants without tfjs, so the
// command line can declare its options without loading a backend.

export const BACKEND_NAMES = ['auto', 'torch', 'wasm', 'cpu', 'tensorflow', 'tensorflow-gpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

export const TORCH_DEVICES = ['auto', 'cpu', 'cuda'] as const;
export type TorchDevice = (typeof TORCH_DEVICES)[number];
