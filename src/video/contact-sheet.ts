import type { Frames } from './video-writer.js';

/** A sheet shows at most this many frames, evenly spaced, the first and the last included. */
export const SHEET_MAX_FRAMES = 16;
const COLUMNS = 4;
/** Thumbnails are downscaled to this width at most (never upscaled), keeping the aspect ratio. */
const THUMB_MAX_WIDTH = 160;
/**
 * Pixels of grey between the tiles and around them: without them, frames whose background is the sheet's colour
 * run into each other and an object crossing a tile's edge looks like one across two frames.
 */
export const GUTTER = 4;
const GUTTER_COLOUR = '#808080';

export interface SheetLayout {
  /** Indices of the frames shown, in order (row by row). */
  readonly frames: readonly number[];
  readonly columns: number;
  readonly rows: number;
  readonly thumbWidth: number;
  readonly thumbHeight: number;
  /** Of the whole sheet, gutters included. */
  readonly width: number;
  readonly height: number;
}

export function sheetLayout(frameCount: number, width: number, height: number): SheetLayout {
  const shown = Math.min(frameCount, SHEET_MAX_FRAMES);
  const frames =
    shown <= 1
      ? [0].slice(0, shown)
      : Array.from({ length: shown }, (_, i) => Math.round((i * (frameCount - 1)) / (shown - 1)));
  const scale = Math.min(1, THUMB_MAX_WIDTH / width);
  const thumbWidth = Math.max(1, Math.round(width * scale));
  const thumbHeight = Math.max(1, Math.round(height * scale));
  const columns = Math.min(COLUMNS, Math.max(1, shown));
  const rows = Math.max(1, Math.ceil(shown / columns));
  return {
    frames,
    columns,
    rows,
    thumbWidth,
    thumbHeight,
    width: columns * thumbWidth + (columns + 1) * GUTTER,
    height: rows * thumbHeight + (rows + 1) * GUTTER,
  };
}

/** A PNG grid of downscaled frames (packed RGB24, `width`×`height`), for a glance at a video without playing it. */
export async function contactSheetPng(frames: Frames, width: number, height: number): Promise<Buffer> {
  const layout = sheetLayout(frames.length, width, height);
  const { default: sharp } = await import('sharp'); // on first use: libvips costs ~100 ms at every start
  const thumbs = await Promise.all(
    layout.frames.map((index) =>
      sharp(frames[index]!, { raw: { width, height, channels: 3 } })
        .resize(layout.thumbWidth, layout.thumbHeight)
        .raw()
        .toBuffer(),
    ),
  );
  const raw = { width: layout.thumbWidth, height: layout.thumbHeight, channels: 3 } as const;
  return sharp({ create: { width: layout.width, height: layout.height, channels: 3, background: GUTTER_COLOUR } })
    .composite(
      thumbs.map((input, i) => ({
        input,
        raw,
        left: GUTTER + (i % layout.columns) * (layout.thumbWidth + GUTTER),
        top: GUTTER + Math.floor(i / layout.columns) * (layout.thumbHeight + GUTTER),
      })),
    )
    .removeAlpha()
    .png()
    .toBuffer();
}
