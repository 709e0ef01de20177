/**
 * Groups 9 and 10 of Autobahn|Testsuite: large messages and frames, many fragments, many small TCP
 * writes, round trips (9), and the engine's own automatic fragmentation (10). In the suite these
 * are performance cases: OK when the echo comes back right and in time, FAILED otherwise; their
 * duration is reported.
 */
import { Case, message, type CaseInfo } from './case.js';
import { Op } from './frames.js';
import { CLEAN_NORMAL, scripted, type CaseDefinition } from './script.js';

const KIB = 1024;
const MIB = 1024 * 1024;

/** How a group 9 case sends its message. */
interface BigMessage {
  length: number;
  binary: boolean;
  /** The payload pattern, repeated to `length` (9.1, 9.2, 9.5, 9.6) or filled (9.3, 9.4). */
  pattern: string;
  /** 9.3/9.4: sent as a message in fragments of this many octets. */
  fragmentSize?: number;
  /** 9.5/9.6: one frame written to TCP in chops of this many octets. */
  chopSize?: number;
  /** The suite's timeout, in seconds. */
  wait: number;
}

class BigMessageCase extends Case {
  constructor(
    info: CaseInfo,
    private readonly spec: BigMessage,
  ) {
    super(info);
    this.reportTime = true;
  }

  override onOpen(): void {
    const { spec } = this;
    const kind = spec.binary ? 'binary' : 'text';
    this.p.wireLog(false);
    this.behavior = 'FAILED';
    this.expectedClose = CLEAN_NORMAL;
    this.result = `Did not receive the echo within ${spec.wait} s.`;
    const pattern = Buffer.from(spec.pattern, 'latin1');
    if (spec.fragmentSize !== undefined) {
      const payload = Buffer.alloc(spec.length, pattern[0]!);
      this.p.sendMessage(payload, spec.binary, spec.fragmentSize);
    } else
      this.p.sendFrame({
        opcode: spec.binary ? Op.Binary : Op.Text,
        payload: pattern,
        payloadLength: spec.length,
        chopSize: spec.chopSize,
      });
    this.p.closeAfter(spec.wait);
    this.kind = kind;
  }

  private kind = '';

  override onMessage(payload: Buffer, binary: boolean): void {
    if (binary !== this.spec.binary)
      this.result = `Expected a ${this.kind} message, got a ${binary ? 'binary' : 'text'} one.`;
    else if (payload.length !== this.spec.length)
      this.result = `Expected a ${this.kind} message of ${this.spec.length} octets, got ${payload.length}.`;
    else {
      this.behavior = 'OK';
      this.result = `Received the ${this.kind} message of ${payload.length} octets.`;
    }
    this.p.wireLog(true);
    this.p.sendClose(1000);
  }
}

/** 9.7 and 9.8: a thousand round trips of one message each. */
class RoundTripCase extends Case {
  private count = 0;

  constructor(
    info: CaseInfo,
    private readonly length: number,
    private readonly binary: boolean,
    private readonly wait: number,
  ) {
    super(info);
    this.reportTime = true;
  }

  override onOpen(): void {
    this.p.wireLog(false);
    this.behavior = 'FAILED';
    this.expectedClose = CLEAN_NORMAL;
    this.result = `The case did not finish within ${this.wait} s.`;
    this.p.closeAfter(this.wait);
    this.sendOne();
  }

  private sendOne(): void {
    this.p.sendFrame({
      opcode: this.binary ? Op.Binary : Op.Text,
      payload: this.binary ? '\xfe' : '*',
      payloadLength: this.length,
    });
    this.count++;
  }

  override onMessage(payload: Buffer, binary: boolean): void {
    if (binary !== this.binary || payload.length !== this.length) {
      this.behavior = 'FAILED';
      this.result = `The echo differs from what was sent (binary ${binary}, ${payload.length} octets).`;
      this.p.wireLog(true);
      this.p.sendClose(1000);
    } else if (this.count < 1000) this.sendOne();
    else {
      this.behavior = 'OK';
      this.result = 'All 1000 messages echoed in time.';
      this.p.wireLog(true);
      this.p.sendClose(1000);
    }
  }
}

const sizeText = (n: number): string => (n >= MIB ? `${n / MIB} MiB` : n >= KIB ? `${n / KIB} KiB` : `${n} octets`);

