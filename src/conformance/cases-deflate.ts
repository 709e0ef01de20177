/**
 * Groups 12 and 13 of Autobahn|Testsuite: permessage-deflate (RFC 7692). Each case sends 1000
 * compressed messages, one at a time, each when the echo of the previous one is back, and checks
 * every echo octet for octet. 12.x: five kinds of data, the default offer; 13.x: one kind of data,
 * seven sets of parameters (context takeover, window sizes). When compression is not agreed the
 * case is UNIMPLEMENTED.
 */
import { Case, type CaseInfo, type DeflateAcceptance } from './case.js';
import { EXTENSION, type DeflateOffer } from './deflate.js';
import { CLEAN_NORMAL, type CaseDefinition } from './script.js';
import { DATA_ORDER, nextMessage, testData, type TestData } from './data-sets.js';

/** [message size, message count, timeout in seconds, automatic fragment size]. */
const SIZES: [number, number, number, number][] = [
  [16, 1000, 60, 0],
  [64, 1000, 60, 0],
  [256, 1000, 120, 0],
  [1024, 1000, 240, 0],
  [4096, 1000, 480, 0],
  [8192, 1000, 480, 0],
  [16384, 1000, 480, 0],
  [32768, 1000, 480, 0],
  [65536, 1000, 480, 0],
  [131072, 1000, 480, 0],
  [8192, 1000, 480, 256],
  [16384, 1000, 480, 256],
  [32768, 1000, 480, 256],
  [65536, 1000, 480, 256],
  [131072, 1000, 480, 256],
  [131072, 1000, 480, 1024],
  [131072, 1000, 480, 4096],
  [131072, 1000, 480, 32768],
];

/** An offer as the suite's client makes it: it accepts both limits on its own side, and asks for these. */
const offer = (serverNoContextTakeover: boolean, serverMaxWindowBits: number): DeflateOffer => ({
  clientNoContextTakeover: true,
  clientMaxWindowBits: true,
  serverNoContextTakeover,
  serverMaxWindowBits,
});

/**
 * How the suite's server answers a client's offer: the client's own requests for the server's
 * side are granted as asked; for the client's side it asks `noContextTakeover` (a server may,
 * whether offered or not, §7.1.1.2) and a window of `windowBits` (only if the client offered
 * client_max_window_bits, §7.1.2.2). An offer the policy cannot use is passed over.
 */
function acceptWith(offers: DeflateOffer[], noContextTakeover: boolean, windowBits: number): DeflateAcceptance | null {
  for (const client of offers) {
    if (windowBits !== 0 && client.clientMaxWindowBits === false) continue;
    let response = EXTENSION;
    if (client.serverNoContextTakeover) response += '; server_no_context_takeover';
    if (client.serverMaxWindowBits !== 0) response += `; server_max_window_bits=${client.serverMaxWindowBits}`;
    if (noContextTakeover) response += '; client_no_context_takeover';
    if (windowBits !== 0) response += `; client_max_window_bits=${windowBits}`;
    return {
      response,
      params: {
        serverNoContextTakeover: client.serverNoContextTakeover,
        clientNoContextTakeover: noContextTakeover,
        serverMaxWindowBits: client.serverMaxWindowBits === 0 ? 15 : client.serverMaxWindowBits,
        clientMaxWindowBits: windowBits === 0 ? 15 : windowBits,
      },
    };
  }
  return null;
}

interface Parameters {
  offers: DeflateOffer[];
  /** Server role: the answers tried in order, [noContextTakeover, windowBits]. */
  accepts: [boolean, number][];
}

const PARAMETERS: Parameters[] = [
  { offers: [offer(false, 0)], accepts: [[false, 0]] },
  { offers: [offer(true, 0)], accepts: [[true, 0]] },
  { offers: [offer(false, 9)], accepts: [[false, 9]] },
  { offers: [offer(false, 15)], accepts: [[false, 15]] },
  { offers: [offer(true, 9)], accepts: [[true, 9]] },
  { offers: [offer(true, 15)], accepts: [[true, 15]] },
  {
    offers: [offer(true, 9), offer(true, 0), offer(false, 0)],
    accepts: [
      [true, 9],
      [true, 0],
      [false, 0],
    ],
  },
];

class CompressionCase extends Case {
  private count = 0;
  private from = 0;
  private sent: Buffer = Buffer.alloc(0);

  constructor(
    info: CaseInfo,
    private readonly data: TestData,
    private readonly size: [number, number, number, number],
    private readonly parameters: Parameters,
  ) {
    super(info);
    this.reportTime = true;
    this.reportCompressionRatio = true;
    this.expectedClose = CLEAN_NORMAL;
  }

  override deflateOffers(): DeflateOffer[] {
    return this.parameters.offers;
  }

