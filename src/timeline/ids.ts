// Tenant and timeline ids: 16 bytes, written as 32 hex digits. Only that
// form is accepted, so an id can never be a path (no "..", no "/").
export const ID_HEX = /^[0-9a-fA-F]{32}$/;

export class InvalidIdError extends Error {
  constructor(
    readonly what: string,
    readonly value: string,
  ) {
    super(`invalid ${what} "${printable(value)}": expected 32 hex digits`);
    this.name = 'InvalidIdError';
  }
}

function printable(s: string): string {
  const cut = s.length > 80 ? s.slice(0, 80) + '…' : s;
  return cut.replace(/[^\x20-\x7e]/g, '?');
}

/** Lower-case 32-hex-digit form of `text`, or InvalidIdError. */
export function parseId(text: string, what: string): string {
  if (!ID_HEX.test(text)) throw new InvalidIdError(what, text);
  return text.toLowerCase();
}

export function idToBytes(hex: string): Uint8Array {
  return Uint8Array.from(Buffer.from(parseId(hex, 'id'), 'hex'));
}

export function idFromBytes(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** A timeline's identity: tenant and timeline id, both lower-case hex. */
export interface TimelineKey {
  tenantId: string;
  timelineId: string;
}

export function keyString(k: TimelineKey): string {
  return `${k.tenantId}/${k.timelineId}`;
}