function bigMessage(id: string, spec: BigMessage): CaseDefinition {
  const kind = spec.binary ? 'binary' : 'text';
  const how =
    spec.fragmentSize !== undefined
      ? `, in fragments of ${sizeText(spec.fragmentSize)}`
      : spec.chopSize !== undefined
        ? `, written to TCP in chops of ${spec.chopSize} octets`
        : '';
  const info = {
    id,
    description: `A ${kind} message of ${sizeText(spec.length)}${how}.`,
    expectation: `The message echoed, within ${spec.wait} s.`,
  };
  return {
    ...info,
    weight: spec.length >= 4 * MIB ? 4 : spec.length >= MIB ? 2 : 1,
    create: () => new BigMessageCase(info, spec),
  };
}

export function limitsCases(): CaseDefinition[] {
  const cases: CaseDefinition[] = [];
  const lengths: [number, number, number][] = [
    [64 * KIB, 10, 10],
    [256 * KIB, 10, 10],
    [MIB, 100, 10],
    [4 * MIB, 100, 10],
    [8 * MIB, 100, 100],
    [16 * MIB, 100, 100],
  ];
  lengths.forEach(([length, textWait], i) =>
    cases.push(bigMessage(`9.1.${i + 1}`, { length, binary: false, pattern: 'BAsd7&jh23', wait: textWait })),
  );
  lengths.forEach(([length, , binaryWait], i) =>
    cases.push(bigMessage(`9.2.${i + 1}`, { length, binary: true, pattern: '\x00\xfe\x23\xfa\xf0', wait: binaryWait })),
  );
  const fragmentSizes = [64, 256, KIB, 4 * KIB, 16 * KIB, 64 * KIB, 256 * KIB, MIB, 4 * MIB];
  for (const [sub, binary, pattern] of [
    [3, false, '*'],
    [4, true, '\xfe'],
  ] as const)
    fragmentSizes.forEach((fragmentSize, i) =>
      cases.push(bigMessage(`9.${sub}.${i + 1}`, { length: 4 * MIB, binary, pattern, fragmentSize, wait: 100 })),
    );
  const chopSizes = [64, 128, 256, 512, 1024, 2048];
  for (const [sub, binary, pattern] of [
    [5, false, 'BAsd7&jh23'],
    [6, true, '\x00\xfe\x23\xfa\xf0'],
  ] as const)
    chopSizes.forEach((chopSize, i) =>
      cases.push(bigMessage(`9.${sub}.${i + 1}`, { length: MIB, binary, pattern, chopSize, wait: 1000 })),
    );
  const roundTrips: [number, number][] = [
    [0, 60],
    [16, 60],
    [64, 60],
    [256, 120],
    [1024, 240],
    [4096, 480],
  ];
  for (const [sub, binary] of [
    [7, false],
    [8, true],
  ] as const)
    roundTrips.forEach(([length, wait], i) => {
      const kind = binary ? 'binary' : 'text';
      const info = {
        id: `9.${sub}.${i + 1}`,
        description: `1000 ${kind} messages of ${length} octets, each sent when the previous one is back.`,
        expectation: `The 1000 messages echoed, within ${wait} s.`,
      };
      cases.push({ ...info, weight: 1, create: () => new RoundTripCase(info, length, binary, wait) });
    });
  cases.push(
    scripted(
      '10.1.1',
      'A text message of 65536 octets, fragmented by the engine into frames of 1300 octets.',
      'The message echoed (and the engine sent 1 text frame and 50 continuation frames), then a clean close.',
      (c) => {
        const payload = Buffer.alloc(65536, 0x2a);
        c.p.autoFragmentSize = 1300;
        c.expect('OK', [message(payload)]);
        c.closing(CLEAN_NORMAL);
        c.p.sendMessage(payload, false);
        c.p.killAfter(10);
      },
      {
        afterJudge: (c) => {
          if (!c.connectionWasOpen) return;
          const sent = { text: c.p.txFrames[Op.Text] ?? 0, continuation: c.p.txFrames[Op.Continuation] ?? 0 };
          if (sent.text !== 1 || sent.continuation !== 50) {
            c.behavior = 'FAILED';
            c.result = `Sent ${sent.text} text and ${sent.continuation} continuation frames, not 1 and 50.`;
          }
        },
      },
    ),
  );
  return cases;
}