  override acceptDeflate(offers: DeflateOffer[]): DeflateAcceptance | null {
    for (const [noContextTakeover, windowBits] of this.parameters.accepts) {
      const accepted = acceptWith(offers, noContextTakeover, windowBits);
      if (accepted !== null) return accepted;
    }
    return null;
  }

  override onOpen(): void {
    this.p.wireLog(false);
    this.p.autoFragmentSize = this.size[3];
    if (this.p.deflate === null) {
      this.behavior = 'UNIMPLEMENTED';
      this.result = 'permessage-deflate was not agreed.';
      this.p.sendClose(1000);
      return;
    }
    this.behavior = 'FAILED';
    this.result = `The case did not finish within ${this.size[2]} s.`;
    this.p.closeAfter(this.size[2]);
    this.sendOne();
  }

  private sendOne(): void {
    const { payload, next } = nextMessage(this.data, this.from, this.size[0]);
    this.from = next;
    this.sent = payload;
    // The message and all before it are determined by the data set, the size and the count.
    this.p.sendMessage(payload, this.data.binary, undefined, false, `${this.data.key}/${this.size[0]}/${this.count}`);
    this.count++;
  }

  override onConnectionLost(): void {
    super.onConnectionLost();
    if (this.result.startsWith('The case did not finish')) stoppedEarly(this, this.count, this.size[1]);
  }

  override onMessage(payload: Buffer, binary: boolean): void {
    if (binary !== this.data.binary || !payload.equals(this.sent)) {
      this.behavior = 'FAILED';
      this.result =
        binary !== this.data.binary
          ? `Echo ${this.count}: a ${binary ? 'binary' : 'text'} message, not ${this.data.binary ? 'binary' : 'text'}.`
          : payload.length !== this.sent.length
            ? `Echo ${this.count}: ${payload.length} octets, not ${this.sent.length}.`
            : `Echo ${this.count}: the content differs from what was sent.`;
      this.p.wireLog(true);
      this.p.sendClose(1000);
    } else if (this.count < this.size[1]) this.sendOne();
    else {
      this.behavior = 'OK';
      this.result = `All ${this.size[1]} messages echoed in time.`;
      this.p.wireLog(true);
      this.p.sendClose(1000);
    }
  }
}

/** Why a case that stopped early stopped: the engine's account of the connection's end. */
function stoppedEarly(c: CompressionCase, sent: number, total: number): void {
  if (c.behavior !== 'FAILED' || !c.connectionWasOpen || sent >= total) return;
  c.result = `Stopped at message ${sent} of ${total}: ${c.p.wasNotCleanReason ?? 'the connection ended'}.`;
}

function describeOffers(parameters: Parameters): string {
  return parameters.offers
    .map(
      (o) =>
        `(server_no_context_takeover ${o.serverNoContextTakeover}, ` +
        `server_max_window_bits ${o.serverMaxWindowBits || 'not asked'})`,
    )
    .join(', ');
}

function compressionCase(
  id: string,
  data: TestData,
  size: [number, number, number, number],
  parameters: Parameters,
  how: string,
) {
  const info = {
    id,
    description:
      `${size[1]} compressed ${data.binary ? 'binary' : 'text'} messages ` +
      `of ${size[0]} ${data.binary ? 'octets' : 'characters'} ` +
      `(${data.description})${size[3] === 0 ? '' : `, each sent in frames of ${size[3]} octets`}; ${how}.`,
    expectation: `Each message echoed as sent, all within ${size[2]} s.`,
  };
  return {
    ...info,
    // Large compressed messages keep zlib busy on both sides.
    weight: size[0] >= 65536 ? 2 : 1,
    create: () => new CompressionCase(info, data, size, parameters),
  };
}

/** The subgroup titles of 12 and 13, for the reports. */
export function deflateSubgroups(): Record<string, string> {
  const titles: Record<string, string> = {};
  const sets = testData();
  DATA_ORDER.forEach((key, i) => {
    const data = sets.get(key)!;
    titles[`12.${i + 1}`] = `${data.description} (${data.binary ? 'binary' : 'text'}, ${data.bytes.length} octets)`;
  });
  PARAMETERS.forEach((parameters, i) => {
    titles[`13.${i + 1}`] = `JSON, offers ${describeOffers(parameters)}`;
  });
  return titles;
}

export function deflateCases(): CaseDefinition[] {
  const cases: CaseDefinition[] = [];
  const sets = testData();
  DATA_ORDER.forEach((key, i) =>
    SIZES.forEach((size, j) =>
      cases.push(compressionCase(`12.${i + 1}.${j + 1}`, sets.get(key)!, size, PARAMETERS[0]!, 'the default offer')),
    ),
  );
  PARAMETERS.forEach((parameters, i) =>
    SIZES.forEach((size, j) =>
      cases.push(
        compressionCase(
          `13.${i + 1}.${j + 1}`,
          sets.get('json_data1')!,
          size,
          parameters,
          `offers ${describeOffers(parameters)}`,
        ),
      ),
    ),
  );
  return cases;
}
