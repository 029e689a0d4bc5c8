import { z } from 'zod';

/** Scaler configuration. Owned by the scale module (issue 6); placeholder until it lands. */
export const scaleSchema = z.object({
  enabled: z.boolean().default(true),
}).strict();
export type ScaleConfig = z.output<typeof scaleSchema>;
