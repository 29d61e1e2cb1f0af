// The server side of PostgreSQL's in-band TLS: after an SSLRequest has been
// answered `S`, the same TCP connection carries a TLS handshake and then
// the rest of the protocol, encrypted.
import type { Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';

/** The one byte that accepts an SSLRequest. */
export const ACCEPT_ENCRYPTION = Buffer.from('S', 'latin1');

/** What a connection reports of its TLS session. */
export interface TlsInfo {
  protocol: string;
  cipher: string;
}

/**
 * Send `S` on `raw` and run the server side of a TLS handshake over it.
 * The caller must have stopped reading `raw` (no listeners, paused): the
 * client's ClientHello belongs to the TLS layer. `onData` gets the
 * decrypted bytes from the start (the client may send its start-up packet
 * with its last handshake message; and only a read stream sees a client
 * that leaves mid-handshake). Resolves with the encrypted socket once the
 * handshake is done; rejects when it fails (a client that does not trust
 * the certificate sends an alert or just closes).
 */
export function acceptTls(raw: Socket, context: SecureContext, onData: (chunk: Buffer) => void): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    // The `S` must leave before the handle is handed to TLS, unencrypted.
    raw.write(ACCEPT_ENCRYPTION, (err) => {
      if (err) return reject(err);
      const tls = new TLSSocket(raw, { isServer: true, secureContext: context });
      const fail = (e: Error): void => {
        tls.destroy();
        reject(e);
      };
      const gone = (): void => fail(new Error('the client closed the connection during the TLS handshake'));
      tls.on('data', onData);
      tls.once('error', fail);
      tls.once('end', gone);
      tls.once('close', gone);
      tls.once('secure', () => {
        tls.off('error', fail);
        tls.off('end', gone);
        tls.off('close', gone);
        resolve(tls);
      });
    });
  });
}

export function tlsInfo(socket: TLSSocket): TlsInfo {
  return { protocol: socket.getProtocol() ?? 'unknown', cipher: socket.getCipher()?.name ?? 'unknown' };
}
