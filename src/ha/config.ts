import { z } from 'zod';

/** HA pair configuration. Owned by the HA module (issue 5); placeholder until it lands. */
export const haSchema = z.object({
  enabled: z.boolean().default(true),
}).strict();
export type HaConfig = z.output<typeof haSchema>;
