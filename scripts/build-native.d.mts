// Types of scripts/build-native.mjs (plain JavaScript: it runs at `npm ci`, before any TypeScript is built).
export interface Addon {
  readonly target: string;
  readonly label: string;
  readonly platforms: readonly NodeJS.Platform[];
  readonly without: string;
}
export declare const ADDONS: readonly Addon[];
export declare function installHint(platform: NodeJS.Platform, tool: 'cmake' | 'compiler'): string;
export declare function buildNative(root: string, platform?: NodeJS.Platform): void;
