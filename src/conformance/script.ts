/**
 * How most cases are written: a script run when the connection opens (what to expect, what to
 * send, which deadline to set), on the case model of case.ts. Each definition carries the case's
 * id and text, a factory for a fresh case per run, and its weight for the scheduler.
 */
import { Case, type CaseInfo, type ExpectedClose, type Observed, type Verdict } from './case.js';

export interface CaseDefinition extends CaseInfo {
  create(): Case;
  /**
   * How much of the machine the case takes, in parallel slots: most cases 1; the cases that move
   * many megabytes more, so they run with fewer others beside them.
   */
  weight: number;
}

/** RFC 6455 §7.4.1: the codes the cases expect by name. */
export const NORMAL = 1000;
export const GOING_AWAY = 1001;
export const PROTOCOL_ERROR = 1002;
export const INVALID_PAYLOAD = 1007;

export class ScriptedCase extends Case {
  constructor(
    info: CaseInfo,
    private readonly script: (c: ScriptedCase) => void,
    private readonly afterJudge?: (c: ScriptedCase) => void,
  ) {
    super(info);
  }

  override onOpen(): void {
    this.script(this);
  }

  /** The peer's answers that earn `verdict`. */
  expect(verdict: Verdict, events: Observed[]): void {
    this.expected.set(verdict, events);
  }

  closing(expected: ExpectedClose): void {
    this.expectedClose = expected;
  }

  /** Record a step reached while the connection is open (the phased cases of 6.4). */
  reached(tag: string): void {
    this.received.push({ type: 'timeout', tag });
  }

  override onConnectionLost(): void {
    super.onConnectionLost();
    this.afterJudge?.(this);
  }
}

/** The close a case expects when it closes itself after the echo: 1000, clean. */
export const CLEAN_NORMAL: ExpectedClose = { closedByMe: true, closeCode: [NORMAL], requireClean: true };

/** The close a case expects when the peer must fail the connection: 1002, clean or not. */
export const PEER_FAILS: ExpectedClose = { closedByMe: false, closeCode: [PROTOCOL_ERROR], requireClean: false };

export function scripted(
  id: string,
  description: string,
  expectation: string,
  script: (c: ScriptedCase) => void,
  options: { suppressClose?: boolean; afterJudge?: (c: ScriptedCase) => void; weight?: number } = {},
): CaseDefinition {
  const info = { id, description, expectation };
  return {
    ...info,
    weight: options.weight ?? 1,
    create: () => {
      const c = new ScriptedCase(info, script, options.afterJudge);
      c.suppressClose = options.suppressClose ?? false;
      return c;
    },
  };
}

/** The 7.x rule: a wrong close code fails the case itself, not only its close. */
export function wrongCodeFails(c: ScriptedCase): void {
  if (c.behaviorClose === 'WRONG CODE') {
    c.behavior = 'FAILED';
    c.result = c.resultClose;
  }
}

/** A string of bytes written as the suite writes them ("\xce\xba..." as latin1). */
export function bytes(text: string): Buffer {
  return Buffer.from(text, 'latin1');
}
