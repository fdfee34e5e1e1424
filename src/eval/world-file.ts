/** The file of a shapes-world model's folder that describes the world it was trained on (world.ts reads it). */
export const WORLD_FILE = 'world.json';
