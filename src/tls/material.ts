// A server certificate and key read from PEM files, as a TLS context new
// connections are handed. reload() reads the files again and swaps the
// context only if the new pair is usable: a broken file leaves the old
// material in force (open connections keep theirs either way).
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { createSecureContext, type SecureContext } from 'node:tls';

/** The PEM pair a TLS server is configured with (Node's tls options). */
export interface PemPair {
  cert: Buffer;
  key: Buffer;
}

/** What the certificate in force is, for logs and the reload report. */
export interface CertificateSummary {
  subject: string;
  subjectAltName: string | null;
  /** SHA-256 of the DER certificate, colon-separated hex (as openssl prints it). */
  fingerprint256: string;
  validTo: string;
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(`cannot read the TLS ${what} ${path}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
}

/** Read and check a certificate and its key; Error with one readable line when they cannot serve TLS. */
function loadPair(certPath: string, keyPath: string): { pem: PemPair; context: SecureContext; summary: CertificateSummary } {
  const pem = { cert: readPem(certPath, 'certificate'), key: readPem(keyPath, 'key') };
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(pem.cert);
  } catch (err) {
    throw new Error(`TLS certificate ${certPath} is not a PEM certificate: ${(err as Error).message}`);
  }
  let context: SecureContext;
  try {
    // Checks that the key parses and belongs to the certificate.
    context = createSecureContext({ cert: pem.cert, key: pem.key });
  } catch (err) {
    throw new Error(`TLS key ${keyPath} cannot be used with certificate ${certPath}: ${(err as Error).message}`);
  }
  return {
    pem,
    context,
    summary: { subject: x509.subject.replace(/\n/g, ', '), subjectAltName: x509.subjectAltName ?? null, fingerprint256: x509.fingerprint256, validTo: x509.validTo },
  };
}

export class TlsMaterial {
  private constructor(
    readonly certPath: string,
    readonly keyPath: string,
    private current: ReturnType<typeof loadPair>,
  ) {}

  /** Load the pair; throws Error (one line) when it cannot be used. */
  static fromFiles(certPath: string, keyPath: string): TlsMaterial {
    return new TlsMaterial(certPath, keyPath, loadPair(certPath, keyPath));
  }

  /** The context for the next connection. */
  get context(): SecureContext {
    return this.current.context;
  }

  /** The PEM pair in force (for servers configured by options, e.g. https.Server.setSecureContext). */
  get pem(): PemPair {
    return this.current.pem;
  }

  get summary(): CertificateSummary {
    return this.current.summary;
  }

  /** Read the files again; on failure throw (one line) and keep the material in force. */
  reload(): CertificateSummary {
    this.current = loadPair(this.certPath, this.keyPath);
    return this.current.summary;
  }
}
