// The analyses `normlab analyze --what` may name: constants without TensorFlow.js,
// so the command line can declare its flags without loading the analyses.

export const ANALYSES = ['angular', 'layer-drop', 'variance', 'gradnorm', 'massive', 'cosine'] as const;
export type AnalysisName = (typeof ANALYSES)[number];
