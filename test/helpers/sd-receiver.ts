import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

/**
 * What systemd does for Type=notify, for tests: a python3 receiver binds a unix datagram socket at
 * `path` with SO_PASSCRED and prints every datagram with the sender's PID from SCM_CREDENTIALS
 * (what systemd's NotifyAccess=main checks). Needs python3 (ensurePackages(['python3-minimal'])).
 */
const RECEIVER = `
import socket, struct, sys, json
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind(sys.argv[1])
print(json.dumps({"bound": True}), flush=True)
while True:
    msg, anc, flags, addr = s.recvmsg(4096, socket.CMSG_SPACE(12))
    pid = None
    for level, typ, data in anc:
        if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", data[:12])[0]
    print(json.dumps({"pid": pid, "msg": msg.decode()}), flush=True)
`;

export interface Datagram { pid: number; msg: string; at: number }

export function notifyReceiver(path: string): { child: ChildProcess; got: Datagram[]; bound: Promise<void>; until(f: (d: Datagram[]) => boolean, ms: number, what: string): Promise<void> } {
  const child = spawn('python3', ['-c', RECEIVER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  const got: Datagram[] = [];
  let onBound: () => void;
  const bound = new Promise<void>((r) => { onBound = r; });
  createInterface({ input: child.stdout! }).on('line', (l) => {
    const j = JSON.parse(l);
    if (j.bound) onBound();
    else got.push({ ...j, at: Date.now() });
  });
  const until = async (f: (d: Datagram[]) => boolean, ms: number, what: string): Promise<void> => {
    const end = Date.now() + ms;
    while (Date.now() < end) { if (f(got)) return; await new Promise((r) => setTimeout(r, 20)); }
    throw new Error(`timeout after ${ms} ms: ${what}; got ${JSON.stringify(got.slice(-5))}`);
  };
  return { child, got, bound, until };
}

