/** The outputs a video can be written as: encoded by ffmpeg, or a folder of PNG frames. */
export const VIDEO_FORMATS = ['mp4', 'webm', 'gif', 'frames'] as const;
export type VideoFormat = (typeof VIDEO_FORMATS)[number];
