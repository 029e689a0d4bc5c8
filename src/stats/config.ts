import { z } from 'zod';
import { hostPort } from '../config/types.js';

/** Stats page and admin API configuration. Owned by the ops module (issue 4). */
export const statsSchema = z.object({
  bind: hostPort.default('127.0.0.1:8404'),
}).strict();
export const adminSchema = z.object({
  socket: z.string().optional(),
}).strict();
export type StatsConfig = z.output<typeof statsSchema>;
export type AdminConfig = z.output<typeof adminSchema>;
